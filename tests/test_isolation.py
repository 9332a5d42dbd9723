"""Kernel isolation: what one sandboxed kernel cannot do to another, to the grader or after it.

Each test is an attack of issue 17 (a hostile submission) and what it must gain: nothing. Two
sandboxed kernels run side by side for the module (``kernels``): ``hostile`` attacks and
``honest`` is its neighbour. The stop tests start a grader in a subprocess and kill it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from processes import alive, descendants

from course.grading.sandbox import unavailable_reason  # noqa: F401 - the skipif's condition

REPOSITORY = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "grading_fixtures"
SOLUTION = FIXTURES / "99_demo.py"
MIB = 1024**2
SCRATCH_BYTES = 32 * MIB
SHM_KEY = 0x5EC2E7
SECRET = "TF_VAR_db_password"

needs_sandbox = pytest.mark.skipif(
    "unavailable_reason() is not None", reason="the sandbox needs root and Linux namespaces"
)


def _settings(tmp: Path, memory_gb: float = 2):
    from course.grading.settings import make_settings

    settings = make_settings(
        None, True, memory_gb, tmp / "out", [SOLUTION], REPOSITORY / "solutions", tmp / "cache"
    )
    return replace(settings, scratch_bytes=SCRATCH_BYTES)


def _started(stack: ExitStack, settings):
    """A started sandboxed session (its scratch and kernel closed by ``stack``)."""
    from course.grading.session import Scratch, Session

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    scratch = stack.enter_context(Scratch(SOLUTION, settings))
    session = Session(notebook, scratch, settings)
    stack.callback(session.close)
    stack.enter_context(session.started())
    return session


def ask(session, code: str, limit: float = 30):
    """Run ``code`` (which sets ``result``) in the kernel; return ``result`` (JSON values)."""
    answer = "\nraise RuntimeError(__import__('json').dumps(result))"
    cell = nbformat.v4.new_code_cell(code + answer)
    reply = session.run(cell, limit)
    assert reply.get("ename") == "RuntimeError", reply
    return json.loads(reply["evalue"])


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """Two sandboxed kernels side by side, started with secrets and the repository in the
    grader's environment; yields ``(hostile, honest, settings)``."""
    tmp = tmp_path_factory.mktemp("isolation")
    cache = tmp / "xdg" / "course" / "grading"
    cache.mkdir(parents=True)
    (cache / "calibration.json").write_text("{}")
    with pytest.MonkeyPatch.context() as patch, ExitStack() as stack:
        patch.setenv(SECRET, "hunter2")
        patch.setenv("XLA_FLAGS", "--secret")
        patch.setenv("LC_SECRET", "secret")
        patch.setenv("XDG_CACHE_HOME", str(tmp / "xdg"))
        patch.setenv("PYTHONPATH", str(REPOSITORY), prepend=os.pathsep)
        settings = _settings(tmp)
        hostile = _started(stack, settings)
        honest = _started(stack, settings)
        yield hostile, honest, settings


@pytest.mark.slow
@needs_sandbox
def test_the_kernel_gets_exactly_the_allowed_environment(kernels):
    from course.grading.session import ENV_KEEP

    hostile, _, _ = kernels
    names = ask(
        hostile,
        "result = sorted(entry.split(b'=', 1)[0].decode() for entry in "
        "open('/proc/self/environ', 'rb').read().split(b'\\0') if entry)",
    )
    ours = {"TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND", "PYTHONUNBUFFERED", "COURSE_GRADING",
            "COURSE_SMOKE", "PYTHONPATH", "HOME", "USER", "LOGNAME", "TMPDIR", "MPLCONFIGDIR",
            "IPYTHONDIR", "JUPYTER_RUNTIME_DIR"}
    assert SECRET not in names and "XLA_FLAGS" not in names and "LC_SECRET" not in names
    assert set(names) == ours | {name for name in ENV_KEEP if name in os.environ}


@pytest.mark.slow
@needs_sandbox
def test_two_kernels_never_share_a_uid(kernels):
    hostile, honest, _ = kernels
    assert hostile.scratch.uid != honest.scratch.uid
    assert ask(hostile, "import os\nresult = os.getuid()") == hostile.scratch.uid


