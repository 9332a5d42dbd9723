"""The notebook plan: read a submission, find its cells, and decide when each exercise is judged.

A submission is read as a notebook (``.py`` percent format or ``.ipynb``). Each exercise is
judged right after its ``check("X")`` cell (else after the last code cell before the next
exercise heading); statement-level ``check(...)`` calls are replaced by ``pass`` because the
grader judges outside the kernel. ``NameGraph`` (``course.grading.dependencies``) tells which
later cells use a function that hung.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

from course.grading import reports as report_files
from course.grading.dependencies import NameGraph
from course.grading.registry import Exercise

NOTEBOOK_SUFFIXES = (".py", ".ipynb")
# A statement that only calls check("X") or check_all(...): the grader judges outside instead.
_CHECK_CALL = re.compile(
    r"^(?P<indent>[ \t]*)(?:_\s*=\s*)?check(?:_all)?\([^()\n]*\)[ \t]*;?[ \t]*(?:#.*)?$", re.M
)
_CHECK_ID = r"""check\(\s*["']{id}["']"""


class SubmissionError(Exception):
    """A submission that cannot be graded at all (missing, unreadable, unknown lab)."""


def find_submissions(submissions: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders replaced by the notebooks inside them (``.py``/``.ipynb`` in any
    case; hidden folders and symbolic links skipped); each file once."""
    paths, seen = [], set()
    for submission in map(Path, submissions):
        if submission.is_dir():
            found = sorted(
                p
                for p in submission.rglob("*")
                if p.suffix.lower() in NOTEBOOK_SUFFIXES
                and p.is_file()
                and not p.is_symlink()
                and not _is_hidden(p.relative_to(submission))
            )
        else:
            found = [submission]
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                paths.append(path)
    return paths


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a submission as a notebook, or raise SubmissionError saying why it cannot be."""
    shown = report_files.display_path(path.name)
    if not path.is_file():
        raise SubmissionError(f"{report_files.display_path(path)} does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in NOTEBOOK_SUFFIXES:
        raise SubmissionError(f"{shown} is not a notebook; submit a .py or .ipynb file")
    try:
        if suffix == ".py":
            return jupytext.reads(path.read_text(encoding="utf-8"), fmt="py:percent")
        return jupytext.reads(path.read_text(encoding="utf-8"), fmt="ipynb")
    except Exception as error:  # jupytext and nbformat raise many kinds
        raise SubmissionError(
            f"cannot read {shown} as a notebook: {type(error).__name__}: {error}"
        ) from None


@dataclass
class Plan:
    """When each exercise is judged (after which cell), the functions and classes it defines,
    and what every cell uses."""

    after: dict[int, list[Exercise]]
    names: dict[str, set[str]]
    graph: NameGraph


def make_plan(notebook: nbformat.NotebookNode, entries: list[Exercise]) -> Plan:
    """Each exercise is judged after its ``check("X")`` cell, else after the last code cell
    before the next exercise heading; exercises found nowhere wait for the end. Its cells run
    from its heading (or its check cell) to that cell."""
    cells = list(enumerate(notebook.cells))
    graph = NameGraph({i: c.source for i, c in cells if is_code(c)})
    after: dict[int, list[Exercise]] = {}
    names: dict[str, set[str]] = {}
    for entry in entries:
        escaped = re.escape(entry.id)
        checker = re.compile(_CHECK_ID.format(id=escaped))
        heading = re.compile(rf"Exercise\s+{escaped}\b")
        start = next(
            (i for i, c in cells if c.get("cell_type") == "markdown" and heading.search(c.source)),
            None,
        )
        at = next((i for i, c in cells if is_code(c) and checker.search(c.source)), None)
        if at is None and start is not None:
            for i, cell in cells[start + 1 :]:
                if cell.get("cell_type") == "markdown" and re.search(r"Exercise\s+\d", cell.source):
                    break
                if is_code(cell):
                    at = i
        if at is not None:
            after.setdefault(at, []).append(entry)
            first = start if start is not None and start < at else at
            names[entry.id] = graph.definitions(range(first, at + 1))
    return Plan(after, names, graph)


def without_checks(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The cell with statement-level ``check(...)``/``check_all(...)`` calls replaced by ``pass``:
    while grading, the checks (hidden from the kernel) run in the grader instead."""
    source = _CHECK_CALL.sub(r"\g<indent>pass  # judged by the grader", cell.source)
    return nbformat.v4.new_code_cell(source) if source != cell.source else cell


# --- the kernel ----------------------------------------------------------------------------


def cell_label(index: int, cell: nbformat.NotebookNode) -> str:
    """How a report names a cell: its number in the notebook and its first line of code."""
    lines = [line.strip() for line in str(cell.source).splitlines() if line.strip()]
    return f"cell {index + 1} (`{lines[0][:40] if lines else ''}`)"


def _is_hidden(path: Path) -> bool:
    """Whether a path lies in a hidden folder or is a hidden file (``.ipynb_checkpoints``)."""
    return any(part.startswith(".") for part in path.parts)


def is_code(cell: nbformat.NotebookNode) -> bool:
    return cell.get("cell_type") == "code" and bool(str(cell.get("source", "")).strip())
