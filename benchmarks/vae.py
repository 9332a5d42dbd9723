"""Speed and quality of the VAE family on the bundled data (no strategy, float32).

- MNIST (4,000 bundled training digits, 1,000 test digits), 2-D latent, dense and conv VAEs:
  training throughput (examples/s, excluding the first, tracing epoch), wall time, test ELBO
  and importance-weighted log-likelihood (IWAE bound).
- PBMC (the 700 bundled cells x 765 genes, 10 cell types), 10-D latent spaces scored by the
  cross-validated kNN cell-type accuracy and the ARI/NMI of k-means clusters, on the same cells:
  NB VAE (the default architecture of count likelihoods, and the former default of two hidden
  layers (256, 128)) and Poisson VAE on raw counts, Gaussian VAE on log-normalized X, 10-D PCA
  of log-normalized X, with and without z-scoring the genes, and scvi-tools' SCVI when the
  ``scvi`` package is importable (it is not a dependency). Each VAE is trained with several
  seeds; the table shows mean +- sd.

    python benchmarks/vae.py            # writes benchmarks/results/vae.json and prints a table
    python benchmarks/vae.py --quick    # a few epochs, one seed: writes vae.quick.json
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from timing import EpochTimer, write_json  # noqa: E402  (benchmarks/timing.py)

RESULTS = Path(__file__).resolve().parent / "results"
MNIST_BATCH_SIZE = 128
PBMC_BATCH_SIZE = 128
PBMC_LATENT_DIM = 10


def mnist_vae(network: str, epochs: int, iwae_samples: int, seed: int) -> dict:
    """Train a 2-D latent MNIST VAE; measure its speed, test ELBO and IWAE log-likelihood."""
    from course import datasets, metrics, models

    keras.utils.set_random_seed(seed)
    x_train, _ = datasets.load_mnist("train", source="bundled")
    x_test, _ = datasets.load_mnist("test", source="bundled")
    hidden_units = (256, 128) if network == "dense" else (128,)
    model = models.VAE((28, 28, 1), latent_dim=2, hidden_units=hidden_units, network=network,
                       seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    timer = EpochTimer()
    start = time.perf_counter()
    dataset = datasets.as_dataset(x_train, batch_size=MNIST_BATCH_SIZE, seed=seed)
    model.fit(dataset, epochs=epochs, callbacks=[timer], verbose=0)
    wall_time = time.perf_counter() - start
    steady = timer.seconds[1:] or timer.seconds
    return {
        "model": f"VAE {network}",
        "epochs": epochs,
        "seed": seed,
        "train_wall_time_s": round(wall_time, 2),
        "samples_per_s": round(len(x_train) / float(np.mean(steady)), 1),
        "test_elbo": round(metrics.elbo(model, x_test), 2),
        "test_log_likelihood_iwae": round(
            metrics.marginal_log_likelihood(model, x_test, n_samples=iwae_samples, seed=seed), 2
        ),
        "iwae_samples": iwae_samples,
    }


def pbmc_scores(embedding, cell_types, seed: int) -> dict:
    from course import metrics

    return {
        "knn_accuracy": metrics.latent_knn_accuracy(embedding, cell_types, k=15, cv=5),
        **metrics.clustering_scores(embedding, cell_types, seed=seed),
    }


def pbmc_vae(likelihood: str, epochs: int, seed: int, hidden_units=None) -> dict:
    """Train a 10-D VAE on the bundled PBMC cells and score its latent space.

    ``hidden_units=None`` keeps the model's default architecture for the likelihood.
    """
    from course import datasets, models

    keras.utils.set_random_seed(seed)
    adata = datasets.load_pbmc(source="bundled")
    cell_types, _ = datasets.labels(adata)
    # Count likelihoods see raw counts; the Gaussian one sees log-normalized X.
    data = np.asarray(adata.X, np.float32) if likelihood == "gaussian" else datasets.counts(adata)
    model = models.VAE((data.shape[1],), latent_dim=PBMC_LATENT_DIM, hidden_units=hidden_units,
                       likelihood=likelihood, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    start = time.perf_counter()
    dataset = datasets.as_dataset(data, batch_size=PBMC_BATCH_SIZE, seed=seed)
    model.fit(dataset, epochs=epochs, verbose=0)
    wall_time = time.perf_counter() - start
    return {
        "seed": seed,
        "train_wall_time_s": round(wall_time, 2),
        **pbmc_scores(model.encode(data), cell_types, seed),
    }


def pbmc_scvi(epochs: int, seed: int) -> dict:
    """scvi-tools' SCVI (10-D latent, its defaults otherwise) on the same raw counts."""
    import scvi

    from course import datasets

    scvi.settings.seed = seed
    adata = datasets.load_pbmc(source="bundled")
    cell_types, _ = datasets.labels(adata)
    scvi.model.SCVI.setup_anndata(adata, layer="counts")
    model = scvi.model.SCVI(adata, n_latent=PBMC_LATENT_DIM)
    start = time.perf_counter()
    model.train(max_epochs=epochs, batch_size=PBMC_BATCH_SIZE)
    wall_time = time.perf_counter() - start
    return {"seed": seed, "train_wall_time_s": round(wall_time, 2),
            **pbmc_scores(model.get_latent_representation(), cell_types, seed)}


def pbmc_pca(adata, cell_types, z_score: bool) -> dict:
    """Scores of 10-D PCA of log-normalized X, optionally with every gene z-scored first."""
    from sklearn.preprocessing import StandardScaler

    from course import metrics

    x = np.asarray(adata.X, np.float64)
    x = StandardScaler().fit_transform(x) if z_score else x
    embedding = metrics.pca_embedding(x, n_components=PBMC_LATENT_DIM, seed=0)
    return summarize([pbmc_scores(embedding, cell_types, seed=0)])


