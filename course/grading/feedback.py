"""Feedback for the student: ``OUT/feedback/<report name>.html`` and ``.md`` per report.

Per exercise: its points, the grader's hint, after which cell it was judged, and the cells
before it that raised or ran out of time (with the error). Nothing here quotes the solution:
the page is built from the report (hints and notes) and the student's own notebook (a cell's
number and first line), and any line of the lab's solution that still shows up in that text
(a student who copied one, a hint that quotes one) is blanked out. Everything taken from the
submission or the grader is escaped, so a student's ``<script>`` stays text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course.grading import reports as report_files
from course.grading.labs import make_lab
from course.grading.registry import exercises

FOLDER = "feedback"
HIDDEN = "[…]"
_NOTE_CELL = re.compile(r"^cell (?P<number>\d+)\b")
_CODE = re.compile(r"`([^`\n]+)`")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>&|#!])")
_SHORTEST_SECRET = 6  # solution lines shorter than this ("else:", "])") give nothing away


@dataclass
class ExerciseFeedback:
    """What a student reads about one exercise."""

    id: str
    title: str
    points: float
    max_points: float
    passed: bool
    hint: str
    judged_after: str = ""
    problems: list[str] = field(default_factory=list)


@dataclass
class Feedback:
    """A student's feedback on one lab."""

    title: str
    score: str
    summary: str
    exercises: list[ExerciseFeedback]
    other_notes: list[str]


def write_feedback(
    report: dict[str, Any],
    out_dir: Path,
    name: str,
    submission: Path | None = None,
    solutions_dir: Path | None = None,
) -> tuple[Path, Path]:
    """Write ``out_dir/feedback/<name>.html`` and ``.md`` for one report.

    Args:
        report: the grader's report (``course.grading.reports``).
        out_dir: the grading output folder.
        name: the report's file name without ``.json``.
        submission: the graded notebook, to name the cells (None: cells are not named).
        solutions_dir: the folder of solution notebooks, whose lines are blanked out.
    """
    folder = report_files.make_folder(Path(out_dir) / FOLDER)
    secrets = secret_lines(solutions_dir, report.get("lab"))
    feedback = build_feedback(report, submission, secrets)
    paths = folder / f"{name}.html", folder / f"{name}.md"
    report_files.write_atomically(paths[0], to_html(feedback))
    report_files.write_atomically(paths[1], to_markdown(feedback))
    return paths


def build_feedback(
    report: dict[str, Any], submission: Path | None = None, secrets: frozenset[str] = frozenset()
) -> Feedback:
    """The feedback of one report: per exercise the points, the hint, where it went wrong."""

    def clean(text: str) -> str:
        for line in secrets:
            text = text.replace(line, HIDDEN)
        return text

    student = report.get("student") or {}
    lab = report.get("lab")
    what = f"lab {lab}" if lab is not None else "your submission"
    who = student.get("name") or student.get("id") or _file_name(report["submission"])
    title = f"Feedback on {what}" + (f" for {who}" if who else "")
    score = f"{report['points']:g} / {report['max_points']:g} points"
    if report["status"] == "missing":
        summary = (f"No submission of {what} was found for you. If you did submit it, tell "
                   "your instructor.")
        return Feedback(clean(title), score, summary, [], [])
    summary = "Every exercise got its points." if report["points"] == report["max_points"] else ""
    if report["message"]:
        summary = f"{_capitalized(report['status'])}: {report['message']}"
    judged_at, labels = _judged_cells(submission, lab)
    notes = list(report.get("notes", []))
    problems: dict[str, list[str]] = {}
    other_notes = []
    for note in notes:
        cell = _NOTE_CELL.match(note)
        at = int(cell["number"]) - 1 if cell else None
        later = [key for key, index in judged_at.items() if at is not None and index >= at]
        if later:
            first = min(later, key=judged_at.get)
            problems.setdefault(first, []).append(clean(_capitalized(note)))
        else:
            other_notes.append(clean(_capitalized(note)))
    entries = [
        ExerciseFeedback(
            id=entry["id"],
            title=clean(entry["title"]),
            points=entry["points"],
            max_points=entry["max_points"],
            passed=entry["passed"],
            hint="" if entry["passed"] else clean(entry["message"]),
            judged_after=clean(labels.get(entry["id"], "")),
            problems=[] if entry["passed"] else problems.get(entry["id"], []),
        )
        for entry in report["exercises"]
    ]
    return Feedback(clean(title), score, clean(summary), entries, other_notes)


def secret_lines(solutions_dir: Path | None, lab: int | None) -> frozenset[str]:
    """The lines of lab ``lab``'s solution that its student version does not show (stripped;
    very short ones left out)."""
    if solutions_dir is None or lab is None:
        return frozenset()
    matches = sorted(Path(solutions_dir).glob(f"{lab:02d}_*.py"))
    if len(matches) != 1:
        return frozenset()
    solution = matches[0].read_text(encoding="utf-8")
    try:
        shown = {line.strip() for line in make_lab(solution, str(matches[0]))[0].splitlines()}
    except ValueError:  # misplaced markers: no line can be told from the lab's, hide them all
        shown = set()
    return frozenset(
        stripped
        for stripped in (line.strip() for line in solution.splitlines())
        if len(stripped) >= _SHORTEST_SECRET
        and stripped not in shown
        and not stripped.startswith("###")
        and any(character.isalnum() for character in stripped)
    )