@pytest.mark.slow
@needs_sandbox
def test_a_kernel_cannot_reach_its_neighbours_channels_nor_the_graders_ports(kernels):
    hostile, honest, _ = kernels
    km = honest.km
    ports = [km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port]
    if km.transport == "tcp":
        targets = [["tcp", km.ip, port] for port in ports]
    else:
        targets = [["ipc", f"{km.ip}-{port}", port] for port in ports]
    with socket.socket() as listener:  # a service of the grader's machine on loopback
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        targets.append(["tcp", "127.0.0.1", listener.getsockname()[1]])
        outcomes = ask(
            hostile,
            textwrap.dedent(
                f"""
                import os, socket
                result = []
                for transport, address, port in {targets!r}:
                    family = socket.AF_INET if transport == "tcp" else socket.AF_UNIX
                    with socket.socket(family) as attempt:
                        attempt.settimeout(2)
                        try:
                            attempt.connect((address, port) if transport == "tcp" else address)
                            result.append("connected to " + transport + " " + str(port))
                        except OSError as error:
                            result.append(type(error).__name__)
                rows = [line.split() for name in ("/proc/net/tcp", "/proc/net/tcp6")
                        for line in open(name).read().splitlines()[1:]]
                mine = str(os.getuid())
                listening = [row[1] for row in rows if row[3] == "0A" and row[7] != mine]
                result.append(listening)
                """
            ),
        )
    assert not any(isinstance(o, str) and o.startswith("connected") for o in outcomes), outcomes
    assert outcomes[-1] == []  # no one else's listening socket in the kernel's network


@pytest.mark.slow
@needs_sandbox
def test_shared_memory_and_run_lock_neither_cross_kernels_nor_outlive_them(kernels):
    hostile, honest, _ = kernels
    libc = ctypes.CDLL(None, use_errno=True)
    lock_file = Path("/run/lock/course-isolation-secret")
    created = ask(
        hostile,
        f"import ctypes\nlibc = ctypes.CDLL(None)\n"
        f"shm = libc.shmget({SHM_KEY}, 4096, 0o1000 | 0o666)\n"
        f"open({str(lock_file)!r}, 'w').write('9/9')\n"
        f"result = shm",
    )
    assert created >= 0  # the hostile kernel made both
    try:
        seen = ask(
            honest,
            f"import ctypes, os\nlibc = ctypes.CDLL(None)\n"
            f"result = [libc.shmget({SHM_KEY}, 0, 0), os.path.exists({str(lock_file)!r})]",
        )
        assert seen == [-1, False]  # the neighbour sees neither
        # nor does the machine: both live in the hostile kernel's namespaces, which end with it
        assert libc.shmget(SHM_KEY, 0, 0) == -1 and not lock_file.exists()
    finally:  # on a machine without these namespaces, do not leave them behind
        identifier = libc.shmget(SHM_KEY, 0, 0)
        if identifier >= 0:
            libc.shmctl(identifier, 0, None)  # IPC_RMID
        lock_file.unlink(missing_ok=True)


@pytest.mark.slow
@needs_sandbox
def test_filling_the_scratch_fills_only_ones_own(kernels):
    hostile, honest, _ = kernels
    written = ask(
        hostile,
        textwrap.dedent(
            f"""
            import errno
            written, result = 0, None
            with open("filler", "wb") as file:
                try:
                    while written < {SCRATCH_BYTES + 8 * MIB}:
                        file.write(b"x" * {MIB})
                        file.flush()
                        written += {MIB}
                except OSError as error:
                    result = [error.errno, written]
            result = result or [0, written]
            """
        ),
    )
    assert written[0] == 28 and written[1] <= SCRATCH_BYTES  # ENOSPC in its own scratch
    assert ask(honest, f"open('mine', 'wb').write(b'x' * {8 * MIB})\nresult = 'ok'") == "ok"


@pytest.mark.slow
@needs_sandbox
def test_the_repository_cache_and_solutions_stay_hidden_with_pythonpath_at_the_repository(
    kernels,
):
    hostile, _, _ = kernels
    cache = Path(os.environ.get("XDG_CACHE_HOME", "/nonexistent"))
    targets = [
        REPOSITORY / ".git" / "HEAD",
        REPOSITORY / "tests" / "test_grading.py",
        next((REPOSITORY / "solutions").glob("01_*.py")),
        REPOSITORY / "course" / "grading" / "checks" / "lab01.py",
    ]
    found = ask(
        hostile,
        textwrap.dedent(
            f"""
            import glob, os
            result = []
            for path in {[str(t) for t in targets]!r}:
                try:
                    result.append(len(open(path).read()))
                except OSError as error:
                    result.append(type(error).__name__)
            result.append(glob.glob({str(cache)!r} + "/**", recursive=True))
            """
        ),
    )
    assert all(isinstance(entry, str) for entry in found[:-1]), found
    assert [path for path in found[-1] if path.endswith(".json")] == []


