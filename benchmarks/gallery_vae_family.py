"""Gallery benchmark of the VAE family for genomics, each model against a named baseline.

- LDVAE (linear decoder) vs the deep-decoder NB VAE on the bundled PBMC cells (80/20 split):
  test ELBO and NB reconstruction log-likelihood, and the known markers among the top genes of
  the LDVAE factors.
- DCA vs the NB VAE and the library-normalized mean: 10% of the non-zero PBMC counts are
  masked (set to zero) before training; MAE and Pearson r of log1p(count) on the masked entries.
- scGen vs "no change" and "the average response of the other types" on
  ``datasets.synthetic_perturbation`` (held-out type_0; 3 seeds of data and model): R^2 of the
  predicted vs true mean expression of the held-out stimulated cells, all genes and the 20 most
  responsive genes.

    python benchmarks/gallery_vae_family.py           # results/gallery_vae_family.json + .png
    python benchmarks/gallery_vae_family.py --quick   # a few epochs: *.quick.json / .quick.png
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from timing import write_json  # noqa: E402  (benchmarks/timing.py)

RESULTS = Path(__file__).resolve().parent / "results"
SCGEN_SEEDS = (0, 1, 2)
SCGEN_HELD_OUT = "type_0"


def ldvae(epochs: int) -> dict:
    from course import datasets
    from course.demos import vae_family

    adata = datasets.load_pbmc(source="bundled")
    result = vae_family.ldvae_comparison(datasets.counts(adata), np.asarray(adata.var_names),
                                         epochs, seed=0)
    result.pop("models")
    return {"epochs": epochs, "seed": 0, **result}


def dca(epochs: int) -> dict:
    from course import datasets
    from course.demos import vae_family

    counts = datasets.counts(datasets.load_pbmc(source="bundled"))
    result = vae_family.dca_imputation(counts, epochs, seed=0)
    return {"epochs": epochs, "seed": 0,
            **{key: result[key] for key in ("masked_fraction", "n_masked", "scores")}}


def scgen(epochs: int, seeds) -> dict:
    from course import datasets
    from course.demos import vae_family

    runs = []
    for seed in seeds:
        adata = datasets.synthetic_perturbation(seed=seed)
        result = vae_family.scgen_holdout(adata, SCGEN_HELD_OUT, epochs, seed=seed)
        runs.append({"seed": seed, "r2_all_genes": result["r2_all_genes"],
                     "r2_top_genes": result["r2_top_genes"]})
    summary = {
        scope: {name: {"mean": float(np.mean([r[scope][name] for r in runs])),
                       "sd": float(np.std([r[scope][name] for r in runs]))}
                for name in runs[0][scope]}
        for scope in ("r2_all_genes", "r2_top_genes")
    }
    return {"epochs": epochs, "held_out": SCGEN_HELD_OUT, "seeds": list(seeds), "runs": runs,
            **summary}


def run(quick: bool) -> dict:
    """Measure all three models; return the results (the caller writes them)."""
    start = time.perf_counter()
    epochs = {"ldvae": 10, "dca": 10, "scgen": 5} if quick else {
        "ldvae": 200, "dca": 200, "scgen": 100}
    results = {
        "quick": quick,
        "ldvae": ldvae(epochs["ldvae"]),
        "dca": dca(epochs["dca"]),
        "scgen": scgen(epochs["scgen"], SCGEN_SEEDS[:1] if quick else SCGEN_SEEDS),
    }
    results["total_time_s"] = round(time.perf_counter() - start, 1)
    return results


def figure(results: dict):
    """Three panels: LDVAE vs deep decoder, DCA vs baselines, scGen vs baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    names = ("ldvae", "deep_vae")
    ldvae_scores = results["ldvae"]
    axes[0].bar(["LDVAE", "deep decoder"],
                [ldvae_scores[f"{n}_test_reconstruction_ll"] for n in names], color="tab:blue")
    axes[0].set_ylim(1.02 * min(axes[0].get_ylim()[0], -1), None)
    axes[0].set_title("PBMC test NB log-likelihood per cell\n(reconstruction, higher is better)")
    dca_scores = results["dca"]["scores"]
    axes[1].bar([name.replace("_", "\n", 1) for name in dca_scores],
                [scores["mae_log1p"] for scores in dca_scores.values()], color="tab:orange")
    axes[1].set_title("PBMC masked counts: MAE of log1p\n(lower is better)")
    scgen_scores = results["scgen"]
    labels = list(scgen_scores["r2_all_genes"])
    positions = np.arange(len(labels))
    for offset, scope in ((-0.2, "r2_all_genes"), (0.2, "r2_top_genes")):
        axes[2].bar(positions + offset, [scgen_scores[scope][n]["mean"] for n in labels], 0.4,
                    yerr=[scgen_scores[scope][n]["sd"] for n in labels], label=scope)
    axes[2].set_xticks(positions, [label.replace("_", "\n", 1) for label in labels],
                       fontsize="small")
    axes[2].legend(fontsize="small")
    axes[2].set_title(f"scGen, held-out {SCGEN_HELD_OUT}: R^2 of mean expression\n"
                      "(higher is better)")
    for axis in axes[:2]:
        axis.tick_params(axis="x", labelsize="small")
    fig.tight_layout()
    return fig


def print_table(results: dict) -> None:
    ld = results["ldvae"]
    print(f"\nLDVAE vs deep decoder (bundled PBMC, {ld['n_test']} test cells, "
          f"{ld['epochs']} epochs)")
    for name in ("ldvae", "deep_vae"):
        print(f"  {name:<10} test ELBO {ld[f'{name}_test_elbo']:>9.1f}   reconstruction "
              f"log-likelihood {ld[f'{name}_test_reconstruction_ll']:>9.1f}")
    print(f"  known markers among the top genes: {', '.join(ld['markers_in_top_genes'])} "
          f"({ld['markers_expected_by_chance']:.1f} expected by chance)")
    print(f"\nDCA imputation ({results['dca']['n_masked']} masked PBMC counts)")
    for name, scores in results["dca"]["scores"].items():
        print(f"  {name:<26} MAE(log1p) {scores['mae_log1p']:.3f}   "
              f"r {scores['pearson_log1p']:.3f}")
    sg = results["scgen"]
    print(f"\nscGen (synthetic perturbation, held-out {sg['held_out']}, seeds {sg['seeds']})")
    for name in sg["r2_all_genes"]:
        print(f"  {name:<30} R^2 all genes {sg['r2_all_genes'][name]['mean']:.3f} "
              f"+-{sg['r2_all_genes'][name]['sd']:.3f}   top genes "
              f"{sg['r2_top_genes'][name]['mean']:.3f} +-{sg['r2_top_genes'][name]['sd']:.3f}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs, one scGen seed")
    args = parser.parse_args(argv)
    results = run(args.quick)
    stem = "gallery_vae_family.quick" if args.quick else "gallery_vae_family"
    write_json(RESULTS / f"{stem}.json", results)
    image, temporary = RESULTS / f"{stem}.png", RESULTS / f"{stem}.tmp.png"
    figure(results).savefig(temporary, dpi=110, bbox_inches="tight")
    os.replace(temporary, image)
    print_table(results)
    print(f"wrote {RESULTS / f'{stem}.json'} and {image}")
    return results


if __name__ == "__main__":
    main()
