"""GAN demos: an unconditional and a conditional GAN on MNIST, and landmark -> target gene
prediction on PBMC cells (LandmarkGAN against linear regression and a D-GEX-style MLP)."""

from __future__ import annotations

import time

import numpy as np

from course.experiments import Run, experiment

BATCH_SIZE = 64
# Of the 765 bundled PBMC genes, the 150 most variable are landmarks and the other 615 targets.
N_LANDMARKS = 150


def _digit_metrics(run: Run, images, requested_labels=None) -> dict:
    """Scores of generated digits from a CNN trained on the real training digits."""
    from course import datasets, metrics

    x_train, y_train = datasets.load_mnist("train", source=run.source)
    x_test, _ = datasets.load_mnist("test", source=run.source)
    classifier = metrics.digit_classifier(x_train, y_train, epochs=5, seed=run.seed)
    scores = metrics.digit_scores(classifier, images, requested_labels)
    n = min(len(images), len(x_test))
    scores["mmd_to_test_digits"] = metrics.mmd(images[:n], x_test[:n])
    return scores


def _fit_gan(run: Run, model, data, epochs: int, monitor_every: int):
    """Compile inside the strategy scope and fit with a sample monitor; returns the history."""
    from course.callbacks import SampleMonitor

    with run.strategy.scope():
        model.compile()
    monitor = SampleMonitor(every=monitor_every, out_dir=str(run.path("samples")), seed=run.seed)
    return model.fit(run.dataset(data, BATCH_SIZE), epochs=epochs, callbacks=[monitor],
                     verbose=run.verbose)


