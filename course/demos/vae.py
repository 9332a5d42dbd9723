"""VAE demos: a 2-D latent VAE and a conditional VAE on MNIST digits, and a negative-binomial
VAE of PBMC single-cell counts compared with PCA."""

from __future__ import annotations

import numpy as np

from course.demos import Run, demo

BATCH_SIZE = 128
LEARNING_RATE = 1e-3
IWAE_SAMPLES = 100


def _train(run: Run, build, data, n_examples: int):
    """Build and compile a model inside the strategy scope, fit it on a shuffled tf.data
    pipeline for ``run.epochs`` and save it; returns the model and its history."""
    import keras

    with run.strategy.scope():
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE))
    history = run.fit(model, run.dataset(data, BATCH_SIZE), n_examples, epochs=run.epochs)
    run.save_model(model)
    return model, history


def _mnist(run: Run):
    """``(x_train, y_train, x_test, y_test)`` and the data record of the report."""
    from course import datasets
    from course.demos import data_source_name

    x_train, y_train = datasets.load_mnist("train", source=run.source)
    x_test, y_test = datasets.load_mnist("test", source=run.source)
    record = {"name": "MNIST", "source": data_source_name("mnist", run.source),
              "n_train": len(x_train), "n_test": len(x_test)}
    return (x_train, y_train, x_test, y_test), record


# The dense VAE: on the bundled digits it reaches a slightly better test ELBO than the
# convolutional one in 30 epochs and trains about 8x faster on a CPU (benchmarks/vae.py).
@demo("vae-mnist", "VAE with a 2-D latent space on MNIST: manifold, samples, test ELBO/IWAE",
            epochs=30, data="mnist")
def vae_mnist(run: Run) -> dict:
    from course import metrics, models, plots

    (x_train, _, x_test, y_test), data = _mnist(run)
    vae, history = _train(run, lambda: models.VAE(
        data_shape=(28, 28, 1), latent_dim=2, hidden_units=(256, 128), likelihood="bernoulli",
        network="dense", seed=run.seed), x_train, len(x_train))
    run.save_figure(plots.history(history, title="VAE on MNIST: negative ELBO and its terms",
                                  units="nats per image"), "history.png")
    run.save_figure(plots.manifold_grid(vae, n=15, span=2.5), "manifold.png")
    run.save_figure(plots.samples(vae, 100), "samples.png")
    run.save_figure(plots.reconstructions(vae, x_test, n=10), "reconstructions.png")
    # From the first test digit to the first test digit of another class.
    other = int(np.flatnonzero(y_test != y_test[0])[0])
    run.save_figure(plots.interpolation(vae, x_test[0], x_test[other], steps=10,
                                        labels=(f"digit {y_test[0]}", f"digit {y_test[other]}")),
                    "interpolation.png")
    run.save_figure(plots.latent_scatter(vae.encode(x_test), y_test,
                                         title="Posterior means of the test digits",
                                         legend_title="digit"), "latent.png")
    return run.report(
        epochs=run.epochs,
        data=data,
        metrics={
            "test_elbo": metrics.elbo(vae, x_test),
            "test_log_likelihood_iwae": metrics.marginal_log_likelihood(
                vae, x_test, n_samples=IWAE_SAMPLES, seed=run.seed
            ),
            "iwae_samples": IWAE_SAMPLES,
        },
    )


@demo("cvae-mnist", "Conditional VAE on MNIST: each digit 0-9 on request, label accuracy",
            epochs=30, data="mnist")
def cvae_mnist(run: Run) -> dict:
    from course import metrics, models, plots

    (x_train, y_train, x_test, y_test), data = _mnist(run)
    cvae, history = _train(run, lambda: models.ConditionalVAE(
        data_shape=(28, 28, 1), num_classes=10, latent_dim=2, hidden_units=(256, 128),
        likelihood="bernoulli", seed=run.seed), (x_train, y_train), len(x_train))
    run.save_figure(plots.history(history, title="Conditional VAE on MNIST",
                                  units="nats per image"), "history.png")
    # One row per digit; each column keeps the same z, so it shows one "style" for all digits.
    n_styles = 10
    z = np.linspace(-1.5, 1.5, n_styles, dtype=np.float32)
    z = np.stack([z, -z], axis=1)
    digits = np.repeat(np.arange(10), n_styles)
    images = cvae.decode(np.tile(z, (10, 1)), digits)
    run.save_figure(plots.image_grid(images, n_cols=n_styles, row_titles=range(10),
                                     title="Requested digit (rows) x latent code (columns)"),
                    "digits.png")
    requested = np.repeat(np.arange(10), 100)
    classifier = metrics.digit_classifier(x_train, y_train, epochs=5, seed=run.seed)
    scores = metrics.digit_scores(classifier, cvae.generate(requested), requested)
    print(f"  generated digits classified as requested: {scores['conditional_accuracy']:.3f} "
          "(chance 0.100)")
    return run.report(
        epochs=run.epochs,
        data=data,
        metrics={"test_elbo": metrics.elbo(cvae, x_test, y_test),
                 "conditional_accuracy": scores["conditional_accuracy"]},
    )


@demo("vae-pbmc", "Negative-binomial VAE of PBMC counts: latent UMAP, kNN/ARI vs PCA",
            epochs=200, data="pbmc")
def vae_pbmc(run: Run) -> dict:
    from course import datasets, metrics, models, plots
    from course.demos import data_source_name

    adata = run.single_cell()
    counts = datasets.counts(adata)
    cell_types, names = datasets.labels(adata, "cell_type")
    vae, history = _train(run, lambda: models.VAE(
        data_shape=(counts.shape[1],), latent_dim=10, hidden_units=(128,), likelihood="nb",
        seed=run.seed), counts, len(counts))
    run.save_figure(plots.history(history, title="NB VAE on PBMC counts",
                                  units="nats per cell"), "history.png")
    embeddings = {"vae": vae.encode(counts),
                  "pca": metrics.pca_embedding(adata.X, n_components=10, seed=run.seed)}
    scores = {}
    for name, embedding in embeddings.items():
        scores[f"{name}_knn_accuracy"] = metrics.latent_knn_accuracy(embedding, cell_types)
        clusters = metrics.clustering_scores(embedding, cell_types, seed=run.seed)
        scores.update({f"{name}_{key}": value for key, value in clusters.items()})
    print(f"  kNN cell-type accuracy: VAE {scores['vae_knn_accuracy']:.3f}, "
          f"PCA {scores['pca_knn_accuracy']:.3f}")
    panels = {
        f"NB VAE latent (10-D)\nkNN accuracy {scores['vae_knn_accuracy']:.3f}, "
        f"ARI {scores['vae_ari']:.2f}": embeddings["vae"],
        f"PCA of log-normalized X (10-D)\nkNN accuracy {scores['pca_knn_accuracy']:.3f}, "
        f"ARI {scores['pca_ari']:.2f}": embeddings["pca"],
    }
    run.save_figure(plots.umap_comparison(panels, cell_types, names, seed=run.seed,
                                          title="PBMC cells by type: VAE vs PCA (UMAPs)",
                                          legend_title="cell type"),
                    "umap_vae_vs_pca.png")
    return run.report(
        epochs=run.epochs,
        data={"name": "PBMC" if run.data_path is None else run.data_path.name,
              "source": data_source_name("pbmc", run.source),
              "n_cells": int(counts.shape[0]), "n_genes": int(counts.shape[1])},
        metrics={"train_elbo": metrics.elbo(vae, counts), **scores},
    )
