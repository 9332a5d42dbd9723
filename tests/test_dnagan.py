"""DNA-GAN and its data: planted motifs are found by the PWM scan, the generator emits base
probabilities, design raises the predictor's score, saving, bad input, and a distributed step
equal to the single-device one."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops
from test_distributed_training import Case, assert_same_training, sgd, train, zero_noise

from course import datasets, distribute
from course.demos import gan_gallery
from course.models import DNAGAN

LENGTH = 16
SMALL = dict(latent_dim=4, filters=(8,), kernel_size=3, n_critic=2)
THRESHOLD = gan_gallery.motif_threshold(datasets.MOTIF_PWM)


def test_planted_motifs_are_found_and_random_sequences_rarely_have_one():
    sequences, has_motif = datasets.synthetic_sequences(400, 50, motif_fraction=0.5, seed=0)
    assert sequences.shape == (400, 50, 4) and np.all(sequences.sum(-1) == 1)
    assert 0.4 < has_motif.mean() < 0.6
    scores = gan_gallery.pwm_scores(sequences, datasets.MOTIF_PWM)
    assert (scores[has_motif == 1] >= THRESHOLD).mean() > 0.9
    assert (scores[has_motif == 0] >= THRESHOLD).mean() < 0.1
    again, _ = datasets.synthetic_sequences(400, 50, motif_fraction=0.5, seed=0)
    np.testing.assert_array_equal(sequences, again)


def test_the_consensus_gets_the_best_possible_score_at_its_position():
    consensus = np.eye(4)[["ACGT".index(b) for b in datasets.MOTIF_CONSENSUS]]
    sequence = np.zeros((1, 20, 4))
    sequence[0, :, 0] = 1.0
    sequence[0, 5:15] = consensus
    best = np.log(datasets.MOTIF_PWM.max(axis=1) / 0.25).sum()
    assert gan_gallery.pwm_scores(sequence, datasets.MOTIF_PWM)[0] == pytest.approx(best)
    window = gan_gallery.best_hit_windows(sequence, datasets.MOTIF_PWM, flank=2)[0]
    np.testing.assert_array_equal(window[2:12], consensus)


@pytest.mark.parametrize("arguments, message", [
    (dict(length=5), "length"), (dict(motif_fraction=1.5), "motif_fraction"),
    (dict(pwm=np.ones((3, 4))), "rows that sum to 1"),
])
def test_bad_sequence_arguments_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        datasets.synthetic_sequences(10, **{"length": 20, **arguments})


def test_generator_emits_base_probabilities_and_generate_gives_one_hot():
    gan = DNAGAN(LENGTH, **SMALL)
    probabilities = gan.generate(5, seed=1, one_hot=False)
    assert probabilities.shape == (5, LENGTH, 4) and probabilities.min() >= 0
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    one_hot = gan.generate(5, seed=1)
    np.testing.assert_array_equal(one_hot.argmax(-1), probabilities.argmax(-1))
    assert np.all(one_hot.sum(-1) == 1)


def test_design_raises_the_predictors_score():
    gan = DNAGAN(LENGTH, **SMALL)

    def g_content(sequences):  # A differentiable "predictor": the expected number of Gs.
        return ops.sum(sequences[..., 2:3], axis=1)

    before = g_content(gan.generate(50, seed=3, one_hot=False)).numpy()
    designed = gan.design(g_content, 50, steps=30, learning_rate=0.1, seed=3, one_hot=False)
    after = g_content(designed).numpy()
    # Every sequence moved uphill from its own starting code (same seed, same codes).
    assert np.all(after > before) and after.mean() > before.mean() + 0.1


def test_save_and_load_keeps_config_and_outputs(tmp_path):
    gan = DNAGAN(LENGTH, **SMALL)
    gan.compile()
    sequences, _ = datasets.synthetic_sequences(16, LENGTH, seed=0)
    gan.fit(sequences, batch_size=8, epochs=1, verbose=0)
    gan.save(tmp_path / "dnagan.keras")
    loaded = keras.models.load_model(tmp_path / "dnagan.keras")
    assert loaded.filters == (8,) and loaded.sequence_length == LENGTH
    np.testing.assert_allclose(loaded.generate(4, seed=2, one_hot=False),
                               gan.generate(4, seed=2, one_hot=False), rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (np.random.default_rng(0).normal(size=(8, LENGTH, 4)), "not one-hot"),
    (np.zeros((8, LENGTH, 4)), "not one-hot"),
    (np.ones((8, LENGTH)), r"shape \(n, length, 4\)"),
])
def test_sequences_that_are_not_one_hot_are_refused(bad, message):
    gan = DNAGAN(LENGTH, **SMALL)
    gan.compile()
    with pytest.raises(ValueError, match=message):
        gan.fit(bad, epochs=1, verbose=0)


@pytest.mark.slow
def test_distributed_step_equals_the_single_device_step(strategy, monkeypatch):
    monkeypatch.setattr(distribute, "normal", zero_noise)
    sequences, _ = datasets.synthetic_sequences(16, LENGTH, seed=0)
    case = Case(lambda: DNAGAN(LENGTH, **SMALL),
                lambda model: model.compile(d_optimizer=sgd(), g_optimizer=sgd()),
                sequences, ("d_loss", "g_loss", "gradient_penalty"))
    single = train(case)
    distributed = train(case, strategy, initial_weights=single[1])
    assert any(not np.allclose(a, b) for a, b in zip(single[1], single[0].get_weights()))
    assert_same_training(single, distributed, case.loss_keys)


@pytest.mark.parametrize("position, message", [((20, 3, 0), "NaN"), ((20, 3), "not one-hot")])
def test_bad_sequences_in_a_later_batch_of_a_dataset_are_a_value_error(position, message):
    import tensorflow as tf

    gan = DNAGAN(LENGTH, **{**SMALL, "n_critic": 1})
    gan.compile()
    sequences, _ = datasets.synthetic_sequences(32, LENGTH, seed=0)
    sequences = sequences.astype("float32")
    sequences[position] = np.nan if message == "NaN" else 0.0  # in the third batch of four
    dataset = tf.data.Dataset.from_tensor_slices(sequences).batch(8)
    for method in (gan.fit, gan.evaluate):
        with pytest.raises(ValueError, match=message):
            method(dataset, verbose=0)
