"""Run a student's Jupyter kernel in a sandbox (Linux, as root), with util-linux only.

``Sandbox.wrap(command)`` turns a kernel command line into::

    unshare --mount --pid --fork --kill-child --mount-proc --propagation private \\
        python -I sandbox.py CONFIG -- python -m ipykernel_launcher -f CONNECTION_FILE

Inside the new mount and PID namespaces this file runs as process 1 (still root). It

1. covers every path in ``hide`` with an empty read-only tmpfs (a folder) or ``/dev/null`` (a
   file): the solutions, the checks (the verdicts), the output folder, the submissions;
2. gives ``/tmp``, ``/var/tmp`` and ``/dev/shm`` a private tmpfs, and binds the kernel's scratch
   folder (and the read-only folder of the grader's inputs) back at their own paths;
3. copies the connection file into the scratch folder for the kernel's user;
4. forks the kernel: resource limits (address space, processes, CPU time, file size, no core
   dumps), no supplementary groups, an unprivileged uid and gid, ``no_new_privs``, cwd and
   ``HOME`` in the scratch folder;
5. waits for it, reaping orphans, and exits with its status. When process 1 of a PID namespace
   exits the kernel kills every process left in it, so nothing a submission starts (a
   detached or daemonized process included) outlives its kernel; ``--kill-child`` does the same
   when the grader kills ``unshare``.

The PID namespace also hides the grader's processes (``/proc`` shows only the sandbox's own).
The network is NOT isolated (the kernel talks to the grader over TCP on localhost).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field

# Sandbox users: slot i (one per parallel job) runs as uid/gid BASE_UID + i. These ids need no
# entry in /etc/passwd; they only must own nothing else on the machine.
BASE_UID = 61000
GIB = 1024**3
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 32, 4096, 16384
_PR_SET_NO_NEW_PRIVS = 38
_availability: dict[str, str | None] = {}


@dataclass(frozen=True)
class Sandbox:
    """How one kernel is confined.

    Attributes:
        scratch: the kernel's working folder (owned by ``uid``, the only place it may write
            besides its private temporary folders).
        hide: paths the kernel must not read (folders become empty, files become empty).
        expose: folders bound back read-write/read-only at their own path after ``/tmp`` is
            made private (the scratch folder and the inputs folder, when they lie in ``/tmp``).
        binds: ``(source, target)`` pairs: ``source`` is bound read-only over ``target``
            before anything is hidden (e.g. a copy of the package without a lab's answers
            over the installed package).
        uid: the unprivileged user (and group) id the kernel runs as.
        memory_bytes: the kernel's address-space limit (RLIMIT_AS); None for no limit.
        max_processes: processes and threads of the sandbox user (RLIMIT_NPROC).
        cpu_seconds: CPU time of the kernel (RLIMIT_CPU); None for no limit.
        file_bytes: the largest file the kernel may write (RLIMIT_FSIZE).
    """

    scratch: str
    hide: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    binds: tuple[tuple[str, str], ...] = ()
    uid: int = BASE_UID
    memory_bytes: int | None = 8 * GIB
    max_processes: int = 4096
    cpu_seconds: int | None = None
    file_bytes: int = 2 * GIB
    env: dict[str, str] = field(default_factory=dict)

    def wrap(self, command: list[str]) -> list[str]:
        """The command line that runs ``command`` (a kernel) inside this sandbox."""
        unshare = shutil.which("unshare") or "unshare"
        return [
            unshare,
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            sys.executable,
            "-I",
            os.path.abspath(__file__),
            json.dumps(asdict(self)),
            "--",
            *command,
        ]


def unavailable_reason() -> str | None:
    """Why kernels cannot be sandboxed on this machine, or None when they can."""
    if "reason" not in _availability:
        _availability["reason"] = _probe_availability()
    return _availability["reason"]


def _probe_availability() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux namespaces; this is {sys.platform}"
    if os.geteuid() != 0:
        return "the sandbox needs root (mount namespaces and a separate user); run as root"
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is missing"
    try:
        trial = subprocess.run(
            ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "true"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`unshare` failed to run: {error}"
    if trial.returncode != 0:
        detail = trial.stderr.decode(errors="replace").strip().splitlines()
        return f"`unshare` cannot create namespaces here: {detail[-1] if detail else 'error'}"
    return None


# --- process 1 inside the namespaces (runs as a script: standard library only) -----------


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    libc = _libc()
    result = libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount {source} on {target}: {os.strerror(error)}")


def _hide(path: str) -> None:
    """Cover a folder with an empty read-only tmpfs, or a file with /dev/null."""
    if os.path.isdir(path) and not os.path.islink(path):
        _mount("tmpfs", path, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "size=4k,mode=0555")
    elif os.path.lexists(path):
        _mount("/dev/null", path, None, _MS_BIND)


def _set_up_filesystem(config: dict) -> None:
    """Private temporary folders; folders the kernel's user could not reach made reachable (and
    nothing else beside them: e.g. a Python installed under root's home); read-only binds;
    hidden paths last."""
    os.umask(0o022)
    handles = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in config["expose"]}
    for path in PRIVATE_TMP:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777,size=1g")
    covered: set[str] = set()
    for path in config["expose"]:
        for ancestor in _ancestors(path):
            if ancestor in covered or not os.path.isdir(ancestor):
                continue
            if not os.stat(ancestor).st_mode & 0o001:  # not searchable by other users
                _mount("tmpfs", ancestor, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=4k")
                covered.add(ancestor)
    for path, handle in handles.items():
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{handle}", path, None, _MS_BIND | _MS_REC)
        os.close(handle)
    for source, target in config["binds"]:
        _mount(source, target, None, _MS_BIND | _MS_REC)
        _mount("none", target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_REC)
    for path in config["hide"]:
        _hide(path)


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]``."""
    parts = os.path.normpath(path).split(os.sep)[1:-1]
    return [os.sep + os.path.join(*parts[: i + 1]) for i in range(len(parts))]


