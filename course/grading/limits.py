"""Time limits of checking and grading, in seconds, and their calibration from a lab's solution.

The constants are ceilings. ``course grade`` runs each lab's solution once (cached), measures
each cell and each exercise's probe, and limits a submission's cell to ``slack`` times the
most alike solution cell plus a floor, never above the ceiling: an infinite loop then costs
seconds, not the 300 s ceiling.

The cache holds timings only: a solution cell is kept as a fingerprint (16-bit hashes of its
token trigrams, comments left out: enough to find the most alike cell, too little to read the
cell back), never as its source. Its folder (``~/.cache/course/grading``) is made readable by
the grading user alone (0700, files 0600) and is hidden from sandboxed kernels.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

CHECK_TIMEOUT = 60.0
CELL_TIMEOUT = 300.0
TOTAL_TIMEOUT = 1800.0
# Calibrated limits: slack * measured + floor (seconds), at most the ceiling.
SLACK = 3.0
CELL_FLOOR = 10.0
PROBE_FLOOR = 10.0
TOTAL_FLOOR = 120.0
# A cell or probe that uses a function which already hung in an exercise's probe gets this long.
HUNG_LIMIT = 5.0
# How alike (Dice coefficient of token trigrams) a submission's cell must be to a solution cell
# to share its limit.
_MATCH_RATIO = 0.4  # 87 of the 90 code cells of labs 1-7 match the cell difflib matched
_TOKEN = re.compile(r"\w+|[^\w\s]")
_COMMENT = re.compile(r"#[^\n]*")

Fingerprint = tuple[int, ...]


def fingerprint(source: str) -> Fingerprint:
    """A cell's fingerprint: the sorted 16-bit hashes of its token trigrams, comments left out.

    Two cells share most hashes when they share most of their code; the hashes are too few
    and too short to give the code back.
    """
    tokens = _TOKEN.findall(_COMMENT.sub("", source))
    shingles = {" ".join(tokens[i : i + 3]) for i in range(max(1, len(tokens) - 2))}
    hashes = {
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=2).digest(), "big")
        for s in shingles
    }
    return tuple(sorted(hashes))


def likeness(first: Fingerprint, second: Fingerprint) -> float:
    """How alike two fingerprints are: 2 |common| / (|first| + |second|), from 0 to 1."""
    if not first or not second:
        return 0.0
    return 2 * len(set(first) & set(second)) / (len(first) + len(second))


@dataclass(frozen=True)
class Calibration:
    """What the solution of a lab took: seconds per code cell and per probe.

    Attributes:
        cells: ``(fingerprint, seconds)`` per code cell. A cell given as its source is
            fingerprinted at once: the source is never kept (nor cached).
        probes: seconds per exercise's probe.
        total: seconds for the whole solution.
    """

    cells: tuple[tuple[Fingerprint, float], ...]
    probes: dict[str, float]
    total: float
    solution: str = ""
    points: float = 0.0
    max_points: float = 0.0

    def __post_init__(self) -> None:
        cells = tuple(
            (fingerprint(cell) if isinstance(cell, str) else tuple(cell), float(seconds))
            for cell, seconds in self.cells
        )
        object.__setattr__(self, "cells", cells)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        """Read a cached calibration; ValueError for one that holds a cell's source."""
        data = json.loads(text)
        if any(not isinstance(cell, list) for cell, _ in data["cells"]):
            raise ValueError("a calibration that holds cell sources (an older cache)")
        cells = tuple(
            (tuple(int(value) for value in cell), float(seconds))
            for cell, seconds in data["cells"]
        )
        probes = {str(key): float(value) for key, value in data["probes"].items()}
        return cls(
            cells=cells,
            probes=probes,
            total=float(data["total"]),
            solution=str(data.get("solution", "")),
            points=float(data.get("points", 0)),
            max_points=float(data.get("max_points", 0)),
        )


