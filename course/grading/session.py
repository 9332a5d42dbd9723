"""The kernel session: one (sandboxed) Jupyter kernel per submission, in a scratch folder.

``Scratch`` is what one kernel gets on the machine. Sandboxed:

- a uid of its own, leased for the kernel's lifetime with an ``flock`` on
  ``/run/course-grade/uid-N.lock`` (no two kernels of any two grading runs share one);
- a cgroup of its own (``course.grading.cgroups``: equal CPU weight, ``--memory-gb`` counting
  tmpfs and shared memory, at most ``MAX_PROCESSES`` processes and threads);
- a fresh folder holding ``work`` (a tmpfs of ``scratch_bytes`` owned by the kernel's uid,
  mode 0700, holding a copy of the submission: filling it fills nothing else), ``channel``
  (the kernel's Unix sockets, mode 0700, owned by the kernel's uid) and ``inputs`` (the
  grader's probe inputs, readable by the kernel).

Closing it kills what is left in the cgroup, unmounts and removes the folder and gives the uid
back. A lease whose holder died without closing (a grader killed by SIGKILL) is reaped by the
next ``Scratch`` of any run: the processes of that uid killed, its cgroup and its scratch folder
removed. Unsandboxed, the kernel runs as the grader's user in a plain folder.

``Session`` starts the kernel (inside the sandbox of ``course.grading.sandbox`` when sandboxed)
with an exact environment (``kernel_env``), talks to it over Unix sockets in ``channel``
(``transport="ipc"``: the kernel has no TCP port for a neighbour to find, and a sandboxed
kernel's network namespace has no route to the grader's), and runs one cell at a time with a
time limit (a cell past it is interrupted and its reply says ``CellTimeoutError``).
"""

from __future__ import annotations

import copy
import fcntl
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
import zmq
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from traitlets import default

from course.grading import cgroups
from course.grading import reports as report_files
from course.grading.limits import TOTAL_TIMEOUT
from course.grading.sandbox import (
    BASE_UID,
    UID_COUNT,
    Sandbox,
    die_with_parent,
    mount_scratch,
    unmount,
)
from course.grading.settings import Settings, runtime_paths

TIMEOUT_ERROR = "CellTimeoutError"
MAX_MESSAGE_BYTES = 16 * 1024**2  # one message from a kernel (a plot: ~100 KB)
LEASES = Path("/run/course-grade")
MAX_PROCESSES = 1024  # processes and threads of one kernel (its cgroup and RLIMIT_NPROC)
# The kernel's environment: these of the grader's variables, exactly, and those set here.
ENV_KEEP = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "VIRTUAL_ENV",
    "KERAS_BACKEND",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "COURSE_DATA_DIR",
    "COURSE_CHECKS_PACKAGE",
)
_reaped: dict[str, bool] = {}


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel command runs inside ``self.sandbox`` (when set)."""

    sandbox: Sandbox | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        return self.sandbox.wrap(command) if self.sandbox is not None else command


class OutputlessClient(NotebookClient):
    """A ``NotebookClient`` that keeps none of a cell's outputs (they are not graded), so a
    kernel that prints gigabytes or sends display, comm or widget messages grows nothing in
    the grader. Of the kernel's broadcasts it reads only the one that says a cell is done, and
    a message over MAX_MESSAGE_BYTES is dropped by ZeroMQ before the grader allocates it (the
    kernel is disconnected; a lost reply is a cell past its time limit)."""

    def start_new_kernel_client(self):
        self.km.client_factory = CappedKernelClient
        return super().start_new_kernel_client()

    def process_message(self, msg, cell, cell_index):
        content = msg.get("content")
        if isinstance(content, dict) and msg.get("msg_type") == "status" and (
            content.get("execution_state") == "idle"
        ):
            raise CellExecutionComplete()
        return None


class CappedKernelClient(AsyncKernelClient):
    """A kernel client whose sockets refuse a message over MAX_MESSAGE_BYTES unread."""

    @default("context")
    def _context_default(self) -> zmq.asyncio.Context:
        context = super()._context_default()
        context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        return context


class UidLease:
    """One sandbox uid, held (``flock``) until ``release``; the lock file records the scratch
    folder so that a reaper can clean up after a holder that died."""

    def __init__(self, preferred: int = 0):
        LEASES.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _reaped:
            _reaped["done"] = True
            reap_stale()
        for offset in range(UID_COUNT):
            uid = BASE_UID + (preferred + offset) % UID_COUNT
            handle = _lock(uid)
            if handle is not None:
                self.uid, self._handle = uid, handle
                _reap(uid, handle)
                return
        raise RuntimeError(
            f"all {UID_COUNT} sandbox uids ({BASE_UID}-{BASE_UID + UID_COUNT - 1}) are in use "
            "by running grading jobs; wait for some to finish or use fewer --jobs"
        )

    def record(self, scratch: Path) -> None:
        """Note this kernel's scratch folder in the lock file."""
        _write_record(self._handle, {"pid": os.getpid(), "scratch": str(scratch)})

    def release(self) -> None:
        """Give the uid back; while a process of it is left, the record stays for the next
        holder to reap first."""
        if not _processes_of(self.uid):
            _write_record(self._handle, None)
        os.close(self._handle)


