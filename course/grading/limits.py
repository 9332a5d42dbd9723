"""Time limits of checking and grading, in seconds, shared by the API, the grader and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

CHECK_TIMEOUT = 60.0
CELL_TIMEOUT = 300.0
TOTAL_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Limits:
    """Time limits of one grading run.

    Attributes:
        cell: seconds before a cell is interrupted.
        total: seconds for a whole submission, its checks included.
        check: seconds for each exercise's check.
        probe: seconds an interrupted kernel has to respond again (at most ``cell``) before
            it is killed.
    """

    cell: float = CELL_TIMEOUT
    total: float = TOTAL_TIMEOUT
    check: float = CHECK_TIMEOUT
    probe: float = 10.0