@dataclass(frozen=True)
class Limits:
    """Time limits of one grading run.

    Attributes:
        cell: seconds before a cell is interrupted (the ceiling when calibrated).
        total: seconds for a whole submission, its checks included (the ceiling when calibrated).
        check: seconds for each exercise's probe (the ceiling when calibrated).
        interrupt: seconds an interrupted kernel has to respond again before it is killed.
        after_hang: the limit of a cell or probe that uses a function known to hang.
        calibration: the solution's measured times; None: every cell gets ``cell``.
        slack: calibrated limit = slack * measured + floor.
    """

    cell: float = CELL_TIMEOUT
    total: float = TOTAL_TIMEOUT
    check: float = CHECK_TIMEOUT
    interrupt: float = 10.0
    after_hang: float = HUNG_LIMIT
    calibration: Calibration | None = None
    slack: float = SLACK
    _matches: dict = field(default_factory=dict, compare=False, repr=False)

    def calibrated(self, calibration: Calibration | None) -> Limits:
        """These ceilings with the measured times of a solution."""
        return replace(self, calibration=calibration, _matches={})

    def for_cell(self, source: str) -> float:
        """The limit of a submission's cell: that of the most alike solution cell, else the
        largest calibrated cell limit."""
        if self.calibration is None or not self.calibration.cells:
            return self.cell
        if source not in self._matches:
            best, best_ratio = None, _MATCH_RATIO
            cell = fingerprint(source)
            for solution_cell, seconds in self.calibration.cells:
                ratio = likeness(cell, solution_cell)
                if ratio >= best_ratio:
                    best, best_ratio = seconds, ratio
            measured = best if best is not None else max(s for _, s in self.calibration.cells)
            self._matches[source] = self._scaled(measured, CELL_FLOOR, self.cell)
        return self._matches[source]

    def for_probe(self, exercise_id: str) -> float:
        """The limit of one exercise's probe."""
        if self.calibration is None or exercise_id not in self.calibration.probes:
            return self.check
        return self._scaled(self.calibration.probes[exercise_id], PROBE_FLOOR, self.check)

    def for_total(self) -> float:
        """The limit of a whole submission."""
        if self.calibration is None:
            return self.total
        return self._scaled(self.calibration.total, TOTAL_FLOOR, self.total)

    def describe(self) -> dict[str, object]:
        """The limits as a report shows them."""
        if self.calibration is None:
            return {
                "calibrated": False,
                "cell": self.cell,
                "probe": self.check,
                "total": self.total,
            }
        cells = [self._scaled(s, CELL_FLOOR, self.cell) for _, s in self.calibration.cells]
        probes = {key: self.for_probe(key) for key in self.calibration.probes}
        return {
            "calibrated": True,
            "cell_max": max(cells, default=self.cell),
            "probe": probes,
            "total": self.for_total(),
        }

    def _scaled(self, measured: float, floor: float, ceiling: float) -> float:
        return round(min(ceiling, self.slack * measured + floor), 1)


def cache_path(solution: Path, smoke: bool, cache_dir: str | Path | None = None) -> Path:
    """Where the calibration of ``solution`` is cached: keyed by its text, the checks of its lab,
    the mode (smoke or full) and the Python version."""
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    digest = hashlib.sha256()
    digest.update(solution.read_bytes())
    digest.update(f"smoke={smoke} python={platform.python_version()}".encode())
    return folder / f"{solution.stem}-{digest.hexdigest()[:16]}.json"


def load_cached(path: Path) -> Calibration | None:
    """The cached calibration at ``path``; None when there is none (an unreadable or older one
    is deleted)."""
    try:
        return Calibration.from_json(path.read_text(encoding="utf-8"))
    except OSError:
        return None
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return None


def save_cached(calibration: Calibration, path: Path) -> None:
    """Write a calibration atomically, readable by this user alone (folder 0700, file 0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(calibration.to_json())
    os.replace(temporary, path)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/course/grading`` (``~/.cache/course/grading``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "course" / "grading"
