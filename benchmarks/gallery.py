"""The model gallery (issue 12): each published model against its baseline, in one table.

Each ``benchmarks/gallery_*.py`` module measures one family and exposes ``run(quick) -> dict``
with a ``"rows"`` list of ``{"model", "metric", "value", "baseline", "baseline_value", ...}``
entries; this script runs them all, prints one table and writes
``benchmarks/results/gallery.json`` (``gallery.quick.json`` with ``--quick``).

    python benchmarks/gallery.py            # full run
    python benchmarks/gallery.py --quick    # a smoke run in a few minutes
    python benchmarks/gallery.py --only dgd # one family
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import write_results  # noqa: E402  (benchmarks/timing.py)


def families() -> list[str]:
    """The gallery modules next to this file, by family name (``gallery_dgd.py`` -> ``dgd``)."""
    return sorted(path.stem.removeprefix("gallery_") for path in HERE.glob("gallery_*.py"))


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict) and {"mean", "sd"} <= set(value):
        return f"{value['mean']:.3f} +- {value['sd']:.3f}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    header = f"{'family':<12}{'model':<22}{'metric':<36}{'value':>18}   baseline"
    print(header)
    print("-" * len(header))
    for row in rows:
        baseline = row.get("baseline", "")
        if baseline:
            baseline = f"{baseline} {format_value(row.get('baseline_value', ''))}"
        print(
            f"{row['family']:<12}{row.get('model', ''):<22}{row.get('metric', ''):<36}"
            f"{format_value(row.get('value', '')):>18}   {baseline}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs")
    parser.add_argument("--only", nargs="+", choices=families(), help="run only these families")
    options = parser.parse_args(argv)
    rows, results = [], {}
    for family in options.only or families():
        print(f"== {family}", flush=True)
        started = time.perf_counter()
        result = importlib.import_module(f"gallery_{family}").run(quick=options.quick)
        result["seconds"] = round(time.perf_counter() - started, 1)
        results[family] = result
        rows += [{"family": family, **row} for row in result.get("rows", [])]
    print_table(rows)
    report = {
        "benchmark": "gallery",
        "quick": options.quick,
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "families": results,
        "rows": rows,
    }
    if options.only:
        print("(--only: results not written; run all families to update gallery.json)")
        return 0
    print(f"wrote {write_results(report, 'gallery', quick=options.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
