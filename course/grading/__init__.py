"""Lab grading: solutions -> student labs, exercise checks, and the submission grader.

- ``labs``: ``build_labs`` / ``check_labs`` turn ``solutions/NN_topic.py`` into ``labs/``.
- ``registry``: ``@exercise("2.1", points=2, probe=..., inputs=...)`` registers a check
  (inputs drawn by the grader, a probe run in the student's kernel, a verdict run in the
  grader); verdicts live in ``course/grading/checks/labNN.py``, probes in
  ``course/grading/probes/labNN.py``.
- ``notebook``: ``check("2.1")`` and ``check_all()``, called from inside a lab.
- ``runner``: ``grade(submissions, out_dir)`` grades a batch (jobs, calibration, reports);
  ``execution`` runs one submission cell by cell and probes each exercise in its kernel
  (``session``: the kernel and its scratch folder, in the ``sandbox``; ``settings``: what a
  run allows and hides); ``plan`` reads the notebook and decides when each exercise is judged
  (``dependencies`` finds the cells that use a hung function); ``verdicts`` reads a probe's
  outputs and judges them in the grader; ``limits`` calibrates the time limits from the lab's
  solution; ``reports`` builds the reports and ``grades.csv`` (import the runner from
  ``course.grading.runner``; it needs nbclient and jupytext).
"""

from course.grading.labs import build_labs, check_labs, make_lab
from course.grading.notebook import LabResult, check, check_all
from course.grading.registry import CheckFailed, CheckResult, Exercise, exercise

__all__ = [
    "CheckFailed",
    "CheckResult",
    "Exercise",
    "LabResult",
    "build_labs",
    "check",
    "check_all",
    "check_labs",
    "exercise",
    "make_lab",
]