def pbmc_table(epochs: int, seeds: list[int]) -> dict:
    """Every PBMC embedding's scores (mean, sd and the runs of each seed)."""
    from course import datasets

    adata = datasets.load_pbmc(source="bundled")
    cell_types, _ = datasets.labels(adata)
    table = {PCA: pbmc_pca(adata, cell_types, z_score=False),
             PCA_Z: pbmc_pca(adata, cell_types, z_score=True)}
    trainers = {name: functools.partial(pbmc_vae, likelihood, epochs, hidden_units=hidden_units)
                for name, (likelihood, hidden_units) in VAES.items()}
    if importlib.util.find_spec("scvi") is not None:
        trainers["scvi-tools SCVI (counts)"] = lambda seed: pbmc_scvi(epochs, seed)
    for name, train in trainers.items():
        runs = [train(seed) for seed in seeds]
        table[name] = summarize(runs)
        table[name]["train_wall_time_s"] = float(np.mean([r["train_wall_time_s"] for r in runs]))
    return table


PCA, PCA_Z = "PCA (log-normalized X)", "PCA (z-scored log-normalized X)"
NB_DEFAULT = "NB VAE (counts), default (128,)"
# Name -> (likelihood, hidden_units); None is the model's default for the likelihood.
VAES = {
    NB_DEFAULT: ("nb", None),
    "NB VAE (counts), (256, 128)": ("nb", (256, 128)),
    "Poisson VAE (counts), default (128,)": ("poisson", None),
    "Gaussian VAE (log-normalized X), (128,)": ("gaussian", (128,)),
}


def summarize(runs: list[dict], keys=("knn_accuracy", "ari", "nmi")) -> dict:
    return {
        key: {"mean": float(np.mean([r[key] for r in runs])),
              "sd": float(np.std([r[key] for r in runs])), "runs": [r[key] for r in runs]}
        for key in keys
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few epochs, one seed")
    parser.add_argument("--out", default=None,
                        help="JSON output file (default results/vae.json, vae.quick.json)")
    args = parser.parse_args(argv)
    out = Path(args.out or RESULTS / ("vae.quick.json" if args.quick else "vae.json"))
    mnist_epochs, pbmc_epochs = (3, 20) if args.quick else (30, 200)
    iwae_samples = 10 if args.quick else 100
    seeds = [0] if args.quick else [0, 1, 2]
    start = time.perf_counter()

    mnist = [mnist_vae(network, mnist_epochs, iwae_samples, seed=0)
             for network in ("dense", "conv")]
    from course import datasets

    x_train, _ = datasets.load_mnist("train", source="bundled")
    x_test, _ = datasets.load_mnist("test", source="bundled")
    adata = datasets.load_pbmc(source="bundled")
    pbmc = pbmc_table(pbmc_epochs, seeds)
    nb = pbmc[NB_DEFAULT]["knn_accuracy"]["mean"]
    pca = {name: pbmc[name]["knn_accuracy"]["mean"] for name in (PCA, PCA_Z)}
    results = {
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "keras": keras.__version__},
        "mnist": {"n_train": len(x_train), "n_test": len(x_test),
                  "batch_size": MNIST_BATCH_SIZE, "runs": mnist},
        "pbmc": {"n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars),
                 "latent_dim": PBMC_LATENT_DIM, "epochs": pbmc_epochs, "seeds": seeds,
                 "knn": "15 neighbours, 5-fold stratified CV", "scores": pbmc},
        "goal": {"statement": "default NB VAE 10-D latent kNN cell-type accuracy > 10-D PCA",
                 "nb_vae": nb, "pca": pca[PCA], "pca_z_scored": pca[PCA_Z],
                 "met": bool(nb > pca[PCA]), "met_z_scored": bool(nb > pca[PCA_Z])},
        "total_time_s": round(time.perf_counter() - start, 1),
    }
    write_json(out, results)
    print_table(results)
    print(f"wrote {out}")
    return results


def print_table(results: dict) -> None:
    print("\nMNIST (bundled, 2-D latent)")
    print(f"{'model':<12}{'epochs':>7}{'samples/s':>11}{'wall s':>9}{'test ELBO':>11}"
          f"{'IWAE LL':>10}")
    for r in results["mnist"]["runs"]:
        print(f"{r['model']:<12}{r['epochs']:>7}{r['samples_per_s']:>11.0f}"
              f"{r['train_wall_time_s']:>9.1f}{r['test_elbo']:>11.2f}"
              f"{r['test_log_likelihood_iwae']:>10.2f}")
    pbmc = results["pbmc"]
    print(f"\nPBMC (bundled, {pbmc['n_cells']} cells, 10-D embeddings, seeds {pbmc['seeds']}, "
          f"{pbmc['epochs']} epochs)")
    print(f"{'embedding':<42}{'kNN accuracy':>16}{'ARI':>16}{'NMI':>16}")
    for name, scores in pbmc["scores"].items():
        cells = "".join(f"{scores[k]['mean']:>9.3f} +-{scores[k]['sd']:.3f}"
                        for k in ("knn_accuracy", "ari", "nmi"))
        print(f"{name:<42}{cells}")
    goal = results["goal"]
    print(f"\nGoal ({goal['statement']}): {'MET' if goal['met'] else 'NOT MET'} "
          f"({goal['nb_vae']:.3f} vs {goal['pca']:.3f}; z-scored PCA {goal['pca_z_scored']:.3f}, "
          f"{'beaten' if goal['met_z_scored'] else 'not beaten'})")


if __name__ == "__main__":
    main()
