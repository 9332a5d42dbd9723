"""The one harness for testing lab checks: a solution's definitions as a student namespace,
mistakes made by redefining or editing one of them, and the check's verdict on it.

    from lab_harness import assert_passes, edited_namespace, failure_message, solution_namespace

    ns = solution_namespace(2)
    assert_passes("2.1", ns)
    wrong = edited_namespace(2, "sample_z", old="0.5 * z_log_var", new="z_log_var")
    assert "standard deviation" in failure_message("2.1", wrong)

The namespace holds the imports, UPPERCASE constants, the names in ``extra``, and the functions
and classes of ``solutions/NN_*.py``; the training cells are not run.
"""

from __future__ import annotations

import ast
import functools
import re
import textwrap
from collections.abc import Iterable
from pathlib import Path

from course.grading.registry import CheckResult, get_exercise, run_check

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
SEEDS = (0, 1, 2)


def solution_path(lab: int) -> Path:
    """The solution notebook of lab ``lab``."""
    matches = sorted(SOLUTIONS.glob(f"{lab:02d}_*.py"))
    assert len(matches) == 1, f"expected one solutions/{lab:02d}_*.py, found {matches}"
    return matches[0]


def solution_source(lab: int, *names: str) -> str:
    """The source of the named top-level functions and classes of lab ``lab``'s solution."""
    text = solution_path(lab).read_text()
    nodes = {
        node.name: node
        for node in ast.parse(text).body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef))
    }
    missing = [name for name in names if name not in nodes]
    assert not missing, f"solution {lab} defines no {missing}"
    return "".join(ast.get_source_segment(text, nodes[name]) + "\n\n\n" for name in names)


@functools.cache
def _definitions(lab: int, extra: frozenset[str]) -> tuple[ast.stmt, ...]:
    tree = ast.parse(solution_path(lab).read_text())
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
            kept.append(node)
        elif isinstance(node, ast.Assign) and all(
            isinstance(target, ast.Name) and (target.id.isupper() or target.id in extra)
            for target in node.targets
        ):
            kept.append(node)
    return tuple(kept)


def solution_namespace(lab: int, extra: Iterable[str] = ("seed_generator",)) -> dict:
    """A fresh namespace with the definitions of lab ``lab``'s solution (see the module doc)."""
    nodes = list(_definitions(lab, frozenset(extra)))
    namespace = {"__name__": "__main__"}
    module = ast.Module(nodes, type_ignores=[])
    exec(compile(module, str(solution_path(lab)), "exec"), namespace)
    return namespace


def with_mistake(namespace: dict, source: str) -> dict:
    """A copy of ``namespace`` in which ``source`` (re)defines functions, classes or names."""
    changed = dict(namespace)
    exec(textwrap.dedent(source), changed)
    return changed


def edited_namespace(lab: int, name: str, old: str, new: str, namespace: dict | None = None):
    """Lab ``lab``'s namespace with ``old`` replaced by ``new`` in the source of ``name``.

    Without ``namespace`` the edit goes into a fresh namespace itself, not a copy, so the
    solution's other functions and classes, which look names up in that same dict, call the
    edited one (as they would in a notebook).
    """
    source = solution_source(lab, name)
    assert old in source, f"the solution's {name} no longer contains {old!r}"
    if namespace is not None:
        return with_mistake(namespace, source.replace(old, new))
    fresh = solution_namespace(lab)
    exec(textwrap.dedent(source.replace(old, new)), fresh)
    return fresh


def grade(exercise_id: str, namespace: dict, seed: int = 0) -> CheckResult:
    """The check's result, inputs drawn with ``seed``, everything in this process."""
    return run_check(get_exercise(exercise_id), namespace, timeout=None, seed=seed)


def assert_passes(exercise_id: str, namespace: dict, seeds: Iterable[int] = SEEDS) -> None:
    """The check gives full points for every seed."""
    for seed in seeds:
        result = grade(exercise_id, namespace, seed)
        assert result.passed, f"{exercise_id} (seed {seed}): {result.message}"
        assert result.points == result.max_points


def failure_message(exercise_id: str, namespace: dict, seed: int = 0) -> str:
    """The hint of a failing check; fails the test if the check passes or shows a traceback."""
    result = grade(exercise_id, namespace, seed)
    assert not result.passed, f"exercise {exercise_id} passed a wrong answer"
    assert result.points == 0
    assert "Traceback" not in result.message
    return result.message


def assert_lab_layout(lab: int) -> None:
    """Every exercise of lab ``lab`` has one ``# ## Exercise N.M: title`` heading, one solution
    marker and one ``check("N.M")`` call in its solution, in that order, and no other exercise
    heading; its checks module imports no other lab's checks, and its probes module nothing from
    the checks."""
    from course.grading.registry import checks_module, exercises

    text = solution_path(lab).read_text()
    ids = [entry.id for entry in exercises(lab)]
    headings = re.findall(r"^#\s*#+\s*Exercise\b.*$", text, flags=re.M)
    assert headings == [f"# ## Exercise {i}: {h.split(': ', 1)[-1]}" for i, h in zip(ids, headings)]
    for exercise_id in ids:
        escaped = re.escape(exercise_id)
        places = [re.search(pattern, text, flags=re.M) for pattern in (
            rf"^# ## Exercise {escaped}: \S", rf"### BEGIN SOLUTION {escaped}\b",
            rf"^check\(\"{escaped}\"\)$")]
        assert all(places), f"exercise {exercise_id}: heading, marker or check cell missing"
        assert [place.start() for place in places] == sorted(place.start() for place in places)
        assert len(re.findall(rf"^check\(\"{escaped}\"\)$", text, flags=re.M)) == 1
    # What each module must not import: another lab's checks; for probes, any checks at all.
    rules = {checks_module(lab): "course.grading.checks.lab",
             f"course.grading.probes.lab{lab:02d}": "course.grading.checks"}
    for module, forbidden in rules.items():
        path = Path(__file__).resolve().parents[1] / (module.replace(".", "/") + ".py")
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        bad = sorted(name for name in imported if name.startswith(forbidden))
        assert not bad, f"{module} imports {bad}"
