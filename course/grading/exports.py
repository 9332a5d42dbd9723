"""The gradebook in the formats that Canvas and Moodle import.

Canvas (Grades > Import; read in ``instructure/canvas-lms:lib/gradebook_importer.rb``): the
header is ``Student, ID, SIS User ID, SIS Login ID, Section`` and one column per assignment;
a second row starting ``Points Possible`` gives each assignment's points. Canvas finds the
student by ``ID`` (the Canvas user id), then by SIS User ID, then by name. It reads a header
ending in ``(digits)`` as the id of an existing assignment, so a lab's title never gets its
points in parentheses: ``Lab 1`` matches the assignment of that exact title (or creates one),
and ``--title "1=Lab 1 (4711)"`` targets assignment 4711. A blank cell is "no score".

Moodle (Grades > Import > CSV file; ``grade/import/csv``): one column that identifies the user
(mapped to "Email address", or to "Username" for ``key="username"``, which writes the roster's
student_id) and one column per grade item, mapped by hand on import. ``-`` is "no grade". An
unknown or blank user aborts Moodle's whole import, so students without an email are refused.
"""

from __future__ import annotations

import csv
import io

from course.grading.gradebook import Gradebook, format_points, lab_titles

CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_KEYS = {"email": "Email address", "username": "Username"}


def canvas_csv(book: Gradebook, titles: dict[int, str] | None = None) -> str:
    """The gradebook as a Canvas gradebook import: a missing lab is a blank cell (no score).

    ``ID`` holds the roster's student_id when it is a number (Canvas user ids are; Canvas
    bulk downloads name files by them) and stays blank otherwise, so that Canvas matches the
    student by SIS User ID (the roster's sis_id) or name instead of by a wrong number.
    """
    names = lab_titles(book.labs, titles)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*CANVAS_STUDENT_COLUMNS, *(names[lab] for lab in book.labs)])
    writer.writerow(["Points Possible", "", "", "", "",
                     *(format_points(book.max_points[lab]) for lab in book.labs)])
    for student in book.students:
        canvas_id = student.id if student.id.isdigit() else ""
        if not (canvas_id or student.sis_id):
            raise ValueError(
                f"student {student.id!r} has neither a numeric Canvas user id as student_id nor "
                "a sis_id: Canvas could match them by name only; add their sis_id to the roster"
            )
        writer.writerow([student.name, canvas_id, student.sis_id, "", student.section,
                         *(_points(book, student, lab, "") for lab in book.labs)])
    return buffer.getvalue()


def moodle_csv(book: Gradebook, titles: dict[int, str] | None = None, key: str = "email") -> str:
    """The gradebook as a Moodle grade import: the user column, then one column per lab; a
    missing lab is ``-`` (no grade)."""
    if key not in MOODLE_KEYS:
        raise ValueError(f"the Moodle user column is one of {sorted(MOODLE_KEYS)}, not {key!r}")
    names = lab_titles(book.labs, titles)
    without = [student.id for student in book.students if not student.email]
    if key == "email" and without:
        raise ValueError(
            f"students {', '.join(without)} have no email in the roster, and Moodle aborts the "
            "whole import on a row without its user: add their emails, or use the username key"
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([MOODLE_KEYS[key], *(names[lab] for lab in book.labs)])
    for student in book.students:
        user = student.email if key == "email" else student.id
        writer.writerow([user, *(_points(book, student, lab, "-") for lab in book.labs)])
    return buffer.getvalue()


def _points(book: Gradebook, student, lab: int, none: str) -> str:
    points = book.grade(student, lab).points
    return none if points is None else format_points(points)
