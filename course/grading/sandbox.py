"""Run a student's Jupyter kernel in a sandbox (Linux, as root), with util-linux only.

``Sandbox.wrap(command)`` turns a kernel command line into::

    setpriv --pdeathsig KILL -- unshare --mount --pid --net --ipc --uts --fork --kill-child \\
        --mount-proc --propagation private python -I sandbox.py CONFIG -- KERNEL_COMMAND

Inside the new mount, PID, network, IPC and UTS namespaces this file runs as process 1 (still
root). It

1. joins the kernel's cgroup (``course.grading.cgroups``: CPU weight, memory with tmpfs and
   shared memory counted, processes), brings the namespace's loopback up (the kernel sees no
   other interface: no neighbour's port, no host service) and names the host ``sandbox``;
2. covers every path in ``hide`` with an empty read-only tmpfs (a folder) or ``/dev/null`` (a
   file): the solutions, the checks (the verdicts), the output folder, the submissions, the
   repository's other files, the calibration cache;
3. gives ``/run`` (with ``/run/lock``), ``/tmp``, ``/var/tmp`` and ``/dev/shm`` a private tmpfs,
   binds the kernel's scratch folder (and the read-only folder of the grader's inputs) back
   at their own paths, and binds ``binds`` read-only;
4. copies the connection file into the scratch folder for the kernel's user (the channel is
   Unix sockets in the scratch folder's private ``channel`` folder, see ``course.grading.session``);
5. forks the kernel: resource limits (processes, CPU time, file size, no core dumps; the
   address space only when no cgroup bounds the memory), no supplementary groups, an
   unprivileged uid and gid, ``no_new_privs``, cwd and ``HOME`` in the scratch folder, and
   exactly the environment the grader chose (``env``; nothing inherited);
6. waits for it, reaping orphans, and exits with its status. When process 1 of a PID namespace
   exits the kernel kills every process left in it, so nothing a submission starts (a
   detached or daemonized process included) outlives its kernel.

What dies with what: ``setpriv --pdeathsig KILL`` kills ``unshare`` when the grader thread
that started it dies (even by SIGKILL), ``--kill-child`` then kills process 1, and with it the
namespace. SysV IPC objects, POSIX message queues and every tmpfs above live in the namespaces,
so they end with the kernel and no neighbour sees them. The PID namespace also hides the
grader's processes (``/proc`` shows only the sandbox's own).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field

# Sandbox users: each kernel runs as one uid/gid of BASE_UID .. BASE_UID + UID_COUNT - 1, leased
# for its lifetime (``course.grading.session``). These ids need no entry in /etc/passwd; they
# only must own nothing else on the machine.
BASE_UID = 61000
UID_COUNT = 256
GIB = 1024**3
PRIVATE_TMP = ("/run", "/tmp", "/var/tmp", "/dev/shm")  # /run first: /dev/shm may point into it
HOSTNAME = "sandbox"

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC = 1, 2, 4, 32, 4096, 16384
_MNT_DETACH = 2
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
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
        memory_bytes: the kernel's address-space limit (RLIMIT_AS); None for no limit (its
            cgroup bounds its memory).
        max_processes: processes and threads of the sandbox user (RLIMIT_NPROC).
        cpu_seconds: CPU time of the kernel (RLIMIT_CPU); None for no limit.
        file_bytes: the largest file the kernel may write (RLIMIT_FSIZE).
        env: the kernel's whole environment (besides HOME, USER and the like set here).
        cgroup_procs: the ``cgroup.procs`` files process 1 joins before the kernel starts.
    """

    scratch: str
    hide: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    binds: tuple[tuple[str, str], ...] = ()
    uid: int = BASE_UID
    memory_bytes: int | None = 8 * GIB
    max_processes: int = 1024
    cpu_seconds: int | None = None
    file_bytes: int = 2 * GIB
    env: dict[str, str] = field(default_factory=dict)
    cgroup_procs: tuple[str, ...] = ()

    def wrap(self, command: list[str]) -> list[str]:
        """The command line that runs ``command`` (a kernel) inside this sandbox."""
        setpriv = shutil.which("setpriv")
        # Without setpriv a grader killed by SIGKILL leaves the sandbox to its cgroup's reaping.
        die_with_grader = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        return [
            *die_with_grader,
            shutil.which("unshare") or "unshare",
            "--mount",
            "--pid",
            "--net",
            "--ipc",
            "--uts",
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
            ["unshare", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "--kill-child",
             "--mount-proc", "true"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`unshare` failed to run: {error}"
    if trial.returncode != 0:
        detail = trial.stderr.decode(errors="replace").strip().splitlines()
        return f"`unshare` cannot create namespaces here: {detail[-1] if detail else 'error'}"
    return None


def mount_scratch(path: str, size_bytes: int, uid: int) -> None:
    """Mount a tmpfs of ``size_bytes`` owned by ``uid`` (mode 0700) at ``path``: a kernel that
    fills its scratch folder fills only this (its pages count in the kernel's memory cgroup)."""
    options = f"size={size_bytes},mode=0700,uid={uid},gid={uid}"
    _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV, options)


def unmount(path: str) -> None:
    """Detach the file system mounted at ``path`` (nothing when none is)."""
    if _libc().umount2(path.encode(), _MNT_DETACH) != 0:
        error = ctypes.get_errno()
        if error not in (errno.EINVAL, errno.ENOENT):
            raise OSError(error, f"umount {path}: {os.strerror(error)}")


def die_with_parent() -> None:
    """Have this process killed (SIGKILL) when the thread that started it ends: a grading
    worker whose grader is killed goes too, and takes its sandboxes with it."""
    parent = os.getppid()
    if _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the call
        os.kill(os.getpid(), signal.SIGKILL)


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


def _join_cgroups(config: dict) -> None:
    """Move this process (and so the kernel it forks) into the kernel's cgroups."""
    for path in config["cgroup_procs"]:
        with open(path, "w") as procs:
            procs.write("0")


def _set_up_network() -> None:
    """Bring up the loopback of the new network namespace (its only interface) and name the
    host of the new UTS namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(probe, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, _SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | _IFF_UP))
    socket.sethostname(HOSTNAME)


def _set_up_filesystem(config: dict) -> None:
    """Private /run and temporary folders; folders the kernel's user could not reach made
    reachable (and nothing else beside them: e.g. a Python installed under root's home);
    read-only binds; hidden paths last."""
    os.umask(0o022)
    handles = {path: os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in config["expose"]}
    for path in PRIVATE_TMP:
        if os.path.islink(path):  # e.g. /dev/shm -> /run/shm, gone with the old /run
            os.makedirs(os.path.realpath(path), exist_ok=True)
        if os.path.isdir(path):
            mode = "0755" if path == "/run" else "1777"
            _mount("tmpfs", path, "tmpfs", _MS_NOSUID | _MS_NODEV, f"mode={mode},size=1g")
        if path == "/run":  # /var/lock points at /run/lock
            os.mkdir("/run/lock", 0o1777)
            os.chmod("/run/lock", 0o1777)
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
    env = dict(config["env"])
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
    _join_cgroups(config)
    _set_up_network()
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
