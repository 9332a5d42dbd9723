"""The gradebook: every lab's reports joined into one table, one row per roster student.

``course gradebook GRADES_DIR... --roster roster.csv --out gradebook.csv`` reads the reports
that ``course grade --roster`` wrote (each folder may hold several labs) and writes one row per
student: id, name, email, sis_id, section, the points of each lab (``missing`` when the student
has no submission), the total, the maximum and notes (labs that did not run cleanly).

The same table goes to the LMS (``course.grading.exports``). Refused, with every case named:
reports graded without a roster, students not in the roster, two reports of one student for
one lab, and a lab whose reports disagree on its maximum.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course.grading import reports as report_files
from course.grading.roster import Roster, Student

MISSING = "missing"


@dataclass(frozen=True)
class Grade:
    """One student's result in one lab: points (None: no submission) and how it ran."""

    points: float | None
    status: str
    message: str = ""


@dataclass(frozen=True)
class Gradebook:
    """Students (roster order) by labs: points of each lab, its maximum, and the totals."""

    students: tuple[Student, ...]
    labs: tuple[int, ...]
    max_points: dict[int, float]
    grades: dict[tuple[str, int], Grade]

    def grade(self, student: Student, lab: int) -> Grade:
        """The student's grade in the lab (``missing`` when no report has it)."""
        return self.grades.get((student.id, lab), Grade(None, MISSING))

    def total(self, student: Student) -> float:
        """The student's points over every lab (a missing lab counts 0)."""
        return sum(self.grade(student, lab).points or 0 for lab in self.labs)

    def maximum(self) -> float:
        return sum(self.max_points.values())

    def notes(self, student: Student) -> str:
        """Labs that did not run cleanly or were not submitted, in one line."""
        notes = []
        for lab in self.labs:
            grade = self.grade(student, lab)
            if grade.status == MISSING:
                notes.append(f"lab {lab}: missing")
            elif grade.status != "ok":
                notes.append(f"lab {lab}: {grade.status}" + (f" ({grade.message})"
                                                            if grade.message else ""))
        return "; ".join(notes)


def collect(grades_dirs: list[str | Path], roster: Roster) -> Gradebook:
    """Join the reports in ``grades_dirs`` by student and lab; ValueError naming every report
    that cannot be placed (and why) before anything is written."""
    problems: list[str] = []
    placed: dict[tuple[str, int], tuple[str, dict[str, Any]]] = {}
    maxima: dict[int, dict[float, str]] = {}
    for folder in map(Path, grades_dirs):
        if not folder.is_dir():
            problems.append(f"{folder} is not a folder of reports (course grade --out)")
            continue
        found, invalid = report_files.read_report_files(folder)
        problems += [f"{folder / name}: {problem}" for name, problem in invalid]
        if not found and not invalid:
            problems.append(f"{folder} holds no reports of course grade")
        for path, report in found:
            where = str(path)
            student = report.get("student")
            if not student:
                problems.append(f"{where} was graded without --roster (no student): grade "
                                "again with course grade --roster")
                continue
            known = roster.get(student["id"])
            if known is None:
                problems.append(f"{where} belongs to {student['id']!r}, who is not in "
                                f"{roster.source}")
                continue
            if report["lab"] is None:
                problems.append(f"{where} has no lab number")
                continue
            key = (known.id, report["lab"])
            if key in placed and placed[key][0] != where:
                problems.append(f"{known.id} has two reports for lab {report['lab']}: "
                                f"{placed[key][0]} and {where}; remove one")
                continue
            placed[key] = (where, report)
            maxima.setdefault(report["lab"], {}).setdefault(report["max_points"], where)
    for lab, values in sorted(maxima.items()):
        if len(values) > 1:
            listed = ", ".join(f"{value:g} ({where})" for value, where in values.items())
            problems.append(f"lab {lab}'s reports disagree on its maximum: {listed}; grade the "
                            "lab again with one version of its checks")
    if problems:
        raise ValueError("no gradebook written: " + "; ".join(problems))
    grades = {
        key: Grade(
            None if report["status"] == MISSING else float(report["points"]),
            report["status"],
            report["message"] if report["status"] not in ("ok", MISSING) else "",
        )
        for key, (_, report) in placed.items()
    }
    labs = tuple(sorted(maxima))
    max_points = {lab: float(next(iter(maxima[lab]))) for lab in labs}
    return Gradebook(roster.students, labs, max_points, grades)


def lab_titles(labs: tuple[int, ...], titles: dict[int, str] | None = None) -> dict[int, str]:
    """Each lab's column title: ``titles[lab]`` if given, else ``Lab N``; ValueError for two
    labs with one title or a title for a lab that was not graded."""
    titles = dict(titles or {})
    unknown = sorted(set(titles) - set(labs))
    if unknown:
        raise ValueError(f"a title is given for lab(s) {unknown}, which no report grades; "
                         f"the labs graded are {list(labs)}")
    chosen = {lab: titles.get(lab) or f"Lab {lab}" for lab in labs}
    if len(set(chosen.values())) < len(chosen):
        raise ValueError(f"two labs have the same title: {chosen}; give each its own")
    return chosen


def gradebook_csv(book: Gradebook, titles: dict[int, str]) -> str:
    """The gradebook as CSV text: student columns, ``<title> (out of N)`` per lab, total,
    max, notes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student_id", "name", "email", "sis_id", "section",
                     *(f"{titles[lab]} (out of {book.max_points[lab]:g})" for lab in book.labs),
                     "total", "max", "notes"])
    for student in book.students:
        cells = []
        for lab in book.labs:
            points = book.grade(student, lab).points
            cells.append(MISSING if points is None else format_points(points))
        writer.writerow([student.id, student.name, student.email, student.sis_id,
                         student.section, *cells, format_points(book.total(student)),
                         format_points(book.maximum()), book.notes(student)])
    return buffer.getvalue()


def format_points(value: float) -> str:
    """Points as the LMS imports them: at most two decimals, no trailing zeros."""
    return f"{round(value, 2):g}"


def write_text(path: str | Path, text: str) -> Path:
    """Write an export atomically (its folder must exist), readable by the user who ran sudo."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as {path / 'gradebook.csv'}")
    if not path.parent.is_dir():
        raise ValueError(f"the folder {path.parent} does not exist; create it first")
    report_files.write_atomically(path, text)
    return path
