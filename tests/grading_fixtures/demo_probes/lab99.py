"""Probes of the demo lab tests/grading_fixtures/99_demo.py: call the student's objects."""

import numpy as np

from course.grading.registry import CheckFailed


def _number(value, what):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"{what} returned {type(value).__name__}, not a number") from None


def add(ns, inputs):
    pairs = zip(inputs["a"].tolist(), inputs["b"].tolist())
    return {"sums": np.array([_number(ns["add"](a, b), "add") for a, b in pairs])}


def mean(ns, inputs):
    return {"mean": _number(ns["mean"](inputs["values"].tolist()), "mean")}


def squares(ns, inputs):
    values = ns["squares"]
    if not isinstance(values, list):
        raise CheckFailed(f"squares is a {type(values).__name__}, not a list")
    return {"squares": np.array([_number(v, "squares") for v in values])}
