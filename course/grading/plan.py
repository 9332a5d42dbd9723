"""The notebook plan: read a submission, find its cells, and decide when each exercise is judged.

A submission is read as a notebook (``.py`` percent format or ``.ipynb``). Each exercise is
judged right after its ``check("X")`` cell (else after the last code cell before the next
exercise heading); statement-level ``check(...)`` calls are replaced by ``pass`` because the
grader judges outside the kernel. ``NameGraph`` (``course.grading.dependencies``) tells which
later cells use a function that hung.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat

from course.grading import reports as report_files
from course.grading.dependencies import NameGraph
from course.grading.registry import Exercise

NOTEBOOK_SUFFIXES = (".py", ".ipynb")
# What the grader reads of a submission at most (a lab's solution: ~30 KB, ~500 lines; a
# notebook with its plots: a few MB). Checked before parsing: a cell of 1.5 million lines
# would cost the grader minutes and gigabytes in parsing alone.
MAX_NOTEBOOK_BYTES = 16 * 1024**2
MAX_NOTEBOOK_LINES = 20_000
MAX_CELL_LINES = 5_000
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
    """Read a submission as a notebook, or raise SubmissionError saying why it cannot be.

    Its size is checked before it is parsed: at most MAX_NOTEBOOK_BYTES, MAX_NOTEBOOK_LINES
    lines of cells and MAX_CELL_LINES in one cell. A ``.ipynb``'s outputs are dropped unread
    (they are not graded).
    """
    shown = report_files.display_path(path.name)
    suffix = path.suffix.lower()
    if suffix not in NOTEBOOK_SUFFIXES:
        raise SubmissionError(f"{shown} is not a notebook; submit a .py or .ipynb file")
    data = _read_capped(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SubmissionError(f"cannot read {shown} as a notebook: it is not UTF-8 text "
                              f"({error.reason} at byte {error.start})") from None
    if suffix == ".py":
        _check_lines(shown, [text], cells=False)
    else:
        text = _without_outputs(shown, text)
    try:
        notebook = jupytext.reads(text, fmt="py:percent" if suffix == ".py" else "ipynb")
    except Exception as error:  # jupytext and nbformat raise many kinds
        raise SubmissionError(
            f"cannot read {shown} as a notebook: {type(error).__name__}: {error}"
        ) from None
    _check_lines(shown, [str(cell.get("source", "")) for cell in notebook.cells])
    return notebook


def _read_capped(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_NOTEBOOK_BYTES, else SubmissionError."""
    shown = report_files.display_path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        raise SubmissionError(f"{shown} does not exist or is not a file") from None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionError(f"{shown} does not exist or is not a file")
        data = file.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise SubmissionError(
            f"{report_files.display_path(path.name)} is larger than the grader reads "
            f"({MAX_NOTEBOOK_BYTES // 1024**2} MiB): clear the outputs and remove large data "
            "from the notebook"
        )
    return data


def _check_lines(shown: str, sources: list[str], cells: bool = True) -> None:
    """Refuse a notebook of more than MAX_NOTEBOOK_LINES lines, or (``cells``) a cell of more
    than MAX_CELL_LINES."""
    counts = [source.count("\n") + 1 for source in sources]
    if sum(counts) > MAX_NOTEBOOK_LINES:
        raise SubmissionError(
            f"{shown} has {sum(counts):,} lines of cells; the grader reads at most "
            f"{MAX_NOTEBOOK_LINES:,}: remove pasted data or generated code"
        )
    for number, count in enumerate(counts, 1):
        if cells and count > MAX_CELL_LINES:
            raise SubmissionError(
                f"cell {number} of {shown} has {count:,} lines; the grader reads at most "
                f"{MAX_CELL_LINES:,} in one cell: remove pasted data or generated code"
            )


def _without_outputs(shown: str, text: str) -> str:
    """A ``.ipynb``'s text with every cell's outputs dropped, after its cells' sizes are
    checked (``_check_lines``); jupytext then parses only what is graded."""
    try:
        notebook = json.loads(text)
    except ValueError as error:
        raise SubmissionError(f"cannot read {shown} as a notebook: {error}") from None
    if not isinstance(notebook, dict):
        raise SubmissionError(f"cannot read {shown} as a notebook: it is not a JSON object")
    cells = notebook.get("cells")
    if not isinstance(cells, list):  # nbformat 3: cells in worksheets; let nbformat judge
        cells = [c for sheet in notebook.get("worksheets") or [] if isinstance(sheet, dict)
                 for c in sheet.get("cells") or []]
    sources = []
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", cell.get("input", ""))
        sources.append("".join(map(str, source)) if isinstance(source, list) else str(source))
        if "outputs" in cell:
            cell["outputs"] = []
    _check_lines(shown, sources)
    return json.dumps(notebook)


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
