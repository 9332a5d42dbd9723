"""Grader side of the answer key: the per-lab copy of ``course`` that the kernel imports.

``package_copy(lab)`` returns ``<cache>/<key>/course``: the package's source with each object
of ``ANSWERS[lab]`` starting with a call to ``guard.refuse`` (a stub keeps its docstring and
nothing else). The source is edited line by line (line numbers of everything else are kept,
so tracebacks point at the textbook's lines), byte-compiled, and published with a rename, so
a reader sees a whole copy or none. ``<key>`` hashes the lab's entries and every file of the
package, so an edited package gets a new copy. The cache folder belongs to the grading user
alone (0700); the copies inside are world-readable, because the sandbox binds one read-only
over the installed package for the kernel's unprivileged user (``settings_for``).
"""

from __future__ import annotations

import ast
import compileall
import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

from course.grading.answer_key import Answer, answers

_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")
_BUILT: dict[tuple[int, str], Path] = {}


def default_cache_dir() -> Path:
    """``/var/cache/course/answer-key`` for root (the sandbox covers a home that other users
    cannot enter, such as ``/root``, before it binds), else ``~/.cache/course/answer-key``."""
    if os.geteuid() == 0:
        return Path("/var/cache/course/answer-key")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "course" / "answer-key"


def package_dir() -> Path:
    import course

    return Path(course.__file__).resolve().parent


def settings_for(lab: int | None, settings, cache_dir: str | Path | None = None):
    """``settings`` with the copy for ``lab`` bound over the installed package (unchanged for
    a lab without entries). Without the sandbox the session puts the copy first on the
    kernel's PYTHONPATH instead."""
    if not answers(lab):
        return settings
    source = package_copy(lab, cache_dir)
    return dataclasses.replace(settings, binds=((str(source), str(package_dir())),))


def package_copy(lab: int, cache_dir: str | Path | None = None) -> Path:
    """The copy of ``course`` for grading ``lab``, built once per lab and package version."""
    source = package_dir()
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = (lab, str(root))
    if key in _BUILT and _BUILT[key].is_dir():
        return _BUILT[key]
    entries = answers(lab)
    folder = root / f"lab{lab:02d}-{_fingerprint(source, entries)}"
    if not folder.is_dir():
        _build(source, entries, lab, root, folder)
    _BUILT[key] = folder / "course"
    return folder / "course"


def _fingerprint(source: Path, entries: tuple[Answer, ...]) -> str:
    digest = hashlib.sha256(repr(entries).encode())
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(source)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _build(source: Path, entries: tuple[Answer, ...], lab: int, root: Path, folder: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # the copies of other labs stay out of a kernel's reach
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        copy = staging / "course"
        shutil.copytree(source, copy, ignore=_SKIPPED)
        for module, module_entries in _by_module(entries).items():
            path = copy.joinpath(*module.split(".")[1:]).with_suffix(".py")
            if not path.is_file():
                path = path.with_suffix("") / "__init__.py"
            path.write_text(guarded_source(path.read_text(), module_entries, lab))
        compileall.compile_dir(str(copy), quiet=1, workers=1)
        for path in [staging, *staging.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        try:
            os.rename(staging, folder)
        except OSError:  # another grader published the same copy first
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _by_module(entries: tuple[Answer, ...]) -> dict[str, dict[str, list[Answer]]]:
    """``{module: {qualname: [entries]}}``: one object may answer several exercises."""
    grouped: dict[str, dict[str, list[Answer]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        grouped[entry.module][entry.qualname].append(entry)
    return grouped


def guarded_source(text: str, objects: dict[str, list[Answer]], lab: int) -> str:
    """``text`` (a module's source) with each function in ``objects`` guarded or stubbed.

    Raises ValueError when an object is not a function defined in this source.
    """
    tree = ast.parse(text)
    defined = dict(functions(tree.body, ""))
    lines = text.splitlines(keepends=True)
    edits = []
    for qualname, entries in objects.items():
        node = defined.get(qualname)
        if node is None:
            raise ValueError(
                f"the answer key names {entries[0].target}, which is not a function of that "
                "module: update course/grading/answer_key/__init__.py"
            )
        if qualname in _called_on_import(tree):
            raise ValueError(
                f"{entries[0].target} runs when its module is imported, so it cannot refuse "
                "to run: list what it returns instead (course/grading/answer_key/__init__.py)"
            )
        edits.append((node, _refusal(entries, lab)))
    for node, statement in sorted(edits, key=lambda edit: -edit[0].lineno):
        body = node.body[1:] if _has_docstring(node) else node.body
        if body and body[0].lineno == node.lineno:
            raise ValueError(f"{node.name}: a one-line function cannot be guarded")
        if "callers=()" in statement:  # a stub: the body's lines become blank
            for index in range(body[0].lineno - 1, body[-1].end_lineno) if body else ():
                lines[index] = "\n"
        if _has_docstring(node):  # the docstring's last line: no line moves
            index = node.body[0].end_lineno - 1
            lines[index] = f"{lines[index].rstrip()}; {statement}\n"
        else:
            indent = " " * body[0].col_offset
            lines.insert(body[0].lineno - 1, f"{indent}{statement}\n")
    return "".join(lines)


def _called_on_import(tree: ast.Module) -> set[str]:
    """Names called by the module's top-level statements (outside any function body)."""
    called, pending = set(), [node for node in tree.body
                              if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
        if isinstance(node, ast.ClassDef):  # its methods run later; its body now
            pending += [child for child in node.body
                        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))]
            pending += node.decorator_list + node.bases
        else:
            pending += list(ast.iter_child_nodes(node))
    return called


def _refusal(entries: list[Answer], lab: int) -> str:
    exercises = " and ".join(sorted({entry.exercise for entry in entries}))
    callers = tuple(sorted({caller for entry in entries for caller in entry.callers}))
    if any(not entry.callers for entry in entries):
        callers = ()  # a stub for one exercise is a stub for all
    return (
        '__import__("course.grading.answer_key.guard", fromlist=["refuse"]).refuse('
        f"{entries[0].dotted!r}, {exercises!r}, {lab}, callers={callers!r})"
    )


def functions(body, prefix: str):
    """``(qualname, node)`` of every function and method (classes searched recursively)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            yield from functions(node.body, f"{prefix}{node.name}.")


def _has_docstring(node) -> bool:
    first = node.body[0]
    return (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str))
