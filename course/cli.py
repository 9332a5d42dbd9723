"""The ``course`` command line: ``run`` a demo, ``grade`` submissions, ``labs build|check``."""

from __future__ import annotations

import argparse
import sys

from course import __version__


def _add_run(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="train and evaluate a named demo end to end",
        description="Train and evaluate a named demo; writes model.keras, metrics.json and PNG "
        "figures into --out (default runs/NAME). `course run --list` shows the demos.",
    )
    parser.add_argument("name", nargs="?", help="demo name, e.g. vae-mnist")
    parser.add_argument("--list", action="store_true", help="list the demos and exit")
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: the demo's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", default=None, help="output folder (default runs/NAME)")
    parser.add_argument(
        "--strategy",
        default="auto",
        choices=["auto", "mirrored", "multiworker", "default"],
        help="tf.distribute strategy (default auto: all GPUs, else one device)",
    )
    parser.add_argument(
        "--cpu-replicas", type=int, default=None, help="split the CPU into N logical devices"
    )
    parser.add_argument(
        "--mixed-precision", action="store_true", help="train with the mixed_float16 policy"
    )
    parser.add_argument(
        "--source", default="auto", help="data source passed to the loader (auto, bundled, ...)"
    )
    parser.add_argument(
        "--data", default=None, metavar="PATH",
        help="single-cell demos: your own cells instead of PBMC (10x .h5 or mtx folder, .h5ad, "
        ".loom), read and prepared with course.datasets.read/prepare",
    )
    parser.add_argument("--label-key", default="cell_type",
                        help="with --data: the obs column of cell labels (default cell_type)")
    parser.add_argument("--layer", default=None,
                        help="with --data: the layer of raw counts (default: 'counts' if "
                        "present, else X)")
    parser.set_defaults(handler=_run)


def _run(args) -> int:
    from course import demos, import_tensorflow_quietly

    if args.list or not args.name:
        print(demos.describe())
        return 0 if args.list else 2
    # Check the request before TensorFlow starts (seconds) and before anything is written.
    demos.validate_request(args.name, args.out, args.epochs, args.seed, args.cpu_replicas,
                              args.source, args.data)
    import_tensorflow_quietly()
    demos.run(
        args.name,
        out=args.out,
        epochs=args.epochs,
        seed=args.seed,
        strategy=args.strategy,
        cpu_replicas=args.cpu_replicas,
        mixed_precision=args.mixed_precision,
        source=args.source,
        data_path=args.data,
        label_key=args.label_key,
        layer=args.layer,
    )
    return 0


def _add_grade(subparsers) -> None:
    from course.grading import cli as grading_cli

    grading_cli.add_grade_parser(subparsers)


def _add_gradebook(subparsers) -> None:
    from course.grading import cli as grading_cli

    grading_cli.add_gradebook_parser(subparsers)
    grading_cli.add_report_parser(subparsers)


def _add_gradescope(subparsers) -> None:
    from course.grading import cli as grading_cli

    grading_cli.add_gradescope_parser(subparsers)


def _add_labs(subparsers) -> None:
    from course.grading import cli as grading_cli

    grading_cli.add_labs_parser(subparsers)
    # `labs build` also writes .ipynb copies on request (for Colab).
    labs_actions = next(action for action in subparsers.choices["labs"]._actions
                        if isinstance(action, argparse._SubParsersAction))
    build = labs_actions.choices["build"]
    build.add_argument("--ipynb", metavar="DIR", default=None,
                       help="also write each lab as DIR/NN_topic.ipynb (for Google Colab)")
    build.add_argument("--colab-install", metavar="REQUIREMENT", default=None,
                       help="with --ipynb: start each notebook with a cell that pip-installs "
                       "REQUIREMENT on Colab, e.g. git+https://github.com/ORG/course.git")
    build.set_defaults(handler=_build_labs_and_notebooks(build.get_default("handler")))


def _build_labs_and_notebooks(build_labs):
    """The ``labs build`` handler, followed by the .ipynb export when --ipynb is given."""

    def handler(args) -> int:
        if args.colab_install and not args.ipynb:
            raise ValueError("--colab-install needs --ipynb DIR")
        replace = args.force or args.backup
        if args.ipynb:  # edited notebooks stop the build before labs/ is touched
            from course.notebooks import keep_edited_notebooks, write_ipynb

            folder = keep_edited_notebooks(args.labs, args.ipynb, args.backup, args.force)
            if folder:
                print(f"copied the edited notebooks to {folder}/")
        status = build_labs(args)
        if status == 0 and args.ipynb:
            for path in write_ipynb(args.labs, args.ipynb, args.colab_install, force=replace):
                print(f"wrote {path}")
        return status

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="course",
        description="Teach deep generative models in genomics: run demos, build labs, grade.",
    )
    parser.add_argument("--version", action="version", version=f"course {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(subparsers)
    _add_grade(subparsers)
    _add_gradebook(subparsers)
    _add_labs(subparsers)
    _add_gradescope(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    if args.command == "grade":  # the checks use TensorFlow: start it without its log lines
        from course import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"course {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
