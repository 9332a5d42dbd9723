"""One-hot DNA with a planted motif, the training data of DNA-GAN."""

from __future__ import annotations

import numpy as np

DNA_BASES = "ACGT"
# An illustrative transcription-factor motif modelled on the NF-kB site GGGACTTTCC (the kappa-B
# site of the immunoglobulin kappa enhancer): rows are motif positions, columns the
# probabilities of A, C, G, T (0.94 for the consensus base). Not fitted to any data.
MOTIF_CONSENSUS = "GGGACTTTCC"
MOTIF_PWM = np.array(
    [[0.94 if base == consensus else 0.02 for base in DNA_BASES] for consensus in MOTIF_CONSENSUS]
)


def synthetic_sequences(
    n_sequences: int = 2000,
    length: int = 50,
    motif_fraction: float = 0.5,
    seed: int = 0,
    pwm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Random DNA (uniform bases) in which a share of sequences carries one planted motif.

    Each motif instance is drawn base by base from the position weight matrix ``pwm`` (default
    :data:`MOTIF_PWM`, an NF-kB-like site) at a uniformly random position.

    Returns:
        ``sequences``, one-hot float32 of shape (n_sequences, length, 4) in the order of
        :data:`DNA_BASES`, and ``has_motif``, int64 of shape (n_sequences,), 1 where planted.
    """
    pwm = MOTIF_PWM if pwm is None else np.asarray(pwm, dtype=np.float64)
    if pwm.ndim != 2 or pwm.shape[1] != 4 or not np.allclose(pwm.sum(axis=1), 1.0):
        raise ValueError("pwm must have shape (motif_length, 4) with rows that sum to 1.")
    if n_sequences < 1 or length < len(pwm):
        raise ValueError(
            f"Need n_sequences >= 1 and length >= the motif length {len(pwm)}, got "
            f"{n_sequences} and {length}."
        )
    if not 0.0 <= motif_fraction <= 1.0:
        raise ValueError(f"motif_fraction must be in [0, 1], got {motif_fraction}.")
    rng = np.random.default_rng(seed)
    bases = rng.integers(0, 4, (n_sequences, length))
    has_motif = (rng.random(n_sequences) < motif_fraction).astype(np.int64)
    for row in np.flatnonzero(has_motif):
        start = rng.integers(0, length - len(pwm) + 1)
        motif = [rng.choice(4, p=probabilities) for probabilities in pwm]
        bases[row, start : start + len(pwm)] = motif
    return np.eye(4, dtype=np.float32)[bases], has_motif
