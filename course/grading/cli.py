"""The ``course grade`` and ``course labs build|check`` commands (added to ``course/cli.py``).

Heavy modules (nbclient, jupytext) are imported inside the handlers so ``course --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys

from course.grading.limits import CELL_TIMEOUT, CHECK_TIMEOUT, TOTAL_TIMEOUT

GRADE_DESCRIPTION = (
    "Run each submission (.py or .ipynb, or a folder of them) in a fresh sandboxed Jupyter "
    "kernel with COURSE_SMOKE=1, judge its exercises in the grader, and write "
    "OUT/<name>-<hash>.json per submission plus OUT/grades.csv (rebuilt from every report in "
    "OUT). Exits 0 even when submissions fail."
)
LABS_DESCRIPTION = (
    "`build` writes labs/NN_topic.py from solutions/NN_topic.py, replacing each ### BEGIN "
    "SOLUTION ... ### END SOLUTION block by a NotImplementedError stub; `check` exits 1 if "
    "labs/ is out of date."
)

def add_grade_parser(subparsers) -> None:
    """Add ``course grade SUBMISSION... --out DIR``."""
    parser = subparsers.add_parser(
        "grade", help="grade lab submissions into JSON reports and a CSV",
        description=GRADE_DESCRIPTION,
    )
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION", help="notebook or folder")
    parser.add_argument("--out", required=True, help="folder for the reports")
    parser.add_argument(
        "--lab", type=int, default=None, help="lab number (default: from file names)"
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=CELL_TIMEOUT,
        help=f"seconds before a cell is interrupted (default {CELL_TIMEOUT})",
    )
    parser.add_argument(
        "--total-timeout",
        type=float,
        default=TOTAL_TIMEOUT,
        help=f"seconds for one whole submission (default {TOTAL_TIMEOUT})",
    )
    parser.add_argument(
        "--check-timeout",
        type=float,
        default=CHECK_TIMEOUT,
        help=f"seconds for each exercise's check (default {CHECK_TIMEOUT:g})",
    )
    parser.add_argument(
        "--full", action="store_true", help="run without COURSE_SMOKE=1 (full data and epochs)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="submissions graded in parallel (default 1)"
    )
    parser.add_argument(
        "--no-calibrate",
        action="store_true",
        help="use the timeouts as they are instead of limits measured on the lab's solution",
    )
    parser.add_argument(
        "--solutions",
        default=None,
        help="folder of the solution notebooks, run once per lab to calibrate the limits and "
        "hidden from the kernels (default: ./solutions)",
    )
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=8,
        help="address-space limit of each kernel in GiB (default 8; 0: no limit)",
    )
    sandbox = parser.add_mutually_exclusive_group()
    sandbox.add_argument(
        "--require-sandbox",
        dest="sandbox",
        action="store_const",
        const=True,
        default=None,
        help="fail unless the kernels can be sandboxed (needs root and Linux namespaces)",
    )
    sandbox.add_argument(
        "--no-sandbox",
        dest="sandbox",
        action="store_const",
        const=False,
        help="run the kernels unsandboxed (every report says so)",
    )
    parser.set_defaults(handler=_grade)


def add_labs_parser(subparsers) -> None:
    """Add ``course labs build`` and ``course labs check``."""
    parser = subparsers.add_parser(
        "labs", help="generate labs/ from solutions/, or check that it is up to date",
        description=LABS_DESCRIPTION,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, handler, help_text in [
        ("build", _build_labs, "write labs/ from solutions/"),
        ("check", _check_labs, "exit 1 if labs/ differs from what build would write"),
    ]:
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument("--solutions", default="solutions", help="default: solutions")
        action.add_argument("--labs", default="labs", help="default: labs")
        action.set_defaults(handler=handler)


def _grade(args: argparse.Namespace) -> int:
    from course.grading.runner import find_submissions, grade

    if not find_submissions(args.submissions):
        print(f"course grade: error: no .py or .ipynb files in {' '.join(args.submissions)}")
        return 2
    try:
        grade(
            args.submissions,
            args.out,
            lab=args.lab,
            cell_timeout=args.cell_timeout,
            total_timeout=args.total_timeout,
            check_timeout=args.check_timeout,
            smoke=not args.full,
            jobs=args.jobs,
            calibrate=not args.no_calibrate,
            solutions=args.solutions,
            sandbox=args.sandbox,
            memory_gb=args.memory_gb or None,
        )
    except ValueError as error:
        print(f"course grade: error: {error}", file=sys.stderr)
        return 2
    print(f"Reports and grades.csv written to {args.out}")
    return 0


def _build_labs(args: argparse.Namespace) -> int:
    from course.grading.labs import build_labs

    for path in build_labs(args.solutions, args.labs):
        print(f"wrote {path}")
    return 0


def _check_labs(args: argparse.Namespace) -> int:
    from course.grading.labs import check_labs

    problems = check_labs(args.solutions, args.labs)
    if not problems:
        print(f"{args.labs}/ is up to date with {args.solutions}/")
        return 0
    print("\n".join(problems))
    print("Fix: run `course labs build` and commit the result.")
    return 1
