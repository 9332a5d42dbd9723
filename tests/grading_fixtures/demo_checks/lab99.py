"""Checks of the demo lab tests/grading_fixtures/99_demo.py (verdicts, grader side)."""

import numpy as np
from demo_probes import lab99 as probes

from course.grading import CheckFailed, exercise


def pairs(rng):
    return {"a": rng.integers(-100, 100, size=5).astype(float), "b": rng.normal(size=5)}


def values(rng):
    return {"values": rng.normal(loc=rng.normal(), size=int(rng.integers(3, 9)))}


@exercise("99.1", points=1, title="Add two numbers", probe=probes.add, inputs=pairs)
def add_returns_the_sum(inputs, outputs):
    sums, expected = np.asarray(outputs.get("sums")), inputs["a"] + inputs["b"]
    if sums.shape != expected.shape or not np.allclose(sums, expected):
        a, b = inputs["a"][0], inputs["b"][0]
        raise CheckFailed(f"add({a:g}, {b:.3g}) should be their sum, {a + b:.3g}")


@exercise("99.2", points=2, title="The mean of a list", probe=probes.mean, inputs=values)
def mean_is_the_average(inputs, outputs):
    result = np.asarray(outputs.get("mean"))
    assert result.shape == () and np.isclose(result, inputs["values"].mean()), (
        "mean(values) should be sum(values) / len(values)"
    )


@exercise("99.3", points=1, title="A list of squares", probe=probes.squares)
def squares_are_right(inputs, outputs):
    result = np.asarray(outputs.get("squares"))
    if result.shape != (5,) or not np.array_equal(result, [0, 1, 4, 9, 16]):
        raise CheckFailed(f"squares is {result.tolist()}; expected [0, 1, 4, 9, 16]")
