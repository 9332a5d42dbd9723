"""Where the class struggles: one static HTML page from a folder of grading reports.

``course report GRADES_DIR --out report.html`` shows, per lab: how many submissions passed each
exercise (a bar chart), the most common hints with their counts, the distribution of scores (a
histogram) and the slowest submissions. The page is self-contained (figures are inline PNGs,
styles inline, no script, nothing fetched), so it opens from a mail attachment or offline;
text from reports (hints, names) is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections import Counter
from pathlib import Path
from typing import Any

from course.grading import reports as report_files

TOP_HINTS = 10
SLOWEST = 10
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def write_class_report(grades_dir: str | Path, out: str | Path) -> Path:
    """Write the class page for the reports in ``grades_dir`` to ``out`` (atomically)."""
    from course.grading.gradebook import write_text

    grades_dir = Path(grades_dir)
    if not grades_dir.is_dir():
        raise ValueError(f"{grades_dir} is not a folder of reports (course grade --out)")
    reports, invalid = report_files.read_reports(grades_dir)
    if not reports:
        raise ValueError(f"{grades_dir} holds no reports of course grade")
    return write_text(out, class_page(reports, grades_dir, invalid))


def class_page(
    reports: list[dict[str, Any]], source: Path, invalid: list[tuple[str, str]] = ()
) -> str:
    """The HTML page: one section per lab."""
    labs = sorted({report["lab"] for report in reports}, key=lambda lab: (lab is None, lab))
    sections = [_lab_section(lab, [r for r in reports if r["lab"] == lab]) for lab in labs]
    skipped = ""
    if invalid:
        items = "".join(f"<li>{_html(name)}: {_html(problem)}</li>" for name, problem in invalid)
        skipped = f"<h2>Reports left out</h2><ul>{items}</ul>"
    title = f"Class report: {source.name or source}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_html(title)}</title>
<style>{_STYLE}</style></head>
<body><main>
<h1>{_html(title)}</h1>
<p class="lead">From {len(reports)} reports in {_html(str(source))}.</p>
{"".join(sections)}{skipped}
</main></body></html>
"""


def _lab_section(lab: int | None, reports: list[dict[str, Any]]) -> str:
    """One lab: counts, pass rates, hints, score distribution, slowest submissions."""
    submitted = [report for report in reports if report["status"] != "missing"]
    missing = len(reports) - len(submitted)
    name = f"Lab {lab}" if lab is not None else "Submissions of no known lab"
    statuses = Counter(report["status"] for report in submitted)
    facts = [_counted(len(submitted), "submission")]
    facts += [f"{_counted(missing, 'student')} without a submission"] if missing else []
    facts += [f"{count} {status}" for status, count in sorted(statuses.items()) if status != "ok"]
    if submitted:
        mean = sum(r["points"] for r in submitted) / len(submitted)
        maximum = max(r["max_points"] for r in submitted)
        facts.append(f"mean score {mean:.1f} of {maximum:g}")
    parts = [f"<section><h2>{_html(name)}</h2><p>{_html(', '.join(facts))}.</p>"]
    if submitted:
        parts += [
            "<h3>Exercises passed</h3>",
            _figure(_pass_rate_png(submitted), f"share of the {len(submitted)} submissions "
                    f"of {name} that passed each exercise"),
            "<h3>Most common hints</h3>",
            _hints_table(submitted),
            "<h3>Scores</h3>",
            _figure(_scores_png(submitted), f"distribution of the scores in {name}"),
            "<h3>Slowest submissions</h3>",
            _slowest_table(submitted),
        ]
    parts.append("</section>")
    return "\n".join(parts)


