"""Grading reports: a run's report, its schema, unique file names, atomic writes, grades.csv.

Each submission's report is ``OUT/<name>-<hash>.json``: ``name`` is a readable form of the file
name, ``hash`` is taken from the bytes of its absolute path, so two different files never
share a report whatever their names (case, folders, bytes that are not UTF-8), and grading
the same file again replaces its report. Graded with a roster, a report belongs to a student
and a lab instead (``OUT/<student_id>_labNN.json``, see ``student_report_name``): the student's
next submission of that lab replaces it, and a roster student without a submission gets a
report of status ``missing``. ``grades.csv`` is rebuilt from every report in the folder after
each report is written, so the two never disagree.

Every file written here is readable as an ordinary file would be (mode 0666 less the umask,
not mkstemp's 0600), and under ``sudo`` it belongs to the user who ran sudo (``SUDO_UID`` and
``SUDO_GID``), so that the instructor can read the reports without root.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from course.grading.limits import Limits
from course.grading.registry import CheckResult, Exercise

if TYPE_CHECKING:  # the report of a run: what execution produced and how it ran
    from course.grading.execution import Outcome
    from course.grading.settings import Settings

SCHEMA = "course-grade-report/2"
CSV_NAME = "grades.csv"
STATUSES = ("ok", "not attempted", "timeout", "crashed", "error", "missing")
STUDENT_KEYS = ("id", "name", "email", "sis_id", "section")
EXERCISE_KEYS = {"id": str, "title": str, "message": str, "passed": bool}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NOTEBOOK_SUFFIX = re.compile(r"\.(py|ipynb)$", re.IGNORECASE)


class InvalidReport(ValueError):
    """A report file that does not follow the schema."""


def display_path(path: str | Path) -> str:
    """A path as printable text: bytes that are not UTF-8 become ``\\xNN`` escapes."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def report_name(path: str | Path) -> str:
    """The report file name (without ``.json``) of a submission, unique per absolute path."""
    raw = os.fsencode(os.path.realpath(os.fspath(path)))
    stem = _NOTEBOOK_SUFFIX.sub("", display_path(Path(os.fspath(path)).name))
    readable = _UNSAFE.sub("_", stem).strip("._")[:60] or "submission"
    return f"{readable}-{hashlib.sha256(raw).hexdigest()[:12]}"


