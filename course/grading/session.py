"""The kernel session: one (sandboxed) Jupyter kernel per submission, in a scratch folder.

``Scratch`` is a fresh folder holding a copy of the submission (``work``, the kernel's) and the
grader's probe inputs (``inputs``); ``Session`` starts the kernel inside the sandbox of
``course.grading.sandbox`` with an allow-listed environment and runs one cell at a time with
a time limit (a cell past it is interrupted and its reply says ``CellTimeoutError``).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete

from course.grading import reports as report_files
from course.grading.limits import TOTAL_TIMEOUT
from course.grading.sandbox import BASE_UID, Sandbox
from course.grading.settings import Settings, runtime_paths

TIMEOUT_ERROR = "CellTimeoutError"
_ENV_KEEP = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "VIRTUAL_ENV",
    "KERAS_BACKEND",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "COURSE_DATA_DIR",
    "COURSE_CHECKS_PACKAGE",
)
_ENV_KEEP_PREFIXES = ("LC_", "TF_", "XLA_")


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel command runs inside ``self.sandbox`` (when set)."""

    sandbox: Sandbox | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        return self.sandbox.wrap(command) if self.sandbox is not None else command


class OutputlessClient(NotebookClient):
    """A ``NotebookClient`` that keeps none of a cell's outputs (they are not graded), so a
    kernel that prints gigabytes or sends display, comm or widget messages grows nothing in
    the grader. Of the kernel's broadcasts it reads only the one that says a cell is done."""

    def process_message(self, msg, cell, cell_index):
        content = msg.get("content")
        if isinstance(content, dict) and msg.get("msg_type") == "status" and (
            content.get("execution_state") == "idle"
        ):
            raise CellExecutionComplete()
        return None


class Scratch:
    """A fresh scratch folder: ``work`` (the kernel's, holding a copy of the submission) and
    ``inputs`` (the grader's, readable by the kernel); removed with everything in it."""

    def __init__(self, submission: Path, settings: Settings):
        self.settings = settings
        self.uid = BASE_UID + settings.slot
        self.base = Path(tempfile.mkdtemp(prefix="course-grade-"))
        os.chmod(self.base, 0o711)
        self.work = self.base / "work"
        self.inputs = self.base / "inputs"
        self.work.mkdir(mode=0o700)
        self.inputs.mkdir(mode=0o711)
        os.chmod(self.inputs, 0o711)
        copy = self.work / _safe_file_name(submission)
        shutil.copyfile(submission, copy)
        if settings.sandbox:
            for path in (self.work, copy):
                os.chown(path, self.uid, self.uid)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


class Session:
    """One kernel for one submission, running cells with a time limit each."""

    def __init__(self, notebook: nbformat.NotebookNode, scratch: Scratch, settings: Settings):
        self.scratch = scratch
        self.settings = settings
        self.km = SandboxedKernelManager(kernel_name="python3")
        self.client = OutputlessClient(
            copy.deepcopy(notebook),
            km=self.km,
            allow_errors=True,
            interrupt_on_timeout=True,
            error_on_timeout={"ename": TIMEOUT_ERROR, "evalue": "", "traceback": []},
            shutdown_kernel="immediate",
            iopub_timeout=1,  # outputs are not graded: do not wait for stragglers after a reply
            record_timing=False,
            store_widget_state=False,
            startup_timeout=120,
        )
        self.client.on_cell_executed = self._keep_reply
        self.reply: dict[str, Any] = {}
        self.running = "the kernel's start"
        self.ready = False

    def started(self):
        """Context manager: a (sandboxed) kernel with the grading environment, killed on exit."""
        env = kernel_env(self.settings.smoke)
        if self.settings.sandbox:
            self.km.sandbox = Sandbox(
                scratch=str(self.scratch.work),
                hide=self.settings.hide,
                binds=self.settings.binds,
                expose=(*runtime_paths(), str(self.scratch.base)),
                uid=self.scratch.uid,
                memory_bytes=self.settings.memory_bytes,
                cpu_seconds=int(4 * TOTAL_TIMEOUT * (os.cpu_count() or 1)),
            )
        else:
            env["HOME"] = str(self.scratch.work)
        # Kernel and C-library chatter must not flood our output: it goes to a log file that
        # explains a kernel that fails to start (RLIMIT_FSIZE bounds it).
        self.log = open(self.scratch.base / "kernel.log", "wb")  # noqa: SIM115
        return self.client.setup_kernel(
            env=env,
            cwd=str(self.scratch.work),
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            cleanup_kc=True,
        )

    def close(self) -> None:
        if getattr(self, "log", None) is not None:
            self.log.close()

    def log_tail(self) -> str:
        """The last line the kernel (or the sandbox) wrote on stderr."""
        try:
            lines = (self.scratch.base / "kernel.log").read_bytes()[-4000:].splitlines()
        except OSError:
            return ""
        text = [line.decode(errors="replace").strip() for line in lines if line.strip()]
        return text[-1][:300] if text else ""

    def run(
        self, cell: nbformat.NotebookNode, limit: float, index: int = -1, label: str = ""
    ) -> dict[str, Any]:
        """Run one cell for at most ``limit`` seconds; return the kernel's reply content.

        A cell past its limit is interrupted and its reply says ``ename: CellTimeoutError``.
        """
        self.ready = True
        self.running = label or self.running
        self.reply = {}
        self.client.timeout = max(1, int(limit + 0.999))
        self.client.execute_cell(cell, index, store_history=index >= 0)
        return self.reply

    def responds(self, limit: float) -> bool:
        """Whether the kernel is free again after an interrupt (it runs a trivial cell)."""
        reply = self.run(nbformat.v4.new_code_cell("pass"), limit)
        return reply.get("status") == "ok"

    def _keep_reply(self, cell, cell_index, execute_reply) -> None:
        self.reply = execute_reply["content"]


def kernel_env(smoke: bool) -> dict[str, str]:
    """The kernel's environment: an allow-list of the grader's (no secrets passed on)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in _ENV_KEEP or key.startswith(_ENV_KEEP_PREFIXES)
    }
    env.setdefault("PATH", os.defpath)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines are noise here
    env.update(MPLBACKEND="Agg", PYTHONUNBUFFERED="1", COURSE_GRADING="1")
    if os.environ.get("PYTHONPATH"):  # the kernel runs in a scratch folder, not ours
        entries = os.environ["PYTHONPATH"].split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
    if smoke:
        env["COURSE_SMOKE"] = "1"
    return env


# --- settings, limits, reports -------------------------------------------------------------


def _safe_file_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", report_files.display_path(path.name)).strip("._")
    return name or "submission.py"