@pytest.mark.slow
@needs_sandbox
def test_each_kernel_has_its_own_cgroup_with_equal_cpu_weight_and_limits(kernels):
    from course.grading.session import MAX_PROCESSES

    hostile, honest, settings = kernels
    if not settings.cgroups:
        pytest.skip("no cgroups on this machine (the warnings say so)")
    ask(hostile, "import subprocess\nchild = subprocess.Popen(['sleep', '60'])\nresult = 0")
    groups = [hostile.scratch.cgroup, honest.scratch.cgroup]
    assert groups[0].folders != groups[1].folders
    for group in groups:
        limits = {}
        for folder in map(Path, group.folders):
            for name in ("cpu.shares", "cpu.weight", "memory.limit_in_bytes", "memory.max",
                         "pids.max"):
                if (folder / name).exists():
                    limits[name.split(".")[0]] = limits.get(name.split(".")[0], []) + [
                        (folder / name).read_text().strip()
                    ]
        assert limits["cpu"] in (["1024"], ["100"])
        assert limits["memory"] == [str(settings.memory_bytes)]
        assert limits["pids"] == [str(MAX_PROCESSES)]
    # what the kernel starts is in its group: process 1, the kernel, the child
    assert len(groups[0].pids()) >= 3


@pytest.mark.slow
@needs_sandbox
def test_memory_in_tmpfs_counts_against_the_kernels_limit(tmp_path):
    from nbclient.exceptions import DeadKernelError

    settings = _settings(tmp_path, memory_gb=0.25)
    if not settings.cgroups:
        pytest.skip("no cgroups on this machine (the warnings say so)")
    with ExitStack() as stack:
        session = _started(stack, settings)
        with pytest.raises(DeadKernelError):  # killed by its own cgroup's OOM killer
            session.run(
                nbformat.v4.new_code_cell(
                    "with open('/dev/shm/ballast', 'wb') as file:\n"
                    "    for _ in range(400):\n"
                    "        file.write(b'x' * 2**20)\n"
                ),
                60,
            )


# --- the stop tests: a grader killed while its kernels busy-loop -----------------------------

HOSTILE_CELLS = """
# %%
import os, subprocess, sys
DAEMON = "import os\\nif os.fork(): os._exit(0)\\nos.setsid()\\nwhile True: pass"
subprocess.Popen([sys.executable, "-c", DAEMON + "  # course-isolation-daemon"],
                 start_new_session=True)

# %%
while True:
    pass
"""


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if alive(pid)}


def _daemons(pids: set[int]) -> int:
    count = 0
    for pid in pids:
        try:
            count += b"course-isolation-daemon" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
    return count


def _start_grader(folder: Path, scratch_root: Path, jobs: int) -> subprocess.Popen:
    """A grader (``jobs`` workers) of ``jobs`` hostile submissions, its scratch folders in
    ``scratch_root``."""
    (folder / "submissions").mkdir(parents=True)
    submissions = []
    for name in ("first_99.py", "second_99.py")[:jobs]:
        submissions.append(folder / "submissions" / name)
        submissions[-1].write_text(HOSTILE_CELLS)
    env = dict(os.environ, TMPDIR=str(scratch_root), COURSE_CHECKS_PACKAGE="demo_checks")
    env["PYTHONPATH"] = os.pathsep.join([str(FIXTURES), env.get("PYTHONPATH", "")])
    script = (
        "from course.grading.runner import grade\n"
        f"grade({[str(s) for s in submissions]!r}, {str(folder / 'out')!r}, jobs={jobs}, "
        "calibrate=False, cell_timeout=120, progress=False)"
    )
    return subprocess.Popen([sys.executable, "-c", script], env=env)