@experiment("gan-mnist", "Convolutional GAN on MNIST digits: samples over training, digit scores")
def gan_mnist(run: Run) -> dict:
    from course import datasets, models, plots

    x_train, _ = datasets.load_mnist("train", source=run.source)
    with run.strategy.scope():
        gan = models.GAN(data_shape=(28, 28, 1), latent_dim=64, network="conv", seed=run.seed)
    epochs = run.epochs_or(20)
    history = _fit_gan(run, gan, x_train, epochs, monitor_every=max(1, epochs // 4))
    run.save_model(gan)
    run.save_figure(plots.loss_curves(history, title="GAN on MNIST"), "losses.png")
    run.save_figure(plots.image_grid(gan.generate(100, seed=run.seed), n_cols=10,
                                     title=f"GAN samples after {epochs} epochs"), "samples.png")
    scores = _digit_metrics(run, gan.generate(1000, seed=run.seed + 1))
    return {"epochs": epochs, "final_d_loss": history.history["d_loss"][-1],
            "final_g_loss": history.history["g_loss"][-1], **scores}


@experiment("cgan-mnist", "Conditional GAN on MNIST: one row per requested digit, label accuracy")
def cgan_mnist(run: Run) -> dict:
    from course import datasets, models, plots

    x_train, y_train = datasets.load_mnist("train", source=run.source)
    with run.strategy.scope():
        cgan = models.ConditionalGAN(
            data_shape=(28, 28, 1), num_classes=10, latent_dim=64, network="conv", seed=run.seed
        )
    epochs = run.epochs_or(20)
    history = _fit_gan(run, cgan, (x_train, y_train), epochs, monitor_every=max(1, epochs // 4))
    run.save_model(cgan)
    run.save_figure(plots.loss_curves(history, title="Conditional GAN on MNIST"), "losses.png")
    run.save_figure(plots.class_grid(cgan, n_per_class=10, seed=run.seed), "class_grid.png")
    requested_labels = np.repeat(np.arange(10), 100)
    images = cgan.generate(requested_labels, seed=run.seed + 1)
    scores = _digit_metrics(run, images, requested_labels)
    print(f"  conditional accuracy {scores['conditional_accuracy']:.3f} (chance 0.100), "
          f"{scores['classes_present']} classes present, histogram {scores['histogram']}")
    return {"epochs": epochs, "final_d_loss": history.history["d_loss"][-1],
            "final_g_loss": history.history["g_loss"][-1], **scores}


def landmark_models(split, epochs: int, strategy, seed: int = 0, verbose="auto"):
    """Fit the landmark -> target models on one split.

    Both neural models stop early on their validation error and keep their best weights.

    Returns:
        ``results`` (model name -> dict of the test ``prediction``, training ``seconds`` and
        ``epochs``), the fitted LandmarkGAN and its training history.
    """
    import keras
    from sklearn.linear_model import LinearRegression

    from course import datasets, models

    drop_remainder = strategy.num_replicas_in_sync > 1
    train = datasets.as_dataset((split.x_train, split.y_train), batch_size=BATCH_SIZE,
                                seed=seed, drop_remainder=drop_remainder)
    validation = datasets.as_dataset((split.x_val, split.y_val), batch_size=BATCH_SIZE,
                                     shuffle=False, drop_remainder=drop_remainder)
    results = {}
    # Ordinary least squares (150 landmarks < 490 training cells, so it is well posed).
    start = time.perf_counter()
    linear = LinearRegression().fit(split.x_train, split.y_train)
    results["linear regression"] = {"prediction": linear.predict(split.x_test), "epochs": 0,
                                    "seconds": time.perf_counter() - start}
    with strategy.scope():
        mlp = models.MLPRegressor(split.n_landmarks, split.n_targets)
        mlp.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        lgan = models.LandmarkGAN(split.n_landmarks, split.n_targets, seed=seed)
        lgan.compile()
    stop_mlp = keras.callbacks.EarlyStopping(patience=20, restore_best_weights=True)
    stop_lgan = keras.callbacks.EarlyStopping(
        monitor="val_l1_loss", mode="min", patience=20, restore_best_weights=True)
    histories = {}
    for name, model, stop in (("MLP (MSE)", mlp, stop_mlp), ("LandmarkGAN", lgan, stop_lgan)):
        print(f"{name}:")
        start = time.perf_counter()
        histories[name] = model.fit(train, validation_data=validation, epochs=epochs,
                                    verbose=verbose, callbacks=[stop])
        seconds = time.perf_counter() - start
        results[name] = {"prediction": model.predict(split.x_test, verbose=0), "seconds": seconds,
                         "epochs": len(next(iter(histories[name].history.values())))}
    return results, lgan, histories["LandmarkGAN"]


def _markdown_table(table) -> str:
    """A pandas DataFrame as a markdown table (without the optional ``tabulate`` package)."""
    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


@experiment("landmark-pbmc", "PBMC landmark -> target genes: LandmarkGAN vs linear vs MLP")
def landmark_pbmc(run: Run) -> dict:
    import pandas as pd

    from course import datasets, metrics, plots

    adata = datasets.load_pbmc(source=run.source)
    split = datasets.landmark_split(adata, n_landmarks=N_LANDMARKS, seed=run.seed)
    print(f"  {split.n_landmarks} landmarks -> {split.n_targets} targets; cells: "
          f"{len(split.x_train)} train / {len(split.x_val)} validation / {len(split.x_test)} test")
    results, lgan, history = landmark_models(split, run.epochs_or(300), run.strategy, run.seed,
                                             verbose=run.verbose)
    predictions = {name: result["prediction"] for name, result in results.items()}
    # The per-gene training median is the best constant under MAE: a floor every model must beat.
    predictions["per-gene median"] = np.broadcast_to(
        np.median(split.y_train, axis=0), split.y_test.shape)
    rows = []
    for name, prediction in predictions.items():
        per_gene_ccc = metrics.concordance_correlation(split.y_test, prediction, per_gene=True)
        rows.append({
            "model": name,
            "test MAE": metrics.mae(split.y_test, prediction),
            "test CCC": metrics.concordance_correlation(split.y_test, prediction),
            "median per-gene CCC": float(np.nanmedian(per_gene_ccc)),
        })
    table = pd.DataFrame(rows).round(4)
    table.to_csv(run.path("table.csv"), index=False)
    markdown = _markdown_table(table)
    run.path("table.md").write_text(markdown + "\n")
    print(markdown)

    run.save_model(lgan)
    run.save_figure(plots.loss_curves(history, title="LandmarkGAN on PBMC"), "losses.png")
    figure = plots.predicted_vs_true(split.y_test, predictions["LandmarkGAN"],
                                     title="LandmarkGAN, test cells")
    run.save_figure(figure, "predicted_vs_true.png")
    per_gene = {name: metrics.mae(split.y_test, prediction, per_gene=True)
                for name, prediction in predictions.items()}
    run.save_figure(plots.per_gene_error_histogram(
        per_gene.pop("LandmarkGAN"), baselines=per_gene, label="LandmarkGAN"), "per_gene_mae.png")
    return {"n_landmarks": split.n_landmarks, "n_targets": split.n_targets,
            "epochs_run": len(history.history["d_loss"]),
            "models": {row.pop("model"): row for row in rows}}
