"""GAN demos: an unconditional and a conditional GAN on MNIST (the landmark -> target gene demo
is in ``landmark.py``)."""

from __future__ import annotations

import numpy as np

from course.demos import Run, demo

BATCH_SIZE = 64


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


def _fit_gan(run: Run, model, data, n_examples: int, epochs: int, monitor_every: int):
    """Compile inside the strategy scope and fit with a sample monitor; returns the history."""
    from course.callbacks import SampleMonitor

    with run.strategy.scope():
        model.compile()
    monitor = SampleMonitor(every=monitor_every, out_dir=str(run.path("samples")), seed=run.seed)
    return run.fit(model, run.dataset(data, BATCH_SIZE), n_examples, epochs=epochs,
                   callbacks=[monitor])


def _report(run: Run, history, n_train: int, scores: dict) -> dict:
    """metrics.json of a GAN demo: final losses and the scores of the generated digits."""
    from course.demos import data_source_name

    final_losses = {f"final_{key}": history.history[key][-1] for key in ("d_loss", "g_loss")}
    return run.report(
        epochs=run.epochs,
        data={"name": "MNIST", "source": data_source_name("mnist", run.source),
              "n_train": n_train},
        metrics={**final_losses, **scores},
    )


@demo("gan-mnist", "Convolutional GAN on MNIST digits: samples over training, digit scores",
            epochs=20, data="mnist")
def gan_mnist(run: Run) -> dict:
    from course import datasets, models, plots

    x_train, _ = datasets.load_mnist("train", source=run.source)
    with run.strategy.scope():
        gan = models.GAN(data_shape=(28, 28, 1), latent_dim=64, network="conv", seed=run.seed)
    epochs = run.epochs
    history = _fit_gan(run, gan, x_train, len(x_train), epochs,
                       monitor_every=max(1, epochs // 4))
    run.save_model(gan)
    run.save_figure(plots.loss_curves(history, title="GAN on MNIST"), "losses.png")
    run.save_figure(plots.image_grid(gan.generate(100, seed=run.seed), n_cols=10,
                                     title=f"GAN samples after {epochs} epochs"), "samples.png")
    scores = _digit_metrics(run, gan.generate(1000, seed=run.seed + 1))
    return _report(run, history, len(x_train), scores)


@demo("cgan-mnist", "Conditional GAN on MNIST: one row per requested digit, label accuracy",
            epochs=20, data="mnist")
def cgan_mnist(run: Run) -> dict:
    from course import datasets, models, plots

    x_train, y_train = datasets.load_mnist("train", source=run.source)
    with run.strategy.scope():
        cgan = models.ConditionalGAN(
            data_shape=(28, 28, 1), num_classes=10, latent_dim=64, network="conv", seed=run.seed
        )
    epochs = run.epochs
    history = _fit_gan(run, cgan, (x_train, y_train), len(x_train), epochs,
                       monitor_every=max(1, epochs // 4))
    run.save_model(cgan)
    run.save_figure(plots.loss_curves(history, title="Conditional GAN on MNIST"), "losses.png")
    run.save_figure(plots.class_grid(cgan, n_per_class=10, seed=run.seed,
                                     title="One row per requested digit"), "class_grid.png")
    requested_labels = np.repeat(np.arange(10), 100)
    images = cgan.generate(requested_labels, seed=run.seed + 1)
    scores = _digit_metrics(run, images, requested_labels)
    print(f"  conditional accuracy {scores['conditional_accuracy']:.3f} (chance 0.100), "
          f"{scores['classes_present']} classes present, histogram {scores['histogram']}")
    return _report(run, history, len(x_train), scores)