@pytest.mark.slow
@needs_sandbox
def test_a_stopped_grader_leaves_no_process_and_no_scratch_behind(tmp_path):
    """SIGTERM to a grader of one job, SIGKILL to a grader of two workers (both at once)."""
    from course.grading.session import reap_stale

    stops = {signal.SIGTERM: 1, signal.SIGKILL: 2}
    # short: a scratch folder holds the kernel's sockets (at most 107 bytes of path)
    roots = {stop: Path(tempfile.mkdtemp(prefix="isolation-", dir="/tmp")) for stop in stops}
    graders = {
        stop: _start_grader(tmp_path / stop.name, roots[stop], jobs) for stop, jobs in stops.items()
    }
    try:
        deadline = time.monotonic() + 120
        for stop, grader in graders.items():
            while _daemons(descendants(grader.pid)) < stops[stop]:
                assert grader.poll() is None and time.monotonic() < deadline, "no kernel busy"
                time.sleep(0.2)
        started = set().union(*(descendants(grader.pid) for grader in graders.values()))
        for stop, grader in graders.items():
            grader.send_signal(stop)
        for grader in graders.values():
            grader.wait(timeout=30)
        deadline = time.monotonic() + 5
        while _alive(started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _alive(started) == set()  # the kernels, their daemons, the sandboxes: all gone
    finally:
        for grader in graders.values():
            if grader.poll() is None:
                grader.kill()
    reap_stale()  # what a SIGKILL left is cleaned up by the next run
    for root in roots.values():
        assert list(root.iterdir()) == []
        root.rmdir()


# --- no kernel needed -----------------------------------------------------------------------


def test_uid_leases_are_exclusive_across_processes_and_released(tmp_path, monkeypatch):
    from course.grading import session

    monkeypatch.setattr(session, "LEASES", tmp_path / "leases")
    first = session.UidLease()
    holder = subprocess.Popen(  # another grading run holds the next uid
        [sys.executable, "-c", textwrap.dedent(f"""
            import fcntl, os, sys, time
            handle = os.open({str(tmp_path / 'leases' / f'uid-{first.uid + 1}.lock')!r},
                             os.O_RDWR | os.O_CREAT)
            fcntl.flock(handle, fcntl.LOCK_EX)
            print("held", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"held\n"
        second = session.UidLease()
        assert second.uid == first.uid + 2
        second.release()
        first.release()
        assert session.UidLease().uid == first.uid  # given back
    finally:
        holder.kill()
        holder.wait()


def test_the_calibration_cache_holds_timings_only_readable_by_the_grader_alone(tmp_path):
    from course.grading.limits import CELL_FLOOR, Calibration, Limits, load_cached, save_cached

    source = "model.fit(x_train, epochs=EPOCHS, secret_answer=42)"
    calibration = Calibration(cells=((source, 2.0), ("import keras", 1.0)), probes={}, total=3)
    path = tmp_path / "cache" / "lab.json"
    save_cached(calibration, path)
    text = path.read_text()
    assert "secret_answer" not in text and "model.fit" not in text and "keras" not in text
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    limits = Limits(cell=50).calibrated(load_cached(path))
    assert limits.for_cell("model.fit(x_train, epochs=EPOCHS, secret_answer=42)  # ok") == (
        3 * 2.0 + CELL_FLOOR
    )
    # an older cache that holds sources is not used, and goes
    path.write_text(json.dumps({"cells": [[source, 2.0]], "probes": {}, "total": 3}))
    assert load_cached(path) is None and not path.exists()


def test_without_the_sandbox_as_root_the_warning_says_the_kernel_runs_as_root(tmp_path, capsys):
    from course.grading.settings import make_settings

    settings = make_settings(False, True, 1, tmp_path, [SOLUTION], None)
    assert settings.sandbox is False
    if os.geteuid() == 0:
        assert "the kernel runs as root (uid 0)" in settings.unsandboxed_reason
        assert "the kernel runs as root (uid 0)" in capsys.readouterr().err


def test_hidden_paths_ignore_a_pythonpath_naming_the_repository(tmp_path, monkeypatch):
    from course.grading.settings import hidden_paths, runtime_paths

    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))
    hidden = hidden_paths(tmp_path / "out", [], None, tmp_path / "cache")
    if (REPOSITORY / ".git").exists():
        assert str(REPOSITORY / ".git") in hidden
    assert str(REPOSITORY / "tests") in hidden
    assert str(REPOSITORY / "solutions") in hidden
    assert str(REPOSITORY) not in runtime_paths()


def test_a_long_temporary_folder_still_leaves_room_for_the_kernels_sockets(monkeypatch):
    from course.grading import session

    monkeypatch.setattr(tempfile, "tempdir", "/tmp/" + "x" * 80)
    assert session._scratch_root() == "/tmp"
    monkeypatch.setattr(tempfile, "tempdir", "/var/tmp")
    assert session._scratch_root() == "/var/tmp"
