"""Generate the student labs from the solution notebooks by removing the marked solutions.

In ``solutions/NN_topic.py`` (jupytext percent format) an exercise is marked as::

    def sample_z(mean, log_var):
        ### BEGIN SOLUTION 2.1: Sample z with the reparameterization trick.
        epsilon = keras.random.normal(ops.shape(mean))
        return mean + ops.exp(0.5 * log_var) * epsilon
        ### END SOLUTION

and ``labs/NN_topic.py`` gets, at the marker's indentation::

    def sample_z(mean, log_var):
        raise NotImplementedError("Exercise 2.1: Sample z with the reparameterization trick.")
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from course.grading.registry import checks_module, exercises, lab_of

LAB_FILES = "[0-9][0-9]_*.py"
_BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\b(?P<rest>.*)$")
_END = re.compile(r"^[ \t]*### END SOLUTION\b")
_CELL = re.compile(r"^# %%")
# Any markdown heading that names an exercise, and the one style every lab writes it in.
_ANY_HEADING = re.compile(r"^#\s*#+\s*Exercise\b")
_HEADING = re.compile(r"^# ## Exercise \d+(\.\w+)+: \S")
HEADING_STYLE = "# ## Exercise N.M: title"
_HEADER = (
    "# This lab is generated from {source} by `course labs build`.\n"
    "# Instructors: edit the solution and rebuild; never edit this file by hand.\n"
)
_HEADER_FIRST_LINE = "# This lab is generated from "


@dataclass(frozen=True)
class Marker:
    """One ``### BEGIN SOLUTION id: hint`` marker: where it is and what it says."""

    id: str
    hint: str
    indent: str
    line: int

    @property
    def stub(self) -> str:
        """The line that replaces the solution in the student's lab."""
        message = f"Exercise {self.id}: {self.hint}" if self.hint else f"Exercise {self.id}"
        return f"{self.indent}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})"


def make_lab(solution: str, source: str = "solutions/lab.py") -> tuple[str, list[Marker]]:
    """Replace every marked solution in a solution notebook's text by a stub.

    Args:
        solution: the text of a percent-format solution notebook.
        source: the file's name, used in the header and in error messages.

    Returns:
        The student lab's text (with a "generated" header) and the exercise markers found.
    """
    lines: list[str] = []
    markers: list[Marker] = []
    open_marker: Marker | None = None
    for number, line in enumerate(solution.splitlines(), start=1):
        begin = _BEGIN.match(line)
        if begin:
            if open_marker:
                _fail(
                    source,
                    number,
                    f"nested BEGIN SOLUTION inside exercise {open_marker.id} "
                    f"(opened on line {open_marker.line}); close it with ### END SOLUTION first",
                )
            open_marker = _parse_marker(begin, source, number)
            markers.append(open_marker)
            lines.append(open_marker.stub)
        elif _END.match(line):
            if not open_marker:
                _fail(source, number, "### END SOLUTION without a ### BEGIN SOLUTION before it")
            open_marker = None
        elif open_marker and _CELL.match(line):
            _fail(
                source,
                number,
                f"exercise {open_marker.id} (line {open_marker.line}) runs into "
                "the next cell; put ### END SOLUTION before the '# %%' line",
            )
        elif not open_marker:
            lines.append(line)
    if open_marker:
        _fail(source, open_marker.line, f"exercise {open_marker.id} has no ### END SOLUTION")
    return _add_header(lines, source), markers


def build_labs(
    solutions_dir: str | Path = "solutions", labs_dir: str | Path = "labs"
) -> list[Path]:
    """Write ``labs/NN_topic.py`` for every ``solutions/NN_topic.py``.

    Generated labs whose solution no longer exists are deleted; other files are left alone.

    Returns:
        The paths of the labs written.
    """
    labs_dir = Path(labs_dir)
    expected = _expected_labs(Path(solutions_dir))
    labs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected.items():
        path = labs_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for path in _extra_labs(labs_dir, expected):
        if _HEADER_FIRST_LINE in path.read_text(encoding="utf-8"):
            path.unlink()
    return written


def check_labs(solutions_dir: str | Path = "solutions", labs_dir: str | Path = "labs") -> list[str]:
    """List the problems of the labs (empty: in sync and every exercise checked).

    A lab is missing, out of date or without a solution; an exercise marker has no registered
    check, or a registered check has no marker in the solution; an exercise heading is not
    written ``# ## Exercise N.M: title``.
    """
    labs_dir = Path(labs_dir)
    expected = _expected_labs(Path(solutions_dir))
    problems = unchecked_markers(Path(solutions_dir)) + heading_problems(Path(solutions_dir))
    for name, text in expected.items():
        path = labs_dir / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: out of date")
    problems += [
        f"{path}: has no solution in {solutions_dir}" for path in _extra_labs(labs_dir, expected)
    ]
    return problems


