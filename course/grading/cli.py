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
    "SOLUTION ... ### END SOLUTION block by a NotImplementedError stub, and never replaces a lab "
    "edited since it was built unless told to (--backup, --force); `check` exits 1 if labs/ is "
    "out of date or edited; `start NN` copies lab NN into a folder of your own (my-labs/)."
)

GRADEBOOK_DESCRIPTION = (
    "Join the reports of `course grade --roster` (each GRADES_DIR may hold several labs) into one "
    "table: one row per roster student, one column per lab (points, or 'missing'), total, max "
    "and notes. --canvas and --moodle write the same grades in the formats those systems import "
    "(Canvas: Grades > Import; Moodle: Grades > Import > CSV file, mapping the first column to "
    "the user's email or username)."
)
REPORT_DESCRIPTION = (
    "Write a self-contained HTML page about the reports in GRADES_DIR: per lab the share of "
    "submissions that passed each exercise, the most common hints, the score distribution and "
    "the slowest submissions."
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
        "--roster",
        default=None,
        help="roster.csv (student_id, name, email; optional sis_id, section): each submission "
        "goes to the student whose id is its Canvas user id, a folder name or a part of its file "
        "name; roster students without a submission are reported missing",
    )
    parser.add_argument(
        "--no-feedback",
        dest="feedback",
        action="store_false",
        help="do not write OUT/feedback/<name>.html and .md for each student",
    )
    add_timeout_arguments(parser)
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
        help="memory limit of each kernel in GiB, tmpfs and shared memory included (its "
        "cgroup; an address-space limit where cgroups are unavailable; default 8; 0: no limit)",
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
        ("build", _build_labs, "write labs/ from solutions/, keeping edited labs"),
        ("check", _check_labs, "exit 1 if labs/ differs from what build would write"),
    ]:
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument("--solutions", default="solutions", help="default: solutions")
        action.add_argument("--labs", default="labs", help="default: labs")
        action.set_defaults(handler=handler)
    keep = actions.choices["build"].add_mutually_exclusive_group()
    keep.add_argument(
        "--backup",
        action="store_true",
        help="copy labs edited since their build into LABS/backup-<time>/, then replace them",
    )
    keep.add_argument(
        "--force", action="store_true", help="replace labs edited since their build (edits lost)"
    )
    start = actions.add_parser(
        "start",
        help="copy a lab into a folder of your own to work in",
        description="Copy labs/NN_topic.py into DIR (default my-labs), never over a copy you "
        "already have, and say how to open it.",
    )
    start.add_argument("lab", type=int, nargs="+", metavar="NN", help="lab number, e.g. 02")
    start.add_argument("--dir", default="my-labs", help="your folder (default: my-labs)")
    start.add_argument("--labs", default="labs", help="default: labs")
    start.set_defaults(handler=_start_labs)


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
            roster=args.roster,
            feedback=args.feedback,
        )
    except ValueError as error:
        print(f"course grade: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: kernels and scratch already gone
        print(f"course grade: stopped; the reports finished so far are in {args.out} "
              "(grading again regrades every submission)", file=sys.stderr)
        return 130
    print(f"Reports and grades.csv written to {args.out}")
    return 0


def add_gradebook_parser(subparsers) -> None:
    """Add ``course gradebook GRADES_DIR... --roster roster.csv --out gradebook.csv``."""
    parser = subparsers.add_parser(
        "gradebook", help="join graded labs into one table per student; Canvas/Moodle CSV",
        description=GRADEBOOK_DESCRIPTION,
    )
    parser.add_argument("grades", nargs="+", metavar="GRADES_DIR", help="a course grade --out")
    parser.add_argument("--roster", required=True, help="roster.csv used to grade")
    parser.add_argument("--out", required=True, help="the gradebook CSV to write")
    parser.add_argument("--canvas", default=None, help="also write a Canvas gradebook import")
    parser.add_argument("--moodle", default=None, help="also write a Moodle grade import")
    parser.add_argument(
        "--moodle-user",
        choices=["email", "username"],
        default="email",
        help="the Moodle user column: the roster's email (default) or student_id as username",
    )
    parser.add_argument(
        "--title",
        action="append",
        default=[],
        metavar="N=TITLE",
        help="the column title of lab N (default 'Lab N'); in Canvas a title ending in "
        "'(4711)' targets assignment id 4711. Repeat for each lab",
    )
    parser.set_defaults(handler=_gradebook)


def add_report_parser(subparsers) -> None:
    """Add ``course report GRADES_DIR --out report.html``."""
    parser = subparsers.add_parser(
        "report", help="an HTML page on where the class struggles", description=REPORT_DESCRIPTION
    )
    parser.add_argument("grades", metavar="GRADES_DIR", help="a course grade --out")
    parser.add_argument("--out", required=True, help="the HTML file to write")
    parser.set_defaults(handler=_report)


def _gradebook(args: argparse.Namespace) -> int:
    from course.grading.exports import canvas_csv, moodle_csv
    from course.grading.gradebook import collect, gradebook_csv, lab_titles, write_text
    from course.grading.roster import read_roster

    book = collect(args.grades, read_roster(args.roster))
    titles = lab_titles(book.labs, _titles(args.title))
    outputs = {args.out: gradebook_csv(book, titles)}
    if args.canvas:
        outputs[args.canvas] = canvas_csv(book, titles)
    if args.moodle:
        outputs[args.moodle] = moodle_csv(book, titles, args.moodle_user)
    for path, text in outputs.items():  # every export is made before any is written
        print(f"wrote {write_text(path, text)}")
    missing = sum(book.grade(s, lab).points is None for s in book.students for lab in book.labs)
    labs = f"{len(book.labs)} lab" + ("" if len(book.labs) == 1 else "s")
    print(f"{len(book.students)} students x {labs}; {missing} missing")
    return 0


def _titles(pairs: list[str]) -> dict[int, str]:
    titles = {}
    for pair in pairs:
        number, _, title = pair.partition("=")
        if not number.strip().isdigit() or not title.strip():
            raise ValueError(f"--title {pair!r}: write it as N=TITLE, e.g. --title '1=Lab 1'")
        titles[int(number)] = title.strip()
    return titles


def _report(args: argparse.Namespace) -> int:
    from course.grading.classreport import write_class_report

    print(f"wrote {write_class_report(args.grades, args.out)}")
    return 0


def _build_labs(args: argparse.Namespace) -> int:
    from course.grading.labs import backup_labs, build_labs, edited_labs

    edited = edited_labs(args.solutions, args.labs) if args.backup else []
    if edited:
        folder = backup_labs(edited, args.labs)
        print(f"copied the edited {' '.join(path.name for path in edited)} to {folder}/")
    written = build_labs(args.solutions, args.labs, force=args.force or args.backup)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{args.labs}/ is up to date with {args.solutions}/")
    return 0


def _check_labs(args: argparse.Namespace) -> int:
    from course.grading.labs import EDITED, check_labs

    problems = check_labs(args.solutions, args.labs)
    if not problems:
        print(f"{args.labs}/ is up to date with {args.solutions}/")
        return 0
    print("\n".join(problems))
    if any(problem.endswith(EDITED) for problem in problems):
        print(
            "Edited labs: keep your work in a folder of your own (`course labs start NN` copies "
            "lab NN to my-labs/); instructors: `course labs build --backup` keeps a copy and "
            "rebuilds."
        )
    if not all(problem.endswith(EDITED) for problem in problems):
        print("Fix: run `course labs build` and commit the result.")
    return 1


def _start_labs(args: argparse.Namespace) -> int:
    from course.grading.labs import start_lab

    for lab in args.lab:
        copy = start_lab(lab, args.labs, args.dir)
        print(
            f"Your copy of lab {lab}: {copy}\n"
            f"Open it as a notebook: `jupyter lab {copy}` (or right-click it in JupyterLab -> "
            "Open With -> Notebook). Your answers are saved into that file; `course labs "
            f"build` never touches {args.dir}/."
        )
    return 0


GRADESCOPE_DESCRIPTION = (
    "Write a Gradescope autograder zip for lab LAB: setup.sh installs this package (a wheel "
    "inside the zip, its dependencies pinned to the versions installed here) and run_autograder "
    "grades /autograder/submission with `course grade`'s grader, writing results.json with one "
    "test per exercise (its points and hint). Upload the zip as the assignment's autograder."
)


def add_gradescope_parser(subparsers) -> None:
    """Add ``course gradescope LAB --out autograder.zip``."""
    from course.grading.gradescope import VISIBILITIES

    parser = subparsers.add_parser(
        "gradescope", help="write a Gradescope autograder zip for a lab",
        description=GRADESCOPE_DESCRIPTION,
    )
    parser.add_argument("lab", type=int, metavar="LAB", help="lab number, e.g. 2")
    parser.add_argument("--out", required=True, help="the zip to write, e.g. autograder.zip")
    parser.add_argument(
        "--visibility", choices=VISIBILITIES, default="visible",
        help="when students see each exercise's points and hint (default visible)",
    )
    parser.add_argument(
        "--stdout-visibility", choices=VISIBILITIES, default="hidden",
        help="when students see the grader's log (default hidden)",
    )
    parser.add_argument(
        "--package", default=None, metavar="WHEEL",
        help="a wheel of this package to install (default: built from this source tree)",
    )
    add_timeout_arguments(parser)
    parser.set_defaults(handler=_gradescope)


def add_timeout_arguments(parser) -> None:
    """Add ``--cell-timeout``, ``--total-timeout`` and ``--check-timeout`` (grade, gradescope)."""
    for name, default, what in [
        ("cell", CELL_TIMEOUT, "before a cell is interrupted"),
        ("total", TOTAL_TIMEOUT, "for one whole submission"),
        ("check", CHECK_TIMEOUT, "for each exercise's check"),
    ]:
        parser.add_argument(f"--{name}-timeout", type=float, default=default,
                            help=f"seconds {what} (default {default:g})")


def _gradescope(args: argparse.Namespace) -> int:
    from course.grading.gradescope import build_bundle

    path = build_bundle(
        args.lab, args.out, visibility=args.visibility,
        stdout_visibility=args.stdout_visibility, package=args.package,
        cell_timeout=args.cell_timeout, total_timeout=args.total_timeout,
        check_timeout=args.check_timeout,
    )
    size = path.stat().st_size / 2**20
    print(f"wrote {path} ({size:.1f} MiB): upload it as the autograder of lab {args.lab} "
          "(Gradescope: Configure Autograder -> Zip file upload)")
    return 0
