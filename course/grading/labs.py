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

Every lab starts with a cell addressed to students, then (in a lab that uses TensorFlow) one
that starts TensorFlow without its start-up log lines, which would otherwise land in the
student's first cells. The first cell's last
line records a fingerprint of
the text the build wrote. A lab whose text no longer matches its fingerprint has been edited
(a student's answers, most likely): ``build_labs`` refuses to replace or delete it unless told
to (``force``), ``check_labs`` reports it as edited rather than out of date, and
``start_lab`` gives a student a copy of their own to work in.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
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
_HEADER = """\
# %% [markdown]
# **Your copy of lab {lab}.** Fill in each exercise (the code that raises `NotImplementedError`)
# and run the `check("{first}")` cell below it for instant feedback; `check_all()` at the end
# scores the whole lab. Save often: your answers are kept in this file.
#
# *Working from the course's repository? Run `course labs start {lab:02d}` first: it copies this
# lab into `my-labs/`, a folder of your own.*
#
# *Instructors: edit `{source}` instead and run `course labs build`, which
# never replaces a lab that has been edited.*
# <!-- generated from {source} by `course labs build`; fingerprint {fingerprint} -->
"""
# The first code cell of a lab that uses TensorFlow.
_QUIET = """
# %%
# TensorFlow prints start-up lines (CUDA, oneDNN) that are no concern of this lab: start it
# quietly, before anything else imports it.
from course import import_tensorflow_quietly

import_tensorflow_quietly()

"""
_USES_TENSORFLOW = re.compile(r"^\s*(import|from)\s+(keras|tensorflow)\b", re.MULTILINE)
_FINGERPRINT = re.compile(
    r"^# <!-- generated from \S+ by `course labs build`; fingerprint (?P<value>[0-9a-f]{16}) -->$",
    re.MULTILINE,
)
_UNSET = "0" * 16


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
    return _add_header(lines, source, markers), markers


class EditedLabsError(ValueError):
    """``course labs build`` would replace or delete labs that were edited after a build."""

    def __init__(self, paths: list[Path], options: str = ""):
        self.paths = paths
        folder = paths[0].parent
        if paths[0].suffix == ".py":
            labs = " ".join(sorted({path.name[:2] for path in paths}))
            start = f"course labs start {labs}" + (
                "" if folder == Path("labs") else f" --labs {folder}"
            )
            ways = [(start, "copies them into my-labs/ to go on working there")]
        else:
            ways = []
        ways += [
            (
                f"course labs build{options} --backup",
                f"copies every edited one into {folder}/backup-<time>/, then builds",
            ),
            (f"course labs build{options} --force", "builds and discards the edits"),
        ]
        width = max(len(command) for command, _ in ways)
        super().__init__(
            "these files were edited since `course labs build` wrote them (a student's "
            "answers?), so nothing was written:\n"
            + "".join(f"  {path}\n" for path in paths)
            + "Keep the edits, then build again:\n"
            + "\n".join(f"  {command:<{width}}  {what}" for command, what in ways)
        )


def fingerprint(text: str) -> str:
    """The fingerprint ``course labs build`` records in a lab: a hash of its text without it."""
    unset = _FINGERPRINT.sub(lambda match: match[0].replace(match["value"], _UNSET), text)
    return hashlib.sha256(unset.encode("utf-8")).hexdigest()[:16]


def is_edited(text: str) -> bool:
    """Whether a lab's text differs from what the build that wrote it wrote (or has no record)."""
    recorded = _FINGERPRINT.findall(text)
    return len(recorded) != 1 or recorded[0] != fingerprint(text)


def build_labs(
    solutions_dir: str | Path = "solutions",
    labs_dir: str | Path = "labs",
    force: bool = False,
) -> list[Path]:
    """Write ``labs/NN_topic.py`` for every ``solutions/NN_topic.py``.

    Labs already up to date are left as they are; generated labs whose solution no longer
    exists are deleted; other files are left alone.

    Args:
        solutions_dir: the folder of solution notebooks.
        labs_dir: the folder of student labs.
        force: replace (or delete) labs that were edited since the last build. Without it an
            edited lab stops the build before anything is written (see ``edited_labs``).

    Returns:
        The paths of the labs written.

    Raises:
        EditedLabsError: a lab to replace or delete was edited, and ``force`` is not set.
    """
    labs_dir = Path(labs_dir)
    expected = _expected_labs(Path(solutions_dir))
    edited = _edited(labs_dir, expected)
    if edited and not force:
        raise EditedLabsError(edited)
    labs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in expected.items():
        path = labs_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            _write_atomically(path, text)
            written.append(path)
    for path in _extra_labs(labs_dir, expected):
        if _FINGERPRINT.search(path.read_text(encoding="utf-8")):
            path.unlink()
    return written


def edited_labs(
    solutions_dir: str | Path = "solutions", labs_dir: str | Path = "labs"
) -> list[Path]:
    """The labs ``build_labs`` would replace or delete that were edited since their build."""
    return _edited(Path(labs_dir), _expected_labs(Path(solutions_dir)))


def backup_labs(paths: list[Path], labs_dir: str | Path = "labs") -> Path:
    """Copy labs into a new ``labs/backup-<time>/`` folder (never into an existing one).

    Returns:
        The backup folder.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        folder = Path(labs_dir) / (f"backup-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            folder.mkdir(parents=True)
            break
        except FileExistsError:
            continue
    else:
        raise ValueError(f"could not create a new backup folder in {labs_dir}; remove old ones")
    for path in paths:
        shutil.copy2(path, folder / path.name)
    return folder


def start_lab(lab: int, labs_dir: str | Path = "labs", into: str | Path = "my-labs") -> Path:
    """Copy ``labs/NN_topic.py`` into a student's own folder, never over an existing copy.

    Returns:
        The path of the student's copy.

    Raises:
        ValueError: there is no such lab, or the student already has a copy (named).
    """
    labs_dir, into = Path(labs_dir), Path(into)
    sources = sorted(labs_dir.glob(f"{lab:02d}_*.py"))
    if not sources:
        available = ", ".join(path.name[:2] for path in sorted(labs_dir.glob(LAB_FILES)))
        raise ValueError(
            f"there is no lab {lab} in {labs_dir}/ (labs there: {available or 'none'}); "
            "pass its number, e.g. `course labs start 02`, or --labs DIR"
        )
    source = sources[0]
    copy = into / source.name
    if copy.resolve() == source.resolve():
        raise ValueError(f"{copy} is the lab itself; pass another folder with --dir")
    into.mkdir(parents=True, exist_ok=True)
    try:
        with open(copy, "x", encoding="utf-8") as file:
            file.write(source.read_text(encoding="utf-8"))
    except FileExistsError:
        raise ValueError(
            f"you already have a copy of lab {lab}: {copy}. Open it to go on working; to start "
            f"afresh, rename it first (nothing was overwritten)"
        ) from None
    return copy


def check_labs(solutions_dir: str | Path = "solutions", labs_dir: str | Path = "labs") -> list[str]:
    """List the problems of the labs (empty: in sync and every exercise checked).

    A lab is missing, out of date (unchanged since a build of an older solution), edited since
    its build, or without a solution; an exercise marker has no registered check, or a
    registered check has no marker in the solution; an exercise heading is not written
    ``# ## Exercise N.M: title``.
    """
    labs_dir = Path(labs_dir)
    expected = _expected_labs(Path(solutions_dir))
    problems = unchecked_markers(Path(solutions_dir)) + heading_problems(Path(solutions_dir))
    for name, text in expected.items():
        path = labs_dir / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif is_edited(path.read_text(encoding="utf-8")):
            problems.append(f"{path}: {EDITED}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: out of date")
    problems += [
        f"{path}: has no solution in {solutions_dir}" for path in _extra_labs(labs_dir, expected)
    ]
    return problems


EDITED = "edited since `course labs build` wrote it (a student's answers?); a build keeps it"


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


def _add_header(lines: list[str], source: str, markers: list[Marker]) -> str:
    """Join the lab's lines, putting the students' cell after any jupytext YAML header, and
    record the text's fingerprint in it."""
    match = re.match(r"(\d+)", Path(source).name)
    lab = int(match[1]) if match else 0
    first = markers[0].id if markers else f"{lab}.1"
    header = _HEADER.format(lab=lab, first=first, source=source, fingerprint=_UNSET)
    if any(_USES_TENSORFLOW.search(line) for line in lines):
        header += _QUIET
    start = 0
    if lines and lines[0] == "# ---":
        start = lines.index("# ---", 1) + 1 if "# ---" in lines[1:] else 0
    text = "\n".join(lines[:start] + header.splitlines() + lines[start:]) + "\n"
    return text.replace(f"fingerprint {_UNSET}", f"fingerprint {fingerprint(text)}", 1)


def _edited(labs_dir: Path, expected: dict[str, str]) -> list[Path]:
    """The labs a build would replace or delete whose text was edited since their build."""
    replaced = [labs_dir / name for name in expected if (labs_dir / name).exists()]
    deleted = [
        path
        for path in _extra_labs(labs_dir, expected)
        if _FINGERPRINT.search(path.read_text(encoding="utf-8"))
    ]
    return [
        path
        for path in replaced + deleted
        if path.read_text(encoding="utf-8") != expected.get(path.name)
        and is_edited(path.read_text(encoding="utf-8"))
    ]


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _extra_labs(labs_dir: Path, expected: dict[str, str]) -> list[Path]:
    return [path for path in sorted(labs_dir.glob(LAB_FILES)) if path.name not in expected]


def _fail(source: str, line: int, problem: str) -> NoReturn:
    raise ValueError(f"{source}:{line}: {problem}")