def to_markdown(feedback: Feedback) -> str:
    """The feedback as Markdown; text from the submission or grader is backslash-escaped."""
    lines = [f"# {_md(feedback.title)}", "", f"**{_md(feedback.score)}**", ""]
    if feedback.summary:
        lines += [_md(feedback.summary), ""]
    for entry in feedback.exercises:
        mark = "passed" if entry.passed else "lost its points"
        lines += [
            f"## Exercise {_md(entry.id)}: {_md(entry.title)}",
            "",
            f"**{entry.points:g} / {entry.max_points:g} points** ({mark})",
            "",
        ]
        if entry.hint:
            lines += [f"- What to fix: {_md(entry.hint)}"]
        if entry.judged_after and not entry.passed:
            lines += [f"- Judged after {_md(entry.judged_after)}"]
        lines += [f"- Before that: {_md(problem)}" for problem in entry.problems]
        lines += [""] if not entry.passed else []
    if feedback.other_notes:
        lines += ["## Other notes", ""] + [f"- {_md(note)}" for note in feedback.other_notes]
        lines += [""]
    return "\n".join(lines).rstrip() + "\n"


def to_html(feedback: Feedback) -> str:
    """The feedback as one self-contained, escaped HTML page (no scripts, no network)."""
    parts = [
        f"<h1>{_html(feedback.title)}</h1>",
        f'<p class="score">{_html(feedback.score)}</p>',
    ]
    if feedback.summary:
        parts.append(f'<p class="summary">{_html(feedback.summary)}</p>')
    for entry in feedback.exercises:
        state = "passed" if entry.passed else "failed"
        parts.append(f'<section class="{state}">')
        parts.append(
            f"<h2><span>Exercise {_html(entry.id)}: {_html(entry.title)}</span>"
            f'<span class="points">{entry.points:g} / {entry.max_points:g}</span></h2>'
        )
        details = []
        if entry.hint:
            details.append(f"<li><b>What to fix:</b> {_html(entry.hint)}</li>")
        if entry.judged_after and not entry.passed:
            details.append(f"<li>Judged after {_html(entry.judged_after)}</li>")
        details += [f"<li>Before that: {_html(problem)}</li>" for problem in entry.problems]
        if details:
            parts.append("<ul>" + "".join(details) + "</ul>")
        parts.append("</section>")
    if feedback.other_notes:
        notes = "".join(f"<li>{_html(note)}</li>" for note in feedback.other_notes)
        parts.append(f"<h2>Other notes</h2><ul>{notes}</ul>")
    body = "\n".join(parts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_html(feedback.title)}</title>
<style>{_STYLE}</style></head>
<body><main>
{body}
</main></body></html>
"""


_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; color: #222; background: #f6f7f9; margin: 0; }
main { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
.score { font-size: 1.25rem; font-weight: 600; margin-top: 0; }
section { background: #fff; border-left: 6px solid; border-radius: 4px; padding: 0.6rem 1rem;
          margin: 0.8rem 0; box-shadow: 0 1px 2px rgba(0, 0, 0, 0.08); }
section.passed { border-color: #2e8540; }
section.failed { border-color: #c0392b; }
h2 { font-size: 1.05rem; margin: 0.2rem 0; display: flex; justify-content: space-between;
     gap: 1rem; }
.points { white-space: nowrap; }
ul { margin: 0.3rem 0; padding-left: 1.2rem; }
code { background: #eef0f3; padding: 0 0.2rem; border-radius: 3px; overflow-wrap: anywhere; }
"""


def _judged_cells(submission: Path | None, lab: int | None) -> tuple[dict[str, int], dict]:
    """For each exercise, the index of the cell it was judged after and how to name it."""
    if submission is None or lab is None:
        return {}, {}
    from course.grading.plan import SubmissionError, cell_label, make_plan, read_notebook

    try:
        notebook = read_notebook(Path(submission))
        plan = make_plan(notebook, exercises(lab))
    except (SubmissionError, ValueError, SyntaxError):  # feedback without cell names, then
        return {}, {}
    judged_at = {entry.id: index for index, after in plan.after.items() for entry in after}
    labels = {key: cell_label(index, notebook.cells[index]) for key, index in judged_at.items()}
    return judged_at, labels


def _file_name(submission: str) -> str:
    return Path(submission).name if submission else ""


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _html(text: str) -> str:
    """Escaped text, with `code` spans shown as code."""
    return _CODE.sub(r"<code>\1</code>", html.escape(text, quote=True))


def _md(text: str) -> str:
    """Text as literal Markdown on one line: `code` spans stay code spans (whose content
    Markdown shows as it is), every other character Markdown or HTML would read is escaped."""
    pieces = _CODE.split(" ".join(str(text).split()))
    return "".join(
        f"`{piece}`" if index % 2 else _MARKDOWN_SPECIAL.sub(r"\\\1", piece)
        for index, piece in enumerate(pieces)
    )
