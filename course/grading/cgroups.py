"""One cgroup per sandboxed kernel: its CPU weight, its memory and its processes, killed at the end.

Every kernel gets the same CPU weight, so a neighbour's 16 busy processes take one kernel's
share of the CPU, not the machine (all kernels together weigh as much as one busy process per
core against the machine's other processes); a memory limit that counts what the kernel puts
in tmpfs and shared memory (``/tmp``, ``/dev/shm``, its scratch folder), so it cannot push a
neighbour into the OOM killer; and a limit on its processes and threads.
``KernelCgroup.remove`` kills what is left in the group and removes it.

Groups live at ``<hierarchy>/course-grade/<name>``: with cgroup v2 (``/sys/fs/cgroup`` is
cgroup2) in the one hierarchy (``cpu.weight``, ``memory.max``, ``memory.swap.max``,
``pids.max``), with cgroup v1 in the ``cpu``, ``memory`` and ``pids`` hierarchies
(``cpu.shares``, ``memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes``, ``pids.max``).
The kernel joins them from the sandbox's process 1 before it starts (``cgroup.procs`` files).
Where no group can be made (no root, no controllers) ``unavailable_reason`` says why and the
kernel runs without them (a warning says so).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
GROUP = "course-grade"
CONTROLLERS = ("cpu", "memory", "pids")
CPU_WEIGHT_V2 = 100  # the default weight: every kernel the same
CPU_SHARES_V1 = 1024
_availability: dict[str, str | None] = {}


@dataclass(frozen=True)
class KernelCgroup:
    """The cgroup(s) of one kernel: one folder per hierarchy (one with cgroup v2)."""

    folders: tuple[str, ...]

    @property
    def procs_files(self) -> tuple[str, ...]:
        """The ``cgroup.procs`` files a process writes ``0`` into to join the group."""
        return tuple(os.path.join(folder, "cgroup.procs") for folder in self.folders)

    def pids(self) -> set[int]:
        """The processes in the group now."""
        found: set[int] = set()
        for path in self.procs_files:
            try:
                found |= {int(line) for line in Path(path).read_text().split()}
            except OSError:
                continue
        return found

    def remove(self, patience: float = 5.0) -> None:
        """Kill every process left in the group, then remove the group's folders."""
        kill_file = Path(self.folders[0]) / "cgroup.kill"  # cgroup v2, Linux 5.14+
        deadline = time.monotonic() + patience
        while (left := self.pids()) and time.monotonic() < deadline:
            if kill_file.exists():
                _write(kill_file, "1")
            for pid in left:
                _kill(pid)
            time.sleep(0.02)
        for folder in self.folders:
            try:
                os.rmdir(folder)
            except OSError:  # gone already, or still busy: the next run's reaping removes it
                pass


def unavailable_reason() -> str | None:
    """Why kernels cannot get cgroups on this machine, or None when they can."""
    if "reason" not in _availability:
        try:
            trial = create("probe-" + str(os.getpid()), memory_bytes=None, max_processes=64)
            trial.remove()
            _availability["reason"] = None
        except OSError as error:
            _availability["reason"] = f"cannot make cgroups here ({error})"
    return _availability["reason"]


def create(name: str, memory_bytes: int | None, max_processes: int) -> KernelCgroup:
    """A fresh group ``course-grade/<name>`` with one kernel's limits (an old one of that name
    is emptied and removed first). Raises OSError when the machine has no usable cgroups."""
    folders = []
    for hierarchy, controllers in _hierarchies():
        parent = hierarchy / GROUP
        parent.mkdir(mode=0o755, exist_ok=True)
        if _is_v2(hierarchy):
            wanted = " ".join(f"+{controller}" for controller in controllers)
            for folder in (hierarchy, parent):
                _write(folder / "cgroup.subtree_control", wanted)
        if "cpu" in controllers:  # all kernels together weigh one busy process per core
            cores = os.cpu_count() or 1
            if _is_v2(hierarchy):
                _write(parent / "cpu.weight", str(min(10000, CPU_WEIGHT_V2 * cores)))
            else:
                _write(parent / "cpu.shares", str(CPU_SHARES_V1 * cores))
        folders.append(str(parent / name))
    group = KernelCgroup(tuple(folders))
    group.remove()  # a group of this name left by a killed grader
    for folder in group.folders:
        os.mkdir(folder, 0o755)
    try:
        _set_limits(group, memory_bytes, max_processes)
    except OSError:
        group.remove()
        raise
    return group


def remove(name: str) -> None:
    """Empty and remove the group ``course-grade/<name>`` if it exists (a killed grader's)."""
    folders = tuple(str(hierarchy / GROUP / name) for hierarchy, _ in _hierarchies_or_none())
    if folders:
        KernelCgroup(folders).remove()


def _set_limits(group: KernelCgroup, memory_bytes: int | None, max_processes: int) -> None:
    for folder in map(Path, group.folders):
        files = {p.name for p in folder.iterdir()}
        if "cpu.weight" in files:
            _write(folder / "cpu.weight", str(CPU_WEIGHT_V2))
        if "cpu.shares" in files:
            _write(folder / "cpu.shares", str(CPU_SHARES_V1))
        if "pids.max" in files:
            _write(folder / "pids.max", str(max_processes))
        if memory_bytes:
            if "memory.max" in files:
                _write(folder / "memory.max", str(memory_bytes))
            if "memory.swap.max" in files:
                _write(folder / "memory.swap.max", "0")
            if "memory.limit_in_bytes" in files:
                _write(folder / "memory.limit_in_bytes", str(memory_bytes))
            if "memory.memsw.limit_in_bytes" in files:  # memory and swap: after the memory limit
                _write(folder / "memory.memsw.limit_in_bytes", str(memory_bytes))


def _hierarchies() -> list[tuple[Path, tuple[str, ...]]]:
    """``(mount point, controllers)`` of the hierarchies holding cpu, memory and pids."""
    found = _hierarchies_or_none()
    have = {controller for _, controllers in found for controller in controllers}
    missing = [controller for controller in CONTROLLERS if controller not in have]
    if missing:
        raise OSError(f"no cgroup controller {', '.join(missing)} is mounted")
    return found


def _hierarchies_or_none() -> list[tuple[Path, tuple[str, ...]]]:
    if _is_v2(ROOT):
        available = (ROOT / "cgroup.controllers").read_text().split()
        return [(ROOT, tuple(c for c in CONTROLLERS if c in available))]
    found = []
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    for line in mounts:
        fields = line.split()
        if len(fields) < 4 or fields[2] != "cgroup":
            continue
        options = fields[3].split(",")
        controllers = tuple(c for c in CONTROLLERS if c in options)
        if controllers:
            found.append((Path(fields[1]), controllers))
    return found


def _is_v2(hierarchy: Path) -> bool:
    return (hierarchy / "cgroup.controllers").exists()


def _write(path: Path, text: str) -> None:
    with open(path, "w") as file:
        file.write(text)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
