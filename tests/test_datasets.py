"""Data loaders: offline fallbacks, count recovery, train-only standardization, clear errors."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from course import datasets

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty cache folder."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache"))
    # The loaders look the probe up in the cache module (course/datasets/cache.py).
    monkeypatch.setattr(datasets.cache, "network_available", lambda *args, **kwargs: False)
    return tmp_path / "cache"


def load_recording_warnings(loader, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = loader(*args, **kwargs)
    return result, [w for w in caught if issubclass(w.category, datasets.BundledDataWarning)]


@pytest.fixture(scope="module")
def pbmc():
    return datasets.load_pbmc(source="bundled")


# MNIST ------------------------------------------------------------------------------------------


def test_bundled_mnist_has_the_documented_shapes_range_and_labels():
    x_train, y_train = datasets.load_mnist("train", source="bundled")
    x_test, y_test = datasets.load_mnist("test", source="bundled")
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert x_train.dtype == np.float32 and 0.0 <= x_train.min() and x_train.max() == 1.0
    assert y_train.dtype == np.int64 and set(np.unique(y_train)) == set(range(10))
    # The first thousand digits are not all of one class (the bundled file is sorted by class).
    assert len(np.unique(y_train[:1000])) == 10


def test_bundled_mnist_split_is_deterministic_and_disjoint():
    x_a, _ = datasets.load_mnist("train", source="bundled")
    x_b, _ = datasets.load_mnist("train", source="bundled")
    x_test, _ = datasets.load_mnist("test", source="bundled")
    np.testing.assert_array_equal(x_a, x_b)
    train_rows = {row.tobytes() for row in x_a.reshape(len(x_a), -1)}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(len(x_test), -1))


def test_auto_mnist_without_network_falls_back_with_exactly_one_warning(offline):
    (images, labels), caught = load_recording_warnings(datasets.load_mnist, "train")
    assert images.shape == (4000, 28, 28, 1) and len(labels) == 4000
    assert len(caught) == 1
    assert "python datasets.py fetch mnist" in str(caught[0].message)


def test_auto_mnist_uses_the_cached_full_set_without_warning(offline):
    cache = offline / "mnist"
    cache.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    np.savez(cache / "mnist.npz", x_train=pixels, y_train=np.arange(6),
             x_test=pixels[:2], y_test=np.arange(2))
    (images, labels), caught = load_recording_warnings(datasets.load_mnist, "test")
    assert caught == []
    assert images.shape == (2, 28, 28, 1) and images.max() <= 1.0
    np.testing.assert_allclose(images[..., 0], pixels[:2] / 255.0, rtol=1e-6)
    assert datasets.mnist_source() == "cache"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"split": "validation"}, "Unknown MNIST split"), ({"source": "s3"}, "Unknown MNIST source")],
)
def test_mnist_rejects_unknown_split_or_source(kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.load_mnist(**kwargs)


# PBMC -------------------------------------------------------------------------------------------


def test_recovered_pbmc_counts_are_integers_and_reproduce_raw_x():
    import scanpy as sc

    reduced = sc.datasets.pbmc68k_reduced()
    counts = datasets.recover_pbmc68k_counts(reduced)
    raw = reduced.raw.X.toarray()
    n_counts = reduced.obs["n_counts"].to_numpy()[:, None]
    assert np.issubdtype(counts.dtype, np.integer) and counts.min() >= 0
    np.testing.assert_allclose(np.log1p(counts / n_counts * 1e4), raw, atol=1e-3)


def test_bundled_pbmc_has_counts_log_normalized_x_cell_types_and_library_size(pbmc):
    counts = pbmc.layers["counts"]
    assert pbmc.shape == (700, 765)
    assert np.issubdtype(counts.dtype, np.integer)
    assert pbmc.obs["cell_type"].nunique() == 10
    np.testing.assert_allclose(pbmc.obs["library_size"], counts.sum(axis=1))
    expected_x = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(pbmc.X, expected_x, rtol=1e-5, atol=1e-5)


def test_auto_pbmc_without_network_falls_back_with_exactly_one_warning(offline):
    adata, caught = load_recording_warnings(datasets.load_pbmc)
    assert adata.shape == (700, 765)
    assert len(caught) == 1
    assert "python datasets.py fetch pbmc" in str(caught[0].message)


def test_pbmc3k_is_read_from_the_cache_and_laid_out_like_the_bundled_cells(offline, pbmc):
    """The real PBMC 3k path (scanpy's loaders) works offline once both files are cached."""
    import anndata

    folder = offline / "scanpy"
    folder.mkdir(parents=True)
    raw = anndata.AnnData(X=pbmc.layers["counts"].astype(np.float32), obs=pbmc.obs[[]].copy(),
                          var=pbmc.var.copy())
    raw.write_h5ad(folder / "pbmc3k_raw.h5ad")
    processed = anndata.AnnData(X=pbmc.X[::2], obs=pbmc.obs.iloc[::2][[]].copy())
    processed.obs["louvain"] = pbmc.obs["cell_type"].iloc[::2].to_numpy()
    processed.write_h5ad(folder / "pbmc3k_processed.h5ad")

    adata, caught = load_recording_warnings(datasets.load_pbmc)
    assert caught == []
    assert datasets.pbmc_source() == "cache"
    assert adata.n_obs == 350 and 0 < adata.n_vars <= datasets.PBMC3K_GENES
    assert np.issubdtype(adata.layers["counts"].dtype, np.integer)
    assert list(adata.obs["cell_type"]) == list(processed.obs["louvain"])


def test_pbmc_rejects_unknown_source():
    with pytest.raises(ValueError, match="Unknown PBMC source"):
        datasets.load_pbmc(source="pbmc68k")


def test_counts_and_labels_name_the_missing_layer_or_column(pbmc):
    bare = pbmc.copy()
    del bare.layers["counts"]
    with pytest.raises(ValueError, match=r"layers\['counts'\]"):
        datasets.counts(bare)
    with pytest.raises(ValueError, match="no obs\\['batch'\\] column"):
        datasets.labels(pbmc, "batch")
    codes, names = datasets.labels(pbmc)
    assert codes.shape == (700,) and len(names) == 10 and codes.max() == 9


# Synthetic counts -------------------------------------------------------------------------------


def test_synthetic_counts_are_reproducible_integer_counts_with_known_cell_types():
    a = datasets.synthetic_counts(n_cells=300, n_genes=50, n_cell_types=3, seed=7)
    b = datasets.synthetic_counts(n_cells=300, n_genes=50, n_cell_types=3, seed=7)
    c = datasets.synthetic_counts(n_cells=300, n_genes=50, n_cell_types=3, seed=8)
    assert a.shape == (300, 50) and a.obs["cell_type"].nunique() == 3
    np.testing.assert_array_equal(a.layers["counts"], b.layers["counts"])
    assert not np.array_equal(a.layers["counts"], c.layers["counts"])
    np.testing.assert_allclose(a.obs["library_size"], a.layers["counts"].sum(axis=1))
    assert 1000 < np.median(a.obs["library_size"]) < 4000


def test_synthetic_counts_rejects_empty_shapes():
    with pytest.raises(ValueError, match="n_cells must be at least 1"):
        datasets.synthetic_counts(n_cells=0)


@pytest.mark.parametrize("size", ["n_cells", "n_cell_types"])
def test_synthetic_perturbation_rejects_empty_shapes(size):
    with pytest.raises(ValueError, match=f"{size} must be at least 1"):
        datasets.synthetic_perturbation(**{size: 0})


# Same seed, same data: values recorded from the generators (numpy's PCG64 streams) so that a
# rewrite of the code that draws them cannot silently change what the labs and tests see.


def test_synthetic_counts_same_seed_gives_the_recorded_counts():
    adata = datasets.synthetic_counts(n_cells=4, n_genes=5, n_cell_types=2, seed=7)
    np.testing.assert_array_equal(
        adata.layers["counts"],
        [[470, 679, 238, 57, 211], [286, 242, 117, 49, 134], [416, 482, 90, 38, 281],
         [180, 545, 240, 42, 101]],
    )
    assert list(adata.obs["cell_type"]) == ["type_1"] * 4


def test_synthetic_perturbation_same_seed_gives_the_recorded_cells_and_response():
    adata = datasets.synthetic_perturbation(
        n_cells=6, n_genes=6, n_cell_types=2, n_response_genes=1, seed=3
    )
    np.testing.assert_array_equal(
        adata.layers["counts"],
        [[169, 2, 101, 53, 202, 201], [92, 4, 33, 1004, 438, 44], [55, 5, 23, 2732, 41, 83],
         [173, 7, 41, 1307, 1057, 69], [115, 5, 130, 1298, 85, 33],
         [1314, 14, 52, 72, 471, 134]],
    )
    assert list(adata.obs["condition"]) == ["control", "stimulated"] * 3
    assert list(adata.obs["cell_type"]) == ["type_1"] + ["type_0"] * 4 + ["type_1"]
    np.testing.assert_allclose(
        adata.uns["true_log_fold_change"],
        [[-0.2060, -0.2060, -0.8991, -0.2060, 1.7109, -0.2060],
         [-0.1913, -0.1913, -0.8844, -0.1913, 0.9012, -0.1913]],
        atol=1e-4,
    )


def test_synthetic_sequences_same_seed_gives_the_recorded_sequences():
    sequences, has_motif = datasets.synthetic_sequences(n_sequences=6, length=12, seed=2)
    assert has_motif.tolist() == [0, 0, 0, 1, 0, 0]
    spelled = ["".join(datasets.DNA_BASES[i] for i in row.argmax(-1)) for row in sequences]
    assert spelled == ["TCACCTCACGTG", "TATAGCAGCGCA", "GCGGTCAGTTTG", "GGGACTCTCCTT",
                       "TCTTACGGGACA", "TACTGGCTGGCC"]


# Landmark split ---------------------------------------------------------------------------------


def test_landmark_split_standardizes_with_training_cells_only(pbmc):
    split = datasets.landmark_split(pbmc, n_landmarks=50, n_targets=100, seed=0)
    assert split.x_train.shape == (490, 50) and split.y_train.shape == (490, 100)
    assert len(split.x_val) == len(split.x_test) == 105
    train = np.concatenate([split.x_train, split.y_train], axis=1)
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(train.std(axis=0)[train.std(axis=0) > 0], 1.0, atol=1e-3)
    # Test cells are NOT standardized to mean zero: their statistics were not used.
    test = np.concatenate([split.x_test, split.y_test], axis=1)
    assert np.abs(test.mean(axis=0)).max() > 0.05


def test_landmark_split_statistics_do_not_depend_on_test_cells(pbmc):
    before = datasets.landmark_split(pbmc, n_landmarks=30, seed=1)
    changed = pbmc.copy()
    changed.X[before.test_index] = changed.X[before.test_index] * 3.0 + 5.0
    after = datasets.landmark_split(changed, n_landmarks=30, seed=1)
    assert before.landmark_genes == after.landmark_genes
    assert before.target_genes == after.target_genes
    np.testing.assert_allclose(before.mean, after.mean)
    np.testing.assert_allclose(before.scale, after.scale)
    np.testing.assert_allclose(before.x_train, after.x_train)
    assert not np.allclose(before.x_test, after.x_test)


def test_landmarks_are_the_most_variable_training_genes_and_disjoint_from_targets(pbmc):
    split = datasets.landmark_split(pbmc, n_landmarks=20, seed=0)
    assert not set(split.landmark_genes) & set(split.target_genes)
    assert split.n_landmarks + split.n_targets == pbmc.n_vars
    variance = pbmc.X[split.train_index].var(axis=0)
    chosen = np.isin(pbmc.var_names, split.landmark_genes)
    assert variance[chosen].min() >= variance[~chosen].max()


def test_landmark_split_same_seed_gives_the_recorded_genes_cells_and_values(pbmc):
    split = datasets.landmark_split(pbmc, n_landmarks=3, n_targets=4, seed=5)
    assert split.landmark_genes == ["CST3", "LYZ", "HLA-DRA"]
    assert split.target_genes == ["AIF1", "HLA-DPB1", "LST1", "TYROBP"]
    assert split.train_index[:5].tolist() == [0, 1, 2, 3, 4]
    assert split.val_index[:3].tolist() == [5, 24, 27]
    assert split.test_index[:3].tolist() == [13, 15, 42]
    np.testing.assert_allclose(split.x_train[0], [0.80588, 0.51964, 0.58666], atol=1e-4)
    np.testing.assert_allclose(split.y_test[0], [-1.11051, 0.55251, 0.18193, -1.14270], atol=1e-4)
    np.testing.assert_allclose(
        split.mean, [3.13805, 2.79215, 4.02250, 2.63105, 3.69193, 2.65147, 2.61182], atol=1e-4
    )
    np.testing.assert_allclose(
        split.scale, [2.72933, 2.65093, 2.48445, 2.36922, 2.32209, 2.29851, 2.28566], atol=1e-4
    )


def test_landmark_split_accepts_named_landmarks(pbmc):
    names = list(pbmc.var_names[:5])
    split = datasets.landmark_split(pbmc, n_landmarks=5, landmarks=names, seed=0)
    assert split.landmark_genes == names


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_landmarks": 765}, "n_landmarks must be between 1 and 764"),
        ({"n_landmarks": 0}, "n_landmarks must be between"),
        ({"n_landmarks": 10, "n_targets": 10_000}, "n_targets must be between"),
        ({"n_landmarks": 10, "landmarks": ["NOT_A_GENE"]}, "not in the data: NOT_A_GENE"),
        ({"n_landmarks": 10, "fractions": (0.5, 0.5, 0.5)}, "summing to 1"),
    ],
)
def test_landmark_split_rejects_bad_requests(pbmc, kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.landmark_split(pbmc, **kwargs)


def test_landmark_split_rejects_empty_selections_and_nans(pbmc):
    with pytest.raises(ValueError, match="empty"):
        datasets.landmark_split(pbmc[:0].copy(), n_landmarks=5)
    with pytest.raises(ValueError, match="too few to split"):
        datasets.landmark_split(pbmc[:2].copy(), n_landmarks=5)
    broken = pbmc.copy()
    broken.X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        datasets.landmark_split(broken, n_landmarks=5)


# tf.data ----------------------------------------------------------------------------------------


def test_as_dataset_batches_shuffles_reproducibly_and_can_drop_the_remainder():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)
    kept = list(datasets.as_dataset(x, y, batch_size=4, seed=3))
    assert [len(b[0]) for b in kept] == [4, 4, 2]
    again = list(datasets.as_dataset(x, y, batch_size=4, seed=3))
    np.testing.assert_array_equal(kept[0][1], again[0][1])
    dropped = list(datasets.as_dataset(x, y, batch_size=4, drop_remainder=True))
    assert [len(b[0]) for b in dropped] == [4, 4]
    ordered = list(datasets.as_dataset(x, batch_size=10, shuffle=False))
    np.testing.assert_array_equal(ordered[0][:, 0], np.arange(10))