def reap_stale() -> None:
    """Clean up after every lease whose holder died: kill its uid's processes, remove its
    cgroup and its scratch folder."""
    for path in sorted(LEASES.glob("uid-*.lock")):
        try:
            uid = int(path.stem.removeprefix("uid-"))
        except ValueError:
            continue
        handle = _lock(uid)
        if handle is not None:
            _reap(uid, handle)
            os.close(handle)


def _lock(uid: int) -> int | None:
    """The locked lock file of ``uid``, or None when another kernel holds it."""
    handle = os.open(LEASES / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(handle)
        return None
    return handle


def _write_record(handle: int, record: dict | None) -> None:
    os.ftruncate(handle, 0)
    if record is not None:
        os.pwrite(handle, json.dumps(record).encode(), 0)


def _reap(uid: int, handle: int) -> None:
    """What a dead holder of ``uid`` left (nothing after a clean release): processes, cgroup,
    scratch folder."""
    try:
        record = json.loads(os.pread(handle, 4096, 0) or b"null")
    except ValueError:
        record = {}
    if not record:
        return
    _kill_user(uid)
    cgroups.remove(f"uid-{uid}")
    scratch = Path(str(record.get("scratch", "")))
    if scratch.name.startswith("course-grade-") and scratch.is_dir():
        unmount(str(scratch / "work"))
        shutil.rmtree(scratch, ignore_errors=True)
    _write_record(handle, None)


def _kill_user(uid: int, patience: float = 5.0) -> None:
    """SIGKILL every (live) process of ``uid`` until none is left."""
    deadline = time.monotonic() + patience
    while (pids := _processes_of(uid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def _processes_of(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith("Z"):
            continue
        if str(uid) in fields.get("Uid", "").split():
            found.append(int(name))
    return found


class Scratch:
    """What one kernel gets: a uid, a cgroup and a fresh folder (``work``, ``channel``,
    ``inputs``), all given back, killed or removed on exit (see the module's docstring)."""

    def __init__(self, submission: Path, settings: Settings):
        self.settings = settings
        self.lease = UidLease(settings.slot) if settings.sandbox else None
        self.uid = self.lease.uid if self.lease else os.getuid()
        self.cgroup: cgroups.KernelCgroup | None = None
        self.mounted = False
        self.base = Path(tempfile.mkdtemp(prefix="course-grade-", dir=_scratch_root()))
        try:
            self._make(submission)
        except BaseException:
            self.close()
            raise

    def _make(self, submission: Path) -> None:
        settings = self.settings
        if self.lease:
            self.lease.record(self.base)
        os.chmod(self.base, 0o711)
        self.work = self.base / "work"
        self.inputs = self.base / "inputs"
        self.channel = self.base / "channel"
        for folder, mode in [(self.work, 0o700), (self.channel, 0o700), (self.inputs, 0o711)]:
            folder.mkdir(mode=mode)
            os.chmod(folder, mode)
        if settings.sandbox and settings.scratch_bytes:
            mount_scratch(str(self.work), settings.scratch_bytes, self.uid)
            self.mounted = True
        if settings.sandbox and settings.cgroups:
            name = f"uid-{self.uid}"
            self.cgroup = cgroups.create(name, settings.memory_bytes, MAX_PROCESSES)
        copy = self.work / _safe_file_name(submission)
        shutil.copyfile(submission, copy)
        if settings.sandbox:
            for path in (self.work, self.channel, copy):
                os.chown(path, self.uid, self.uid)

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Kill what is left of the kernel, remove the folder, give the uid back."""
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.mounted:
            unmount(str(self.work))
        shutil.rmtree(self.base, ignore_errors=True)
        if self.lease is not None:
            self.lease.release()
            self.lease = None


class Session:
    """One kernel for one submission, running cells with a time limit each."""

    def __init__(self, notebook: nbformat.NotebookNode, scratch: Scratch, settings: Settings):
        self.scratch = scratch
        self.settings = settings
        # Unix sockets in the kernel's own folder: no TCP port a neighbour could find or reach;
        # the connection file (its key) in the scratch folder, which goes with it.
        self.km = SandboxedKernelManager(
            kernel_name="python3",
            transport="ipc",
            ip=str(scratch.channel / "kernel"),
            connection_file=str(scratch.base / "connection.json"),
        )
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
        scratch = self.scratch
        if self.settings.sandbox:
            if multiprocessing.parent_process() is not None:  # a grading worker
                die_with_parent()
            self.km.sandbox = Sandbox(
                scratch=str(scratch.work),
                hide=self.settings.hide,
                binds=self.settings.binds,
                expose=(*runtime_paths(), str(scratch.base)),
                uid=scratch.uid,
                # with a cgroup, its memory limit (tmpfs included) replaces the address space's
                memory_bytes=None if scratch.cgroup else self.settings.memory_bytes,
                max_processes=MAX_PROCESSES,
                cpu_seconds=int(4 * TOTAL_TIMEOUT * (os.cpu_count() or 1)),
                env=env,
                cgroup_procs=scratch.cgroup.procs_files if scratch.cgroup else (),
            )
        else:
            env["HOME"] = str(scratch.work)
            # No mounts without the sandbox: a copy bound over a package goes first on the
            # path instead (a speed bump only: the kernel can still find the original).
            copies = [str(Path(source).parent) for source, _ in self.settings.binds]
            env["PYTHONPATH"] = os.pathsep.join([*copies, env.get("PYTHONPATH", "")]).rstrip(
                os.pathsep)
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
    """The kernel's environment: the grader's variables named in ``ENV_KEEP`` (no prefixes: a
    ``TF_VAR_db_password`` stays here), its ``PYTHONPATH`` with real paths, and ours."""
    env = {key: value for key, value in os.environ.items() if key in ENV_KEEP}
    env.setdefault("PATH", os.defpath)
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3",  # TensorFlow's C++ log lines are noise here
        MPLBACKEND="Agg",
        PYTHONUNBUFFERED="1",
        COURSE_GRADING="1",
    )
    if os.environ.get("PYTHONPATH"):  # the kernel runs in a scratch folder, not ours
        entries = os.environ["PYTHONPATH"].split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
    if smoke:
        env["COURSE_SMOKE"] = "1"
    return env


def _scratch_root() -> str:
    """The temporary folder, or /tmp where a socket path in it would pass the 107 bytes that
    a Unix socket's address may have."""
    root = tempfile.gettempdir()
    longest = os.path.join(root, "course-grade-12345678", "channel", "kernel-65535")
    return root if len(os.fsencode(longest)) <= 107 else "/tmp"


def _safe_file_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", report_files.display_path(path.name)).strip("._")
    return name or "submission.py"