def student_report_name(student_id: str, lab: int) -> str:
    """The report file name (without ``.json``) of a student's submission of a lab.

    ``alice`` -> ``alice_lab01``; an id with characters unsafe in a file name gets a hash of
    the id too, so two ids never share a name.
    """
    readable = _UNSAFE.sub("_", student_id).strip("._")[:60]
    if readable != student_id:
        digest = hashlib.sha256(student_id.encode("utf-8")).hexdigest()[:8]
        readable = f"{readable or 'student'}-{digest}"
    return f"{readable}_lab{lab:02d}"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets the mode an ordinary new file would (0666 less the umask) and, under sudo,
    the owner who ran sudo (``hand_over``).
    """
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, 0o666 & ~_umask())
        hand_over(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def make_folder(path: Path) -> Path:
    """Create ``path`` (and its missing parents) like ``mkdir -p``, handing each new folder to
    the user who ran sudo; ValueError if it is a file."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file; give a folder")
    missing = [folder for folder in [path, *path.parents] if not folder.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for folder in missing:
        hand_over(folder)
    return path


def hand_over(path: Path) -> None:
    """Under sudo (running as root with ``SUDO_UID`` set), give ``path`` to the user who ran
    sudo, so that they can read what the grader wrote without root."""
    uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    if os.geteuid() != 0 or not uid.isdigit():
        return
    os.chown(path, int(uid), int(gid) if gid.isdigit() else -1, follow_symlinks=False)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_report(report: dict[str, Any], out_dir: Path, name: str) -> Path:
    """Validate ``report`` and write it as ``out_dir/name.json``, atomically."""
    validate(report)
    path = out_dir / f"{name}.json"
    write_atomically(path, json.dumps(report, indent=2, ensure_ascii=True))
    return path


def validate(report: Any) -> dict[str, Any]:
    """Raise InvalidReport unless ``report`` follows the schema (points within their maxima)."""
    if not isinstance(report, dict):
        raise InvalidReport("a report is a JSON object")
    if report.get("schema") != SCHEMA:
        raise InvalidReport(f"schema is {report.get('schema')!r}, not {SCHEMA!r}")
    for key, kind in [("submission", str), ("status", str), ("message", str)]:
        if not isinstance(report.get(key), kind):
            raise InvalidReport(f"{key!r} is missing or not a {kind.__name__}")
    if report["status"] not in STATUSES:
        raise InvalidReport(f"status {report['status']!r} is not one of {STATUSES}")
    lab = report.get("lab")
    if lab is not None and (isinstance(lab, bool) or not isinstance(lab, int)):
        raise InvalidReport("'lab' is not a number")
    student = report.get("student")
    if student is not None and not (
        isinstance(student, dict)
        and all(isinstance(student.get(key), str) for key in STUDENT_KEYS)
        and student["id"]
    ):
        raise InvalidReport(f"'student' is not an object with the strings {STUDENT_KEYS}")
    exercises = report.get("exercises")
    if not isinstance(exercises, list):
        raise InvalidReport("'exercises' is missing or not a list")
    ids = set()
    for entry in exercises:
        if not isinstance(entry, dict):
            raise InvalidReport("an exercise is not an object")
        for key, kind in EXERCISE_KEYS.items():
            if not isinstance(entry.get(key), kind):
                raise InvalidReport(f"exercise key {key!r} is missing or not a {kind.__name__}")
        if entry["id"] in ids:
            raise InvalidReport(f"exercise {entry['id']} appears twice")
        ids.add(entry["id"])
        points, maximum = _number(entry.get("points")), _number(entry.get("max_points"))
        if points is None or maximum is None or not 0 <= points <= maximum:
            raise InvalidReport(f"exercise {entry['id']}: points must lie in [0, max_points]")
        if points > 0 and not entry["passed"]:
            raise InvalidReport(f"exercise {entry['id']}: points for a failed exercise")
    total = sum(entry["points"] for entry in exercises)
    maximum = sum(entry["max_points"] for entry in exercises)
    if not (_close(report.get("points"), total) and _close(report.get("max_points"), maximum)):
        raise InvalidReport("'points' and 'max_points' are not the sums over the exercises")
    flags = report.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
        raise InvalidReport("'flags' is not a list of strings")
    return report


def read_reports(out_dir: Path) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The valid reports in ``out_dir`` and (file name, problem) for report files that are not.

    JSON files without the report schema marker are not reports and are left alone.
    """
    found, invalid = read_report_files(out_dir)
    return [report for _, report in found], invalid


def read_report_files(
    out_dir: Path,
) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[str, str]]]:
    """Like ``read_reports``, with each valid report's file."""
    reports, invalid = [], []
    for path in sorted(out_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            invalid.append((path.name, f"unreadable: {error}"))
            continue
        if not isinstance(data, dict) or "schema" not in data:
            continue
        try:
            reports.append((path, validate(data)))
        except InvalidReport as error:
            invalid.append((path.name, str(error)))
    return reports, invalid


def rebuild_csv(out_dir: Path) -> Path:
    """Rewrite ``out_dir/grades.csv`` from every report in ``out_dir``, atomically.

    Columns: student_id and name (only when a report has a student, i.e. grading used a
    roster), submission, lab, one per exercise, total, max, status, reason (why the submission
    did not get every point: the grader's message and every exercise that lost points).
    """
    reports, invalid = read_reports(out_dir)
    reports.sort(key=lambda report: (report["lab"] or 0, _student(report, "id"),
                                     report["submission"]))
    ids = list(dict.fromkeys(entry["id"] for report in reports for entry in report["exercises"]))
    ids.sort(key=exercise_order)
    students = any(report.get("student") for report in reports)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*(["student_id", "name"] if students else []), "submission", "lab", *ids,
                     "total", "max", "status", "reason"])
    for report in reports:
        points = {entry["id"]: entry["points"] for entry in report["exercises"]}
        row = [_student(report, "id"), _student(report, "name")] if students else []
        row += [report["submission"], "" if report["lab"] is None else report["lab"]]
        row += [_format(points[key]) if key in points else "" for key in ids]
        row += [_format(report["points"]), _format(report["max_points"]), report["status"]]
        writer.writerow([*row, reason(report)])
    for name, problem in invalid:
        row = ["", ""] if students else []
        row += [name, "", *[""] * len(ids), "", "", "error", f"invalid report: {problem}"]
        writer.writerow(row)
    path = out_dir / CSV_NAME
    write_atomically(path, buffer.getvalue())
    return path


