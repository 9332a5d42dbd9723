"""Verdicts, taken in the grader: read a probe's outputs with care and judge them.

A probe's outputs are a ``.npz`` written by the untrusted kernel: a regular file, size-capped
packed and unpacked, no pickles, numeric arrays only (or the two text fields of an error
record). The verdict (``course/grading/checks/``) runs on them here; the best verdict of an
exercise is kept (a pass is never taken back).
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from course.grading.probes import ERROR_TYPE, verdict_from_outputs
from course.grading.registry import MISSING_NAME, CheckResult, Exercise, as_arrays

if TYPE_CHECKING:
    from course.grading.execution import Outcome

MAX_OUTPUT_BYTES = 256 * 1024**2  # a probe's .npz, compressed or not



def judge(entry: Exercise, inputs: dict, outputs_path: Path) -> CheckResult:
    """The verdict, in this process, on the arrays the kernel wrote (read with care)."""
    try:
        outputs = read_outputs(outputs_path)
    except ValueError as error:
        return CheckResult(entry.id, entry.title, 0, entry.points, False, str(error))
    return verdict_from_outputs(entry, inputs, outputs)


def read_outputs(path: Path) -> dict[str, np.ndarray]:
    """A probe's outputs: a regular file (no link), at most MAX_OUTPUT_BYTES packed and
    unpacked, no pickles, numeric arrays only (or the two text fields of an error record)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise ValueError("the probe wrote no outputs (did your code stop the kernel?)") from None
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_OUTPUT_BYTES:
            raise ValueError("the probe's outputs are not a file of a reasonable size")
        data = file.read(MAX_OUTPUT_BYTES + 1)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(member.file_size for member in archive.infolist()) > MAX_OUTPUT_BYTES:
                raise ValueError("the probe's outputs are too large once unpacked")
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        arrays = as_arrays(arrays, "the probe's outputs")
    except ValueError:
        raise
    except Exception as error:  # a damaged archive: zipfile and numpy raise many kinds
        raise ValueError(
            f"the probe's outputs could not be read ({type(error).__name__})"
        ) from None
    if ERROR_TYPE not in arrays:
        for key, array in arrays.items():
            if array.dtype.kind not in "biuf":
                raise ValueError(f"the probe's output {key!r} is not numeric ({array.dtype})")
    return arrays


def keep(outcome: Outcome, result: CheckResult, stub: str | None = None) -> None:
    """Keep the best verdict of an exercise (a pass is never taken back)."""
    if stub and MISSING_NAME in result.message:
        result = CheckResult(
            result.id, result.title, 0, result.max_points, False, f"not implemented yet: {stub}"
        )
    previous = outcome.results.get(result.id)
    if previous is None or not previous.passed:
        outcome.results[result.id] = result