def _read_connection_file(command: list[str]) -> bytes | None:
    """The connection file (readable by root only), read before /tmp is made private."""
    if "-f" not in command[:-1]:
        return None
    with open(command[command.index("-f") + 1], "rb") as source:
        return source.read()


def _private_connection_file(command: list[str], data: bytes | None, config: dict) -> list[str]:
    """Write the connection file into the scratch folder, owned by the kernel's user."""
    command = list(command)
    if data is not None:
        copy = os.path.join(config["scratch"], ".connection.json")
        descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as target:
            target.write(data)
        os.chown(copy, config["uid"], config["uid"])
        command[command.index("-f") + 1] = copy
    return command


def _become_the_kernel(command: list[str], config: dict) -> None:
    """In the forked child: limits, an unprivileged user, then exec the kernel."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    limits = {
        resource.RLIMIT_NPROC: config["max_processes"],
        resource.RLIMIT_FSIZE: config["file_bytes"],
        resource.RLIMIT_CORE: 0,
    }
    if config["memory_bytes"]:
        limits[resource.RLIMIT_AS] = config["memory_bytes"]
    if config["cpu_seconds"]:
        limits[resource.RLIMIT_CPU] = config["cpu_seconds"]
    for kind, value in limits.items():
        resource.setrlimit(kind, (value, value))
    os.setgroups([])
    os.setgid(config["uid"])
    os.setuid(config["uid"])
    if _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    os.umask(0o077)
    os.chdir(config["scratch"])
    home = config["scratch"]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JPY_", "JUPYTER_", "SUDO_"))
    }
    env.update(config["env"])
    env.update(
        HOME=home,
        USER="student",
        LOGNAME="student",
        TMPDIR="/tmp",
        MPLCONFIGDIR=os.path.join(home, ".matplotlib"),
        IPYTHONDIR=os.path.join(home, ".ipython"),
        JUPYTER_RUNTIME_DIR=os.path.join(home, ".jupyter-runtime"),
    )
    os.execvpe(command[0], command, env)


def _serve_as_init(config: dict, command: list[str]) -> int:
    """Process 1: set up, fork the kernel, wait for it (reaping orphans), return its status."""
    connection = _read_connection_file(command)
    _set_up_filesystem(config)
    command = _private_connection_file(command, connection, config)
    # The grader interrupts the whole process group, so the kernel gets SIGINT directly; this
    # process must merely survive it (process 1 ignores signals it has no handler for).
    for number in (signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda *_: None)
    kernel = os.fork()
    if kernel == 0:
        try:
            _become_the_kernel(command, config)
        except BaseException as error:  # noqa: B036 - report, then leave the forked child
            print(f"sandbox: cannot start the kernel: {error}", file=sys.stderr, flush=True)
        os._exit(127)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(kernel, signal.SIGTERM))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        if pid == kernel:
            return os.waitstatus_to_exitcode(status) & 0xFF


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: sandbox.py CONFIG_JSON -- COMMAND...", file=sys.stderr)
        return 2
    return _serve_as_init(json.loads(argv[0]), argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