def reason(report: dict[str, Any]) -> str:
    """Why a report has fewer than all points, in one line ('' when it has them all): the
    grader's message, then every exercise that lost points with its hint (exercises whose hint
    only repeats that message, or the stubs of a lab not attempted, are listed by id)."""
    parts = [report["message"]] if report["message"] else []
    failed = [entry for entry in report["exercises"] if not entry["passed"]]
    grouped: dict[str, list[str]] = {}
    for entry in failed:
        message = entry["message"]
        if report["status"] == "not attempted" and message.startswith("not implemented yet"):
            grouped.setdefault("not implemented yet", []).append(entry["id"])
        elif report["message"] and report["message"] in message:
            grouped.setdefault("no points", []).append(entry["id"])
        else:
            parts.append(f"{entry['id']}: {message}")
    parts += [f"{label}: {', '.join(ids)}" for label, ids in grouped.items()]
    # For the instructor: exercise code that names or copies the package's answer.
    parts += [f"FLAGGED {flag}" for flag in report.get("flags") or []]
    return "; ".join(parts)


def _student(report: dict[str, Any], key: str) -> str:
    return (report.get("student") or {}).get(key, "")


def exercise_order(exercise_id: str) -> tuple:
    """Sort key of exercise ids: 1.2 before 1.10."""
    return tuple(int(part) if part.isdigit() else math.inf for part in exercise_id.split("."))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _close(value: Any, expected: float) -> bool:
    number = _number(value)
    return number is not None and abs(number - expected) < 1e-9


def _format(value: float) -> str:
    return f"{value:g}"


# --- a run's report ------------------------------------------------------------------------


def build_report(
    path: Path,
    lab: int | None,
    entries: list[Exercise],
    outcome: Outcome,
    elapsed: float,
    settings: Settings,
    limits: Limits | None = None,
) -> dict[str, Any]:
    """The JSON report of one submission (validated against the schema when written)."""
    graded = [_graded(entry, outcome) for entry in entries]
    status, message = outcome.status, outcome.message
    if status == "ok" and _nothing_attempted(outcome, graded):
        status, message = (
            "not attempted",
            "no exercise was attempted (each still raises NotImplementedError)",
        )
    warnings = []
    if not settings.sandbox:
        warnings.append(
            f"NOT SANDBOXED ({settings.unsandboxed_reason}): the kernel could read "
            "the solutions and write outside its folder"
        )
    warnings.extend(settings.warnings)  # what this run's machine could not give (cgroups, ...)
    return {
        "schema": SCHEMA,
        "submission": display_path(path),
        "lab": lab,
        "points": sum(e["points"] for e in graded),
        "max_points": sum(e["max_points"] for e in graded),
        "elapsed_s": round(elapsed, 1),
        "status": status,
        "message": message,
        "sandboxed": settings.sandbox,
        "warnings": warnings,
        "limits": (limits or Limits()).describe(),
        "notes": outcome.notes,
        "exercises": graded,
    }


def _graded(entry: Exercise, outcome: Outcome) -> dict[str, Any]:
    """One exercise in the report: its verdict, or why it has none."""
    result = outcome.results.get(entry.id)
    if result is None:
        why = outcome.message or "its cell never ran"
        state = "not attempted" if outcome.status == "not attempted" else "not graded"
        result = CheckResult(entry.id, entry.title, 0, entry.points, False, f"{state}: {why}")
    return {
        "id": entry.id,
        "title": entry.title,
        "points": entry.points if result.passed else 0,  # a verdict never gives more or less
        "max_points": entry.points,
        "passed": bool(result.passed),
        "message": result.message,
    }


def _nothing_attempted(outcome: Outcome, graded: list[dict[str, Any]]) -> bool:
    """Whether no exercise passed and each one still raises its NotImplementedError stub."""
    if not graded or any(exercise["passed"] for exercise in graded):
        return False
    return outcome.untouched or all(
        exercise["message"].startswith("not implemented yet") for exercise in graded
    )


def missing_report(student: dict[str, str], lab: int, entries: list[Exercise]) -> dict[str, Any]:
    """The report of a roster student with no submission of a lab: status ``missing``, every
    exercise at 0 points."""
    message = "no submission of this lab was found for this student"
    exercises = [
        {"id": entry.id, "title": entry.title, "points": 0, "max_points": entry.points,
         "passed": False, "message": message}
        for entry in entries
    ]
    return {
        "schema": SCHEMA,
        "submission": "",
        "student": dict(student),
        "lab": lab,
        "points": 0,
        "max_points": sum(entry.points for entry in entries),
        "elapsed_s": 0.0,
        "status": "missing",
        "message": message,
        "sandboxed": False,
        "warnings": [],
        "limits": {},
        "notes": [],
        "exercises": exercises,
    }


def progress_line(report: dict[str, Any]) -> str:
    """One line of ``course grade``'s progress: who or what, points, seconds, status."""
    name = _student(report, "id") or Path(report["submission"]).name
    score = f"{report['points']:g}/{report['max_points']:g}"
    line = f"{name:<32} {score:>9}  {report['elapsed_s']:6.1f} s  {report['status']}"
    return f"{line}: {report['message']}" if report["message"] else line