def _expected_labs(solutions_dir: Path) -> dict[str, str]:
    """The text every lab should have, by file name, after checking ids are unique."""
    if not solutions_dir.is_dir():
        raise ValueError(f"solutions folder {solutions_dir} does not exist; pass --solutions DIR")
    labs: dict[str, str] = {}
    seen: dict[str, str] = {}
    for path in sorted(solutions_dir.glob(LAB_FILES)):
        source = f"{solutions_dir.name}/{path.name}"
        text, markers = make_lab(path.read_text(encoding="utf-8"), source)
        for marker in markers:
            _check_id(marker, source, int(path.name[:2]), seen)
        labs[path.name] = text
    return labs


def unchecked_markers(solutions_dir: Path) -> list[str]:
    """The markers without a registered check and the checks without a marker, per solution."""
    problems = []
    for path in sorted(solutions_dir.glob(LAB_FILES)):
        lab = int(path.name[:2])
        source = f"{solutions_dir.name}/{path.name}"
        markers = make_lab(path.read_text(encoding="utf-8"), source)[1]
        if not markers:
            continue
        try:
            registered = {entry.id for entry in exercises(lab)}
        except ValueError:
            registered = set()
        for marker in markers:
            if marker.id not in registered:
                problems.append(
                    f"{source}:{marker.line}: exercise {marker.id} has no check; register one "
                    f"with @exercise({marker.id!r}, ...) in {checks_module(lab)}"
                )
        for exercise_id in sorted(registered - {marker.id for marker in markers}):
            problems.append(
                f"{source}: exercise {exercise_id} has a check in {checks_module(lab)} but no "
                f"### BEGIN SOLUTION {exercise_id} marker"
            )
    return problems


def heading_problems(solutions_dir: Path) -> list[str]:
    """The exercise headings of the solutions not written in the labs' one style."""
    problems = []
    for path in sorted(solutions_dir.glob(LAB_FILES)):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if _ANY_HEADING.match(line) and not _HEADING.match(line):
                problems.append(
                    f"{solutions_dir.name}/{path.name}:{number}: the exercise heading "
                    f"{line.strip()!r} should read {HEADING_STYLE!r}"
                )
    return problems


def _check_id(marker: Marker, source: str, lab: int, seen: dict[str, str]) -> None:
    """Fail on an exercise id used twice or belonging to another lab's number."""
    where = f"{source}:{marker.line}"
    if marker.id in seen:
        _fail(
            source,
            marker.line,
            f"exercise id {marker.id} is used twice (also at "
            f"{seen[marker.id]}); give each exercise its own id",
        )
    if lab_of(marker.id) != lab:
        _fail(
            source,
            marker.line,
            f"exercise {marker.id} belongs to lab {lab_of(marker.id)}, "
            f"but this is lab {lab}; number it {lab}.<n>",
        )
    seen[marker.id] = where


def _parse_marker(begin: re.Match, source: str, number: int) -> Marker:
    exercise_id, _, hint = begin["rest"].partition(":")
    exercise_id = exercise_id.strip()
    if not exercise_id:
        _fail(
            source,
            number,
            "BEGIN SOLUTION needs an exercise id: ### BEGIN SOLUTION 2.1: one-line hint",
        )
    try:
        lab_of(exercise_id)
    except ValueError as error:
        _fail(source, number, str(error))
    return Marker(id=exercise_id, hint=hint.strip(), indent=begin["indent"], line=number)


def _add_header(lines: list[str], source: str) -> str:
    """Join the lab's lines, putting the "generated" header after any jupytext YAML header."""
    header = _HEADER.format(source=source).splitlines()
    start = 0
    if lines and lines[0] == "# ---":
        start = lines.index("# ---", 1) + 1 if "# ---" in lines[1:] else 0
    return "\n".join(lines[:start] + header + lines[start:]) + "\n"


def _extra_labs(labs_dir: Path, expected: dict[str, str]) -> list[Path]:
    return [path for path in sorted(labs_dir.glob(LAB_FILES)) if path.name not in expected]


def _fail(source: str, line: int, problem: str) -> NoReturn:
    raise ValueError(f"{source}:{line}: {problem}")