def test_as_dataset_accepts_a_tuple_of_inputs():
    x = (np.zeros((6, 3), np.float32), np.ones((6,), np.int64))
    (features, labels) = next(iter(datasets.as_dataset(x, batch_size=6)))
    assert features.shape == (6, 3) and labels.shape == (6,)


@pytest.mark.parametrize(
    "x, y, kwargs, message",
    [
        (np.zeros((0, 3)), None, {}, "empty"),
        (np.array([[1.0, np.nan]]), None, {}, "NaN"),
        (np.zeros((4, 3)), np.zeros(5), {}, "same number of rows"),
        (np.zeros((4, 3)), None, {"batch_size": 0}, "positive integer"),
        (np.zeros((4, 3)), None, {"batch_size": 8, "drop_remainder": True}, "no batch"),
    ],
)
def test_as_dataset_rejects_bad_input_clearly(x, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        datasets.as_dataset(x, y, **kwargs)


# The workshop data tool -------------------------------------------------------------------------


def test_datasets_info_prints_a_table_of_sources(offline):
    import os

    env = {**os.environ, "COURSE_DATA_DIR": str(offline)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "datasets.py"), "info"],
        capture_output=True, text=True, env=env, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "mnist train" in result.stdout and "pbmc" in result.stdout
    assert "700 cells x 765 genes" in result.stdout