def _exercise_ids(reports: list[dict[str, Any]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for report in reports:
        for entry in report["exercises"]:
            seen.setdefault(entry["id"], entry["title"])
    return sorted(seen.items(), key=lambda item: report_files.exercise_order(item[0]))


def _pass_rate_png(reports: list[dict[str, Any]]) -> bytes:
    """A horizontal bar per exercise: the percentage of submissions that passed it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exercises = _exercise_ids(reports)
    passed = Counter(entry["id"] for r in reports for entry in r["exercises"] if entry["passed"])
    counted = Counter(entry["id"] for r in reports for entry in r["exercises"])
    rates = [100 * passed[key] / counted[key] for key, _ in exercises]
    labels = [_shorten(f"{key} {title}", 44) for key, title in exercises]
    figure, axis = plt.subplots(figsize=(8, 0.5 * len(exercises) + 1.4))
    bars = axis.barh(labels, rates, color=[_rate_colour(rate) for rate in rates])
    axis.invert_yaxis()
    axis.set_xlim(0, 100)
    axis.set_xlabel("submissions that passed (%; higher is better)")
    for bar, (key, _) in zip(bars, exercises):
        axis.text(min(bar.get_width() + 1, 88), bar.get_y() + bar.get_height() / 2,
                  f"{passed[key]}/{counted[key]}", va="center", fontsize=9)
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return _png(figure)


def _scores_png(reports: list[dict[str, Any]]) -> bytes:
    """A histogram of the submissions' points, one bar per whole point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maximum = max(report["max_points"] for report in reports)
    points = [report["points"] for report in reports]
    figure, axis = plt.subplots(figsize=(8, 2.8))
    edges = [value - 0.5 for value in range(int(maximum) + 2)]
    axis.hist(points, bins=edges, color="#4c72b0", edgecolor="white")
    axis.set_xlim(-0.5, maximum + 0.5)
    if maximum <= 20:
        axis.set_xticks(range(int(maximum) + 1))
    axis.set_xlabel(f"points (out of {maximum:g})")
    axis.set_ylabel("submissions")
    axis.yaxis.get_major_locator().set_params(integer=True)
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    return _png(figure)


def _hints_table(reports: list[dict[str, Any]]) -> str:
    """The most common hints: hints that differ only in numbers count as one."""
    groups: dict[tuple[str, str], Counter] = {}
    for report in reports:
        for entry in report["exercises"]:
            if not entry["passed"]:
                key = (entry["id"], _NUMBER.sub("#", entry["message"]))
                groups.setdefault(key, Counter())[entry["message"]] += 1
    if not groups:
        return "<p>No exercise lost points.</p>"
    # Most frequent first; at equal counts a mistake before an exercise left undone.
    ranked = sorted(groups.items(), key=lambda item: (
        -sum(item[1].values()), item[0][1].startswith("not implemented yet"),
        report_files.exercise_order(item[0][0])))
    rows = "".join(
        f"<tr><td>{sum(counts.values())}</td><td>{_html(key)}</td>"
        f"<td>{_html(counts.most_common(1)[0][0])}</td></tr>"
        for (key, _), counts in ranked[:TOP_HINTS]
    )
    return ("<table><thead><tr><th>count</th><th>exercise</th><th>hint (the most frequent "
            f"wording)</th></tr></thead><tbody>{rows}</tbody></table>")


def _slowest_table(reports: list[dict[str, Any]]) -> str:
    ranked = sorted(reports, key=lambda report: -report.get("elapsed_s", 0))[:SLOWEST]
    rows = "".join(
        f"<tr><td>{report.get('elapsed_s', 0):.1f}</td><td>{_html(_who(report))}</td>"
        f"<td>{report['points']:g} / {report['max_points']:g}</td>"
        f"<td>{_html(report['status'])}</td></tr>"
        for report in ranked
    )
    return ("<table><thead><tr><th>seconds</th><th>submission</th><th>points</th>"
            f"<th>status</th></tr></thead><tbody>{rows}</tbody></table>")


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _who(report: dict[str, Any]) -> str:
    student = report.get("student") or {}
    if student:
        return f"{student['name']} ({student['id']})" if student["name"] else student["id"]
    return Path(report["submission"]).name


def _figure(png: bytes, description: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_html(description)}" src="data:image/png;base64,{data}">'


def _png(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _rate_colour(rate: float) -> str:
    return "#2e8540" if rate >= 75 else "#e0a526" if rate >= 40 else "#c0392b"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _html(text: str) -> str:
    return html.escape(str(text), quote=True)


_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; background: #f6f7f9; margin: 0; }
main { max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0; }
.lead { color: #555; margin-top: 0.2rem; }
section { background: #fff; border-radius: 6px; padding: 0.5rem 1.2rem 1rem; margin: 1rem 0;
          box-shadow: 0 1px 3px rgba(0, 0, 0, 0.1); }
h2 { font-size: 1.3rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 0.4rem; }
img { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 0.95rem; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid #eee;
         vertical-align: top; }
th { background: #f0f2f5; }
td:first-child { white-space: nowrap; }
"""
