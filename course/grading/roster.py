"""A class roster, and which student each submission belongs to.

``roster.csv`` has the columns ``student_id``, ``name`` and ``email`` (``sis_id`` and
``section`` are optional; other columns are ignored; headers are matched without regard to
case, spaces or a byte-order mark). A submission belongs to the student whose id

- is its Canvas user id, for a file of Canvas' bulk download
  (``doejane_LATE_5678_91011_lab01.ipynb``: sortable name, ``_LATE``, user id, attachment id,
  the student's own file name); nothing else in such a name counts, since the student chose
  the end of it;
- otherwise, is the name of a folder between the folder being graded and the file (nbgrader's
  ``submitted/<student_id>/<assignment>/<notebook>.ipynb``), or appears in its file name
  between separators (``alice_01.ipynb`` names ``alice``, but neither ``alice2_01.ipynb`` nor
  ``malice_01.ipynb`` does; id ``123`` is not in ``x_1234.py``).

Ids are compared without regard to case. A file that names no student, or two, a student with
two submissions of one lab, or a roster with a missing column, a missing id or a duplicate id,
is refused before anything is graded, with every problem named: a grade never lands under the
wrong name.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from course.grading.reports import display_path

REQUIRED_COLUMNS = ("student_id", "name", "email")
OPTIONAL_COLUMNS = ("sis_id", "section")
# Canvas' download: <lower-cased sortable name>[_LATE]_<user id>_<attachment id>_<file name>.
_CANVAS_NAME = re.compile(r"^(?P<name>[^\W_]+)(?:_LATE)?_(?P<user>\d+)_(?P<attachment>\d+)_.+$")
_CANVAS_ANONYMOUS = re.compile(r"^(?:LATE_)?anon_", re.IGNORECASE)
_MAX_LISTED = 20


@dataclass(frozen=True)
class Student:
    """One row of the roster."""

    id: str
    name: str
    email: str
    sis_id: str = ""
    section: str = ""

    def as_dict(self) -> dict[str, str]:
        """The student as a report stores it."""
        return asdict(self)


class Roster:
    """The students of a class, in roster order, found by id without regard to case."""

    def __init__(self, students: Iterable[Student], source: str = "the roster"):
        self.students = tuple(students)
        self.source = source
        self._by_id = {student.id.casefold(): student for student in self.students}

    def __len__(self) -> int:
        return len(self.students)

    def get(self, student_id: str) -> Student | None:
        """The student with this id, or None."""
        return self._by_id.get(student_id.casefold())

    def owner(self, path: Path, folders: tuple[str, ...] = ()) -> Student:
        """The student a submission belongs to; ValueError when it names none or several.

        Args:
            path: the submission file (only its name is read).
            folders: the folders between the folder being graded and the file.
        """
        name = path.name
        shown = display_path(path)
        if _CANVAS_ANONYMOUS.match(name):
            raise ValueError(
                f"{shown} comes from an anonymous Canvas download, which names no student: "
                "download the submissions with anonymous grading off"
            )
        canvas = _CANVAS_NAME.match(name)
        if canvas and canvas["name"] == canvas["name"].lower():
            student = self.get(canvas["user"])
            if student is None:
                raise ValueError(
                    f"{shown} is Canvas' download of Canvas user {canvas['user']}, who is not "
                    f"in {self.source}: Canvas names files by the Canvas user id, so use the "
                    "ID column of Canvas' gradebook export as student_id"
                )
            return student
        stem = re.sub(r"\.(py|ipynb)$", "", name, flags=re.IGNORECASE)
        found: dict[str, list[str]] = {}
        for student in self.students:
            if _names(stem, student.id):
                found.setdefault(student.id, []).append("its file name")
            if any(folder.casefold() == student.id.casefold() for folder in folders):
                found.setdefault(student.id, []).append("a folder")
        if len(found) == 1:
            return self.get(next(iter(found)))
        if not found:
            raise ValueError(
                f"{shown} matches no student of {self.source}: no student_id appears in its "
                "file name (between separators such as _ - .) or as the name of a folder "
                "below the folder being graded"
            )
        described = ", ".join(f"{key} (in {' and '.join(where)})" for key, where in found.items())
        raise ValueError(f"{shown} matches {len(found)} students: {described}; rename it")


def read_roster(path: str | Path) -> Roster:
    """Read ``roster.csv``; ValueError naming the columns or rows that are wrong and the fix."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"roster {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"roster {path} is not UTF-8 text ({error}); save it as CSV UTF-8"
        ) from None
    lines = text.splitlines()
    if not lines:
        raise ValueError(f"roster {path} is empty; it needs a header row: student_id,name,email")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(lines, dialect))
    header = [_column(cell) for cell in rows[0]]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise ValueError(
            f"roster {path} lacks the column(s) {', '.join(missing)} (its header is "
            f"{', '.join(rows[0]) or 'empty'}); a roster needs student_id, name, email and may "
            "have sis_id and section"
        )
    repeated = sorted({column for column in header if column and header.count(column) > 1})
    if repeated:
        raise ValueError(f"roster {path} has the column(s) {', '.join(repeated)} twice")
    index = {column: header.index(column) for column in REQUIRED_COLUMNS + OPTIONAL_COLUMNS
             if column in header}
    students, problems, seen, emails = [], [], {}, {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {key: row[at].strip() if at < len(row) else "" for key, at in index.items()}
        student = Student(
            values["student_id"], values["name"], values["email"],
            values.get("sis_id", ""), values.get("section", ""),
        )
        if not student.id:
            problems.append(f"row {number} has no student_id")
            continue
        first = seen.setdefault(student.id.casefold(), number)
        if first != number:
            problems.append(f"student_id {student.id!r} is on rows {first} and {number}")
            continue
        if student.email:
            first = emails.setdefault(student.email.casefold(), number)
            if first != number:
                problems.append(f"email {student.email!r} is on rows {first} and {number}")
        students.append(student)
    if problems:
        raise ValueError(f"roster {path}: {_listed(problems)}; fix the roster (ids are compared "
                         "without regard to case)")
    if not students:
        raise ValueError(f"roster {path} lists no students")
    return Roster(students, source=f"roster {display_path(path)}")


def assign(
    roster: Roster,
    paths: list[Path],
    submissions: list[Path],
    labs: dict[Path, int | None],
) -> dict[Path, Student]:
    """The student of each submission file; ValueError listing every file that names no
    student or two, every student with two submissions of one lab, and files of no known lab.

    Args:
        roster: the class.
        paths: the submission files (as ``find_submissions`` returns them).
        submissions: what was given to grade (files and folders), to tell which folders of a
            path lie below the folder being graded.
        labs: each path's lab (None: unknown).
    """
    owners: dict[Path, Student] = {}
    problems = []
    for path in paths:
        try:
            owners[path] = roster.owner(path, _folders_below(path, submissions))
        except ValueError as error:
            problems.append(str(error))
        if labs.get(path) is None:
            problems.append(f"cannot tell the lab of {display_path(path)} from its name; pass "
                            "--lab N (a student's grade must go to a known lab)")
    taken: dict[tuple[str, int | None], list[Path]] = {}
    for path, student in owners.items():
        taken.setdefault((student.id, labs.get(path)), []).append(path)
    for (student_id, lab), files in taken.items():
        if len(files) > 1 and lab is not None:
            shown = ", ".join(display_path(file) for file in files)
            problems.append(f"student {student_id} has {len(files)} submissions of lab {lab}: "
                            f"{shown}; keep one (or grade them into separate folders)")
    if problems:
        raise ValueError(f"nothing was graded: {_listed(problems)}")
    return owners


def _names(stem: str, student_id: str) -> bool:
    """Whether ``student_id`` appears in ``stem`` with no letter or digit right around it."""
    if student_id.casefold() not in stem.casefold():
        return False
    pattern = rf"(?<![^\W_]){re.escape(student_id)}(?![^\W_])"
    return re.search(pattern, stem, flags=re.IGNORECASE) is not None


def _folders_below(path: Path, submissions: list[Path]) -> tuple[str, ...]:
    """The folders between the given folder a path was found in and the file."""
    for submission in submissions:
        if path == submission:  # a file given as it is
            return ()
        try:
            return path.relative_to(submission).parts[:-1]
        except ValueError:
            continue
    return ()


def _column(header: str) -> str:
    return re.sub(r"\s+", "_", header.strip().lower()).replace("-", "")


def _listed(problems: list[str]) -> str:
    shown = problems[:_MAX_LISTED]
    more = len(problems) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
