"""What every lab's checks promise, over all the labs at once: the solution's layout (headings,
markers, check cells, module imports), exercises with titles and points in the order of the
solution's markers, the solution passing for several seeds, and outputs that only pass for
the inputs they were computed from. The mistakes each check recognizes are tested per lab, in
tests/test_checks_labNN.py."""

from __future__ import annotations

import pytest
from lab_harness import SOLUTIONS, assert_lab_layout, assert_passes, solution_namespace

from course.grading.labs import make_lab
from course.grading.registry import exercises, get_exercise, judge, make_inputs, run_probe

LABS = [int(path.name[:2]) for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.py"))]
EXERCISE_COUNTS = {1: 4, 2: 4, 3: 3, 4: 5, 5: 5, 6: 4, 7: 4}
# Their probes train a model (an MLP for each loss; a GAN under MirroredStrategy): minutes.
SLOW = {"5.3", "6.4"}
# Three seeds of lab 7's MAP step and inference for new cells take 4-6 s: slow suite too.
SLOW_FOR_EVERY_SEED = SLOW | {"7.3", "7.4"}


def every_exercise(slow: set[str] = SLOW) -> list:
    """The registered exercises of every lab, those in ``slow`` marked so."""
    return [
        pytest.param(entry.id, marks=pytest.mark.slow) if entry.id in slow else entry.id
        for lab in LABS
        for entry in exercises(lab)
    ]


@pytest.fixture(scope="module")
def namespaces(request):
    """Each lab's solution namespace, built once; lab 6 runs on the session's strategy."""
    built = {}

    def namespace(lab: int) -> dict:
        if lab not in built:
            built[lab] = solution_namespace(lab)
            if lab == 6:
                built[lab]["strategy"] = request.getfixturevalue("strategy")
        return built[lab]

    return namespace


def test_there_is_a_solution_for_every_lab():
    assert LABS == sorted(EXERCISE_COUNTS)


@pytest.mark.parametrize("lab", LABS)
def test_one_heading_marker_and_check_cell_per_exercise_and_separate_modules(lab):
    assert_lab_layout(lab)


@pytest.mark.parametrize("lab", LABS)
def test_each_lab_has_its_exercises_with_titles_and_points_in_the_order_of_its_markers(lab):
    entries = exercises(lab)
    assert len(entries) == EXERCISE_COUNTS[lab]
    markers = make_lab(next(SOLUTIONS.glob(f"{lab:02d}_*.py")).read_text())[1]
    assert [entry.id for entry in entries] == [marker.id for marker in markers]
    assert [entry.id for entry in entries] == [f"{lab}.{n}" for n in range(1, len(entries) + 1)]
    assert all(entry.title and entry.points > 0 and entry.probe for entry in entries)


@pytest.mark.parametrize("exercise_id", every_exercise(SLOW_FOR_EVERY_SEED))
def test_the_solution_passes_for_every_seed(namespaces, exercise_id):
    assert_passes(exercise_id, namespaces(get_exercise(exercise_id).lab))


@pytest.mark.parametrize("exercise_id", every_exercise())
def test_outputs_of_other_inputs_do_not_pass(namespaces, exercise_id):
    """Outputs recorded for one seed's inputs pass for those inputs only; constant outputs
    fail: the verdict recomputes the answer from the inputs it drew."""
    entry = get_exercise(exercise_id)
    recorded = run_probe(entry.probe, namespaces(entry.lab), make_inputs(entry, seed=0))
    assert judge(entry, make_inputs(entry, seed=0), recorded).passed
    other_inputs = make_inputs(entry, seed=1)
    assert not judge(entry, other_inputs, recorded).passed
    constant = {key: value * 0 + 1 for key, value in recorded.items()}
    assert not judge(entry, other_inputs, constant).passed
