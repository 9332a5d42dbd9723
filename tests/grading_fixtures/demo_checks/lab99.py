"""Checks of the demo lab tests/grading_fixtures/99_demo.py."""

from course.grading import CheckFailed, exercise


@exercise("99.1", points=1, title="Add two numbers")
def add_returns_the_sum(ns):
    for a, b in [(1, 2), (-1, 1), (0.5, 0.25)]:
        result = ns["add"](a, b)
        if result != a + b:
            raise CheckFailed(f"add({a}, {b}) returned {result!r}; expected {a + b!r}")


@exercise("99.2", points=2, title="The mean of a list")
def mean_is_the_average(ns):
    result = ns["mean"]([1, 2, 3, 6])
    assert result == 3, f"mean([1, 2, 3, 6]) returned {result!r}; expected 3"


@exercise("99.3", points=1, title="A list of squares")
def squares_are_right(ns):
    if ns["squares"] != [0, 1, 4, 9, 16]:
        raise CheckFailed(f"squares is {ns['squares']!r}; expected [0, 1, 4, 9, 16]")
