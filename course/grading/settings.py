"""What a grading run allows its kernels: smoke mode, the sandbox (or why not), what it hides.

``make_settings`` decides once per run whether kernels are sandboxed (root on Linux with
namespaces), whether each gets a cgroup (``course.grading.cgroups``; without one a warning
says that only per-process limits hold), and which paths the sandbox hides: the solutions, the
checks (verdicts), the repository around the package (its ``.git``, ``tests/``,
``solutions/`` and every other file but the package), the output folder, the submission
folders and the calibration cache. Locations are real ones (symbolic links resolved), found
from the package itself: a ``PYTHONPATH`` naming the repository (or a folder above it) does not
make it visible.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from course.grading import cgroups
from course.grading.limits import default_cache_dir
from course.grading.registry import DEFAULT_CHECKS_PACKAGE
from course.grading.sandbox import GIB, unavailable_reason


@dataclass(frozen=True)
class Settings:
    """How kernels run.

    Attributes:
        smoke: run with ``COURSE_SMOKE=1``.
        sandbox: whether kernels are sandboxed; ``unsandboxed_reason`` says why not.
        hide: the paths a sandboxed kernel sees empty.
        memory_bytes: each kernel's memory (its cgroup's limit, tmpfs and shared memory
            included; the address space where there is no cgroup); None for no limit.
        scratch_bytes: the size of each kernel's scratch folder (a tmpfs); None: a plain folder.
        cgroups: whether each sandboxed kernel gets a cgroup (CPU weight, memory, processes).
        warnings: what this run does not guarantee that it normally would (for the reports).
        slot: the worker's number: where it starts looking for a free sandbox uid.
        binds: ``(source, target)`` pairs bound read-only in the sandbox.
    """

    smoke: bool = True
    sandbox: bool = True
    unsandboxed_reason: str = ""
    hide: tuple[str, ...] = ()
    memory_bytes: int | None = 8 * GIB
    scratch_bytes: int | None = 2 * GIB
    cgroups: bool = False
    warnings: tuple[str, ...] = ()
    slot: int = 0
    binds: tuple[tuple[str, str], ...] = ()


def make_settings(
    sandbox: bool | None,
    smoke: bool,
    memory_gb: float | None,
    out_dir: Path,
    submissions: list[Path],
    solutions_dir: Path | None,
    cache_dir: Path | None = None,
) -> Settings:
    """Decide how this run's kernels run; print a warning for each guarantee that is missing.

    Raises:
        ValueError: ``sandbox`` is True and the machine cannot sandbox kernels.
    """
    reason = unavailable_reason() if sandbox is not False else "--no-sandbox was given"
    if sandbox is True and reason:
        raise ValueError(f"cannot sandbox the kernels: {reason}")
    if reason and os.geteuid() == 0:
        reason += "; the kernel runs as root (uid 0)"
    if reason:
        _warn(
            f"grading WITHOUT a sandbox ({reason}): student code can read the "
            "solutions and write anywhere this user can. Every report says so."
        )
    warnings = []
    no_cgroups = None if reason else cgroups.unavailable_reason()
    if no_cgroups:
        warnings.append(
            f"no cgroup per kernel ({no_cgroups}): CPU is shared by weight of process, not of "
            "kernel, and memory is bounded per process (address space), tmpfs not counted"
        )
        _warn(warnings[-1])
    if not reason and shutil.which("setpriv") is None:
        warnings.append(
            "`setpriv` (util-linux) is missing: kernels of a grader killed by SIGKILL run on "
            "until the next grading run reaps them"
        )
        _warn(warnings[-1])
    hide = () if reason else hidden_paths(out_dir, submissions, solutions_dir, cache_dir)
    memory = int(memory_gb * GIB) if memory_gb else None
    return Settings(
        smoke=smoke,
        sandbox=not reason,
        unsandboxed_reason=reason or "",
        hide=hide,
        memory_bytes=memory,
        cgroups=not reason and not no_cgroups,
        warnings=tuple(warnings),
    )


def _warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def hidden_paths(
    out_dir: Path,
    submissions: list[Path],
    solutions_dir: Path | None,
    cache_dir: Path | None = None,
) -> tuple:
    """What the kernel must not see: the solutions, the checks, the output folder, the
    submission folders, the calibration cache and the course's repository (its tests hold
    mistakes and hints, its ``.git`` every solution), all but what the kernel needs to run
    (Python, its packages, the ``course`` package without its checks, PYTHONPATH entries
    that lie outside the repository or inside it, never the repository itself or above)."""
    import importlib.util
    import site

    import course

    package_dir = Path(course.__file__).resolve().parent
    repository = package_dir.parent
    needed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *site.getsitepackages())}
    needed.add(package_dir)
    needed |= {path for path in _python_path() if not repository.is_relative_to(path)}
    hide: list[Path] = []
    if (repository / ".git").exists() or (repository / "pyproject.toml").exists():
        hide += _all_but(repository, needed)
    for folder in [out_dir] + [s if s.is_dir() else s.parent for s in submissions]:
        hide += _all_but(folder.resolve(), needed)
    if solutions_dir is not None:
        hide.append(solutions_dir.resolve())
    caches = {default_cache_dir().parent, Path(cache_dir) if cache_dir else None} - {None}
    hide += [cache.resolve() for cache in caches]
    for package in {DEFAULT_CHECKS_PACKAGE, os.environ.get("COURSE_CHECKS_PACKAGE") or ""} - {""}:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            hide.append(Path(location).resolve())
    return tuple(dict.fromkeys(str(path) for path in hide if path.exists()))


def _python_path() -> list[Path]:
    """The folders of ``PYTHONPATH``, symbolic links resolved."""
    entries = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return [Path(entry).resolve() for entry in entries if entry]


def _all_but(folder: Path, needed: set[Path]) -> list[Path]:
    """``folder`` if it holds nothing in ``needed``, else its other entries, recursively
    (symbolic links are left alone: hiding one would hide its target)."""
    if not any(path == folder or path.is_relative_to(folder) for path in needed):
        return [folder]
    if folder in needed or not folder.is_dir():
        return []
    hidden = []
    for child in sorted(folder.iterdir()):
        if not child.is_symlink() and (child.is_dir() or child.is_file()):
            hidden += _all_but(child, needed)
    return hidden


def solutions_dir_for(solutions: str | Path | None) -> Path | None:
    if solutions is not None:
        return Path(solutions)
    import course

    for candidate in (
        Path.cwd() / "solutions",
        Path(course.__file__).resolve().parents[1] / "solutions",
    ):
        if candidate.is_dir():
            return candidate
    return None


def runtime_paths() -> tuple[str, ...]:
    """The folders a kernel needs to read: Python, its packages, ``course``, and PYTHONPATH
    entries other than the repository and the folders above it."""
    import site

    import course

    package_dir = Path(course.__file__).resolve().parent
    paths = [Path(p).resolve() for p in (sys.base_prefix, sys.prefix, *site.getsitepackages())]
    paths.append(package_dir)
    paths += [path for path in _python_path() if not package_dir.parent.is_relative_to(path)]
    return tuple(dict.fromkeys(str(path) for path in paths if path.is_dir()))
