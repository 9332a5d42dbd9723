"""What a grading run allows its kernels: smoke mode, the sandbox (or why not), what it hides.

``make_settings`` decides once per run whether kernels are sandboxed (root on Linux with
namespaces) and which paths the sandbox hides: the solutions, the checks (verdicts), the
repository around the package (its ``.git`` and ``tests/``), the output folder and the
submission folders, all but what a kernel needs to run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from course.grading.registry import DEFAULT_CHECKS_PACKAGE
from course.grading.sandbox import GIB, unavailable_reason


@dataclass(frozen=True)
class Settings:
    """How kernels run: smoke mode, the sandbox (or why not), what it hides, memory."""

    smoke: bool = True
    sandbox: bool = True
    unsandboxed_reason: str = ""
    hide: tuple[str, ...] = ()
    memory_bytes: int | None = 8 * GIB
    slot: int = 0
    binds: tuple[tuple[str, str], ...] = ()  # (source, target): bound read-only in the sandbox


def make_settings(
    sandbox: bool | None,
    smoke: bool,
    memory_gb: float | None,
    out_dir: Path,
    submissions: list[Path],
    solutions_dir: Path | None,
) -> Settings:
    reason = unavailable_reason() if sandbox is not False else "--no-sandbox was given"
    if sandbox is True and reason:
        raise ValueError(f"cannot sandbox the kernels: {reason}")
    if reason:
        print(
            f"WARNING: grading WITHOUT a sandbox ({reason}): student code can read the "
            "solutions and write anywhere this user can. Every report says so.",
            file=sys.stderr,
            flush=True,
        )
    hide = hidden_paths(out_dir, submissions, solutions_dir) if not reason else ()
    memory = int(memory_gb * GIB) if memory_gb else None
    return Settings(
        smoke=smoke,
        sandbox=not reason,
        unsandboxed_reason=reason or "",
        hide=hide,
        memory_bytes=memory,
    )


def hidden_paths(out_dir: Path, submissions: list[Path], solutions_dir: Path | None) -> tuple:
    """What the kernel must not see: the solutions, the checks, the output folder, the
    submission folders and the course's repository (its tests hold mistakes and hints, its
    ``.git`` every solution), all but what the kernel needs to run (Python, its packages, the
    ``course`` package without its checks, the PYTHONPATH)."""
    import importlib.util
    import site

    import course

    package_dir = Path(course.__file__).resolve().parent
    needed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, *site.getsitepackages())}
    needed.add(package_dir)
    needed |= {
        Path(entry).resolve()
        for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if entry
    }
    hide: list[Path] = []
    repository = package_dir.parent
    if (repository / ".git").exists() or (repository / "pyproject.toml").exists():
        hide += _all_but(repository, needed)
    for folder in [out_dir] + [s if s.is_dir() else s.parent for s in submissions]:
        hide += _all_but(folder.resolve(), needed)
    if solutions_dir is not None:
        hide.append(solutions_dir.resolve())
    for package in {DEFAULT_CHECKS_PACKAGE, os.environ.get("COURSE_CHECKS_PACKAGE") or ""} - {""}:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            hide.append(Path(location).resolve())
    return tuple(dict.fromkeys(str(path) for path in hide if path.exists()))


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
    """The folders a kernel needs to read: Python, its packages, ``course``, PYTHONPATH."""
    import site

    import course

    paths = [sys.base_prefix, sys.prefix, *site.getsitepackages()]
    paths.append(str(Path(course.__file__).resolve().parent))
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    real = [os.path.realpath(p) for p in paths if os.path.isdir(p)]
    return tuple(dict.fromkeys(real))
