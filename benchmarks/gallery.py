"""The model gallery (issue 12): each published model against its baseline, in one table.

Each ``benchmarks/gallery_*.py`` module measures one family, ``run(quick) -> dict``, and writes
``results/gallery_<family>.json``. This script runs them all (or, with ``--collect``, reads the
results they last wrote), turns each into rows of ``model, metric, value, baseline,
baseline value``, prints one table and writes ``results/gallery.json``
(``gallery.quick.json`` with ``--quick``).

    python benchmarks/gallery.py             # full run of every family (about 30 min on 2 cores)
    python benchmarks/gallery.py --quick     # a smoke run of every family
    python benchmarks/gallery.py --collect   # the table from the families' last full results
    python benchmarks/gallery.py --only dgd  # one family (not written to gallery.json)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from course import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()
from timing import write_results  # noqa: E402  (benchmarks/timing.py)


def families() -> list[str]:
    """The gallery modules next to this file, by family name (``gallery_dgd.py`` -> ``dgd``)."""
    return sorted(path.stem.removeprefix("gallery_") for path in HERE.glob("gallery_*.py"))


def row(model, metric, value, baseline="", baseline_value="", better="higher") -> dict:
    return {"model": model, "metric": f"{metric} ({better} is better)", "value": value,
            "baseline": baseline, "baseline_value": baseline_value}


def rows_gans(result: dict) -> list[dict]:
    """scGAN/cscGAN against independent NB sampling; DNA-GAN motif rates against random."""
    models = result["single_cells"]["models"]
    baseline = "independent NB (baseline)"
    rows = []
    for model in ("scGAN", "cscGAN"):
        for key, metric, better in (
            ("auc", "real-vs-generated AUC (0.5 ideal)", "closer to 0.5"),
            ("mmd", "MMD on 50 PCs", "lower"),
            ("correlation_error", "gene-gene correlation error", "lower"),
            ("marker_mae", "marker-gene mean error", "lower"),
        ):
            rows.append(row(model, metric, models[model][key], "independent NB",
                            models[baseline][key], better))
    rates = result["sequences"]["motif_rate"]
    rows.append(row("DNA-GAN generated", "motif occurrence rate", rates["generated"], "random",
                    rates["random"]))
    rows.append(row("DNA-GAN designed", "motif occurrence rate", rates["designed"],
                    "real (50% planted)", rates["real"]))
    return rows


def rows_vae_family(result: dict) -> list[dict]:
    """LDVAE against the deep decoder, DCA against the NB VAE and a library-normalized mean,
    scGen against "no change" and the other types' average response."""
    ldvae, dca, scgen = result["ldvae"], result["dca"]["scores"], result["scgen"]
    rows = [row("LDVAE", "PBMC test reconstruction log-likelihood",
                ldvae["ldvae_test_reconstruction_ll"], "deep decoder",
                ldvae["deep_vae_test_reconstruction_ll"])]
    for baseline, name in (("nb_vae", "NB VAE"), ("library_normalized_mean", "library mean")):
        rows.append(row("DCA", "masked-count MAE (log1p)", dca["dca"]["mae_log1p"], name,
                        dca[baseline]["mae_log1p"], "lower"))
    for scope, metric in (("r2_all_genes", "held-out R^2, all genes"),
                          ("r2_top_genes", "held-out R^2, top responding genes")):
        for baseline, name in (("no_change", "no change"),
                               ("other_types_average_response", "other types' response")):
            rows.append(row("scGen", metric, scgen[scope]["scgen"], name,
                            scgen[scope][baseline]))
    return rows


ADAPTERS = {"gans": rows_gans, "vae_family": rows_vae_family}


def rows_of(family: str, result: dict) -> list[dict]:
    """The table rows of one family's result (its own ``rows``, or made by an adapter)."""
    if "rows" in result:
        return result["rows"]
    return ADAPTERS[family](result)


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict) and {"mean", "sd"} <= set(value):
        return f"{value['mean']:.3f} +- {value['sd']:.3f}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    header = f"{'family':<12}{'model':<19}{'metric':<60}{'value':>16}   baseline"
    print(header)
    print("-" * len(header))
    for row in rows:
        baseline = row.get("baseline", "")
        if baseline:
            baseline = f"{baseline} {format_value(row.get('baseline_value', ''))}"
        print(
            f"{row['family']:<12}{row.get('model', ''):<19}{row.get('metric', ''):<60}"
            f"{format_value(row.get('value', '')):>16}   {baseline}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few epochs")
    parser.add_argument("--only", nargs="+", choices=families(), help="run only these families")
    parser.add_argument("--collect", action="store_true",
                        help="read each family's last results instead of running it")
    options = parser.parse_args(argv)
    rows, results = [], {}
    for family in options.only or families():
        if options.collect:
            name = f"gallery_{family}{'.quick' if options.quick else ''}.json"
            result = json.loads((HERE / "results" / name).read_text())
        else:
            print(f"== {family}", flush=True)
            started = time.perf_counter()
            result = importlib.import_module(f"gallery_{family}").run(quick=options.quick)
            result["seconds"] = round(time.perf_counter() - started, 1)
        results[family] = result
        rows += [{"family": family, **entry} for entry in rows_of(family, result)]
    print_table(rows)
    report = {
        "benchmark": "gallery",
        "quick": options.quick,
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "collected": options.collect,
        "families": {family: f"gallery_{family}.json" for family in results},
        "rows": rows,
    }
    if options.only:
        print("(--only: results not written; run all families to update gallery.json)")
        return 0
    print(f"wrote {write_results(report, 'gallery', quick=options.quick)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
