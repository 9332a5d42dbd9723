"""What the `[lab]` extra adds to an installation: the distributions that JupyterLab and
Notebook need beyond the core dependencies, and their size on disk.

    python benchmarks/lab_extra.py

Run it in an environment where `pip install -e ".[lab]"` (or `.[dev]`) was done. The install
time is measured separately, e.g. `time pip install -e ".[lab]"` after `pip install -e .`.
"""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names: set[str], extras_of: dict[str, set[str]] | None = None) -> set[str]:
    """The installed distributions that ``names`` need, recursively (with their extras)."""
    seen: set[str] = set()
    pending = [(name, frozenset((extras_of or {}).get(name, set()))) for name in names]
    while pending:
        name, extras = pending.pop()
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = _name(distribution.metadata["Name"])
        if key in seen and not extras:
            continue
        seen.add(key)
        for line in distribution.requires or []:
            requirement = Requirement(line)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker and not any(requirement.marker.evaluate(environment)
                                              for environment in environments):
                continue
            pending.append((requirement.name, frozenset(requirement.extras)))
    return seen


def size_mb(name: str) -> float:
    files = metadata.distribution(name).files or []
    return sum(path.locate().stat().st_size for path in files if path.locate().is_file()) / 1e6


def main() -> None:
    course = metadata.distribution("course")
    core, lab = set(), set()
    for line in course.requires or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            core.add(requirement.name)
        elif requirement.marker.evaluate({"extra": "lab"}):
            lab.add(requirement.name)
    core_closure = closure(core, {"tensorflow-probability": {"tf"}})
    added = sorted(closure(lab) - core_closure)
    sizes = {name: round(size_mb(name), 2) for name in added}
    total = round(sum(sizes.values()), 1)
    report = {"lab_requirements": sorted(lab), "added_distributions": len(added),
              "added_mb": total, "largest_mb": dict(sorted(sizes.items(),
                                                           key=lambda item: -item[1])[:8])}
    print(json.dumps(report, indent=1))
    (ROOT / "benchmarks" / "results" / "lab_extra.json").write_text(
        json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
