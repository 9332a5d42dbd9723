"""`course labs check` fails on an exercise marker without a registered check, and on a check
without a marker: an unchecked exercise would silently be worth nothing."""

from __future__ import annotations

from course.grading.labs import unchecked_markers
from course.grading.registry import exercises


def marker(exercise_id: str) -> str:
    return f"### BEGIN SOLUTION {exercise_id}: hint\nx = 1\n### END SOLUTION\n"


def write_solution(folder, text: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "01_intro.py").write_text(text)


def test_a_marker_without_a_check_is_reported_with_its_file_and_line(tmp_path):
    solutions = tmp_path / "solutions"
    markers = "".join(marker(entry.id) for entry in exercises(1)) + marker("1.9")
    write_solution(solutions, markers)
    problems = unchecked_markers(solutions)
    assert problems == [
        f"solutions/01_intro.py:{3 * len(exercises(1)) + 1}: exercise 1.9 has no check; register "
        "one with "
        "@exercise('1.9', ...) in course.grading.checks.lab01"
    ]


def test_a_check_without_a_marker_is_reported(tmp_path):
    solutions = tmp_path / "solutions"
    write_solution(solutions, "### BEGIN SOLUTION 1.1: a\nx = 1\n### END SOLUTION\n")
    problems = unchecked_markers(solutions)
    assert len(problems) == len(exercises(1)) - 1
    assert all("has a check in course.grading.checks.lab01 but no" in p for p in problems)


def test_the_real_solutions_have_a_check_for_every_marker_and_a_marker_for_every_check():
    from pathlib import Path

    assert unchecked_markers(Path(__file__).resolve().parents[1] / "solutions") == []
