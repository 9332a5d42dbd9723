#!/usr/bin/env python
"""Workshop data tool: pre-fetch the full data sets before a workshop, or see what is available.

    python datasets.py info               # each data set: where it would come from now, shape, size
    python datasets.py fetch mnist pbmc   # download into the cache (COURSE_DATA_DIR)

A thin command line over ``course.datasets`` (kept out of the installed package: a module named
``datasets`` in site-packages would shadow the widely used Hugging Face ``datasets`` package).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from course import datasets

FETCHERS = {"mnist": datasets.fetch_mnist, "pbmc": datasets.fetch_pbmc3k}


def _size(nbytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def info() -> int:
    """Print a table of the data sets: source now, shape, in-memory size."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.BundledDataWarning)
        for split in datasets.MNIST_SPLITS:
            where = datasets.mnist_source()
            images, labels = datasets.load_mnist(split) if where != "download" else (None, None)
            shape = "x".join(map(str, images.shape)) if images is not None else "(downloads)"
            size = _size(images.nbytes + labels.nbytes) if images is not None else "~11 MB"
            rows.append((f"mnist {split}", where, shape, size))
        where = datasets.pbmc_source()
        if where == "download":
            rows.append(("pbmc", where, "(downloads)", "~25 MB"))
        else:
            adata = datasets.load_pbmc()
            n_types = adata.obs["cell_type"].nunique()
            rows.append(
                (
                    "pbmc",
                    where,
                    f"{adata.n_obs} cells x {adata.n_vars} genes, {n_types} cell types",
                    _size(adata.X.nbytes + adata.layers["counts"].nbytes),
                )
            )
    rows.append(("synthetic counts", "generated", "any (synthetic_counts)", "-"))
    header = ("data set", "source now", "shape", "size")
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(4)]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(f"{str(cell):<{w}}" for cell, w in zip(row, widths)))
    print(f"\ncache: {datasets.data_dir()} (set COURSE_DATA_DIR to change)")
    return 0


def fetch(names: list[str]) -> int:
    """Download the named data sets into the cache; exit 1 if any could not be fetched."""
    unknown = sorted(set(names) - set(FETCHERS))
    if unknown:
        print(f"Unknown data set(s): {', '.join(unknown)}; choose from {', '.join(FETCHERS)}.")
        return 2
    failed = 0
    for name in names:
        start = time.perf_counter()
        print(f"fetching {name} into {datasets.data_dir()} ...", flush=True)
        host = datasets.MNIST_HOST if name == "mnist" else datasets.PBMC_HOST
        if not datasets.network_available(host):
            print(f"  no network (cannot reach {host}): {name} was not fetched. The loaders "
                  "will use the bundled data instead.")
            failed += 1
            continue
        try:
            FETCHERS[name]()
        except Exception as error:  # noqa: BLE001  (report any download failure plainly)
            print(f"  failed: {error}")
            failed += 1
            continue
        print(f"  done in {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="list the data sets and where they would come from")
    fetch_parser = commands.add_parser("fetch", help="download data sets into the cache")
    fetch_parser.add_argument("names", nargs="+", choices=sorted(FETCHERS), metavar="NAME",
                              help="mnist and/or pbmc")
    args = parser.parse_args(argv)
    return info() if args.command == "info" else fetch(args.names)


if __name__ == "__main__":
    sys.exit(main())
