"""The landmark -> target split of the D-GEX protocol: predict many genes from a few.

Cells are split into train/validation/test; the landmarks are the most variable genes of the
TRAINING cells (or genes the caller names), the targets the remaining genes. Every gene is
standardized with the mean and standard deviation of the training cells only, so nothing about
the validation or test cells leaks into training.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class LandmarkSplit:
    """Standardized landmark (x) and target (y) expression for train/validation/test cells."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    landmark_genes: list[str]
    target_genes: list[str]
    train_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    @property
    def n_landmarks(self) -> int:
        return len(self.landmark_genes)

    @property
    def n_targets(self) -> int:
        return len(self.target_genes)

    def target_expression(self, y) -> np.ndarray:
        """Standardized target values (true or predicted) back on the log1p expression scale."""
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2 or y.shape[1] != self.n_targets:
            raise ValueError(
                f"Expected standardized targets of shape (n_cells, {self.n_targets}), got "
                f"{y.shape}."
            )
        n_x = self.n_landmarks
        return y * self.scale[n_x:] + self.mean[n_x:]


def _expression(adata) -> np.ndarray:
    """The log-normalized ``adata.X`` as a dense float32 array, refused if empty or not finite."""
    expression = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    expression = expression.astype(np.float32)
    n_cells, n_genes = expression.shape
    if n_cells == 0 or n_genes == 0:
        raise ValueError(f"The AnnData is empty ({n_cells} cells x {n_genes} genes).")
    if not np.all(np.isfinite(expression)):
        raise ValueError("adata.X contains NaN or infinite values; clean or impute them first.")
    return expression


def _split_cells(n_cells: int, fractions, seed: int) -> list[np.ndarray]:
    """Sorted cell indices of the train, validation and test parts (a seeded permutation)."""
    if len(fractions) != 3 or min(fractions) <= 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}.")
    order = np.random.default_rng(seed).permutation(n_cells)
    n_train = int(round(fractions[0] * n_cells))
    n_val = int(round(fractions[1] * n_cells))
    parts = np.split(order, [n_train, n_train + n_val])
    if min(len(part) for part in parts) == 0:
        raise ValueError(
            f"{n_cells} cells are too few to split into train/validation/test with fractions "
            f"{fractions}; use more cells."
        )
    return [np.sort(part) for part in parts]


def _named_landmarks(genes: np.ndarray, landmarks) -> np.ndarray:
    """Column indices of the landmark genes the caller named, each named once and present."""
    repeated = sorted({g for g in landmarks if list(landmarks).count(g) > 1})
    if repeated:
        raise ValueError(
            f"Landmark genes named more than once: {', '.join(map(str, repeated[:10]))}. "
            "Name each landmark gene once."
        )
    missing = sorted(set(landmarks) - set(genes))
    if missing:
        raise ValueError(f"Landmark genes not in the data: {', '.join(missing[:10])}.")
    return np.array([np.flatnonzero(genes == g)[0] for g in landmarks])


def _most_variable_landmarks(by_variance: np.ndarray, n_landmarks: int) -> np.ndarray:
    """Column indices of the ``n_landmarks`` most variable genes (at least one stays a target)."""
    n_genes = len(by_variance)
    if not 1 <= n_landmarks < n_genes:
        raise ValueError(
            f"n_landmarks must be between 1 and {n_genes - 1} (the data have {n_genes} "
            f"genes and at least one must remain as a target), got {n_landmarks}."
        )
    return by_variance[:n_landmarks]


def _targets(by_variance: np.ndarray, landmark_index: np.ndarray, n_targets: int | None):
    """Column indices of the target genes: the most variable genes that are not landmarks."""
    landmark_set = set(landmark_index)
    target_index = np.array([g for g in by_variance if g not in landmark_set])
    if n_targets is not None:
        if not 1 <= n_targets <= len(target_index):
            raise ValueError(
                f"n_targets must be between 1 and {len(target_index)}, got {n_targets}."
            )
        target_index = target_index[:n_targets]
    if len(target_index) == 0:
        raise ValueError("No target genes remain after choosing the landmarks.")
    return target_index


def landmark_split(
    adata,
    n_landmarks: int,
    seed: int = 0,
    n_targets: int | None = None,
    landmarks: list[str] | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> LandmarkSplit:
    """Choose landmark genes and split cells into train/validation/test (D-GEX protocol).

    Landmarks are the ``n_landmarks`` most variable genes of the TRAINING cells (or the genes
    named in ``landmarks``); targets are the remaining genes (the ``n_targets`` most variable of
    them, if given). Expression is the log-normalized ``adata.X``; every gene is standardized
    with the mean and standard deviation of the training cells only, so nothing about the
    validation or test cells leaks into training.

    Returns:
        A :class:`LandmarkSplit` with float32 arrays ``x_*`` (landmarks) and ``y_*`` (targets),
        the gene names, the cell indices of each part, and the training mean and scale of the
        landmark genes followed by the target genes.
    """
    expression = _expression(adata)
    train_index, val_index, test_index = _split_cells(len(expression), fractions, seed)
    genes = np.asarray(adata.var_names).astype(str)
    by_variance = np.argsort(-expression[train_index].var(axis=0), kind="stable")
    if landmarks is not None:
        landmark_index = _named_landmarks(genes, landmarks)
    else:
        landmark_index = _most_variable_landmarks(by_variance, n_landmarks)
    target_index = _targets(by_variance, landmark_index, n_targets)

    # Standardize with the statistics of the training cells only (a constant gene keeps scale 1).
    columns = np.concatenate([landmark_index, target_index])
    mean = expression[train_index][:, columns].mean(axis=0)
    scale = expression[train_index][:, columns].std(axis=0)
    scale[scale == 0] = 1.0
    standardized = (expression[:, columns] - mean) / scale
    x, y = standardized[:, : len(landmark_index)], standardized[:, len(landmark_index) :]
    return LandmarkSplit(
        x[train_index], y[train_index], x[val_index], y[val_index], x[test_index], y[test_index],
        list(genes[landmark_index]), list(genes[target_index]),
        train_index, val_index, test_index, mean, scale,
    )
