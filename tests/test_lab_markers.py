"""`course labs check` fails on an exercise marker without a registered check, and on a check
without a marker: an unchecked exercise would silently be worth nothing. It fails too on an
exercise heading in another style than every lab's ``# ## Exercise N.M: title``."""

from __future__ import annotations

from pathlib import Path

from course.grading.labs import check_labs, heading_problems, unchecked_markers
from course.grading.registry import exercises

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"


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
    assert unchecked_markers(SOLUTIONS) == []


def test_an_exercise_heading_in_another_style_is_reported_with_its_file_and_line(tmp_path):
    solutions = tmp_path / "solutions"
    headings = [
        "# ## Exercise 1.1: the one style",
        "# ### Exercise 1.2: one level too deep",
        "# ## Exercise 1.3 without a colon",
        "# # Exercise 1.4: a title-level heading",
        "# ## Exercises of this lab",  # not an exercise heading
    ]
    write_solution(solutions, "\n".join(headings) + "\n")
    problems = heading_problems(solutions)
    assert [problem.split(": ", 1)[0] for problem in problems] == [
        f"solutions/01_intro.py:{line}" for line in (2, 3, 4)
    ]
    assert all("should read '# ## Exercise N.M: title'" in problem for problem in problems)


def test_labs_check_reports_a_heading_in_another_style(tmp_path):
    solutions, labs = tmp_path / "solutions", tmp_path / "labs"
    markers = "".join(marker(entry.id) for entry in exercises(1))
    write_solution(solutions, "# ### Exercise 1.1: too deep\n" + markers)
    assert check_labs(solutions, labs) == [
        "solutions/01_intro.py:1: the exercise heading '# ### Exercise 1.1: too deep' should "
        "read '# ## Exercise N.M: title'",
        f"{labs / '01_intro.py'}: missing",
    ]


def test_the_real_solutions_write_every_exercise_heading_in_the_one_style():
    assert heading_problems(SOLUTIONS) == []