def test_a_damaged_mnist_cache_is_named_and_the_bundled_digits_are_used(offline):
    cache = offline / "mnist"
    cache.mkdir(parents=True)
    pixels = np.zeros((6, 28, 28), dtype=np.uint8)
    np.savez(cache / "mnist.npz", x_train=pixels, y_train=np.arange(6), x_test=pixels,
             y_test=np.arange(6))
    whole = (cache / "mnist.npz").read_bytes()
    (cache / "mnist.npz").write_bytes(whole[: len(whole) // 2])  # an interrupted download
    with pytest.warns(datasets.DamagedCacheWarning) as caught:
        images, _ = datasets.load_mnist("train")
    assert images.shape == (4000, 28, 28, 1)
    messages = " ".join(str(warning.message) for warning in caught)
    assert str(cache / "mnist.npz") in messages and "damaged" in messages
    assert datasets.mnist_source() == "bundled"


def test_a_damaged_pbmc3k_cache_is_named_and_the_bundled_cells_are_used(offline):
    folder = offline / "scanpy"
    folder.mkdir(parents=True)
    for name in ("pbmc3k_raw.h5ad", "pbmc3k_processed.h5ad"):
        (folder / name).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.warns(datasets.DamagedCacheWarning) as caught:
        adata = datasets.load_pbmc()
    assert adata.shape == (700, 765)
    messages = " ".join(str(warning.message) for warning in caught)
    assert "pbmc3k_raw.h5ad" in messages and "damaged" in messages
