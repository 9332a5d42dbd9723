"""Sparse end to end: count models fit, evaluate and encode from scipy sparse matrices and
AnnData, one dense batch at a time (course.models.base)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import scipy.sparse

from course import datasets, models
from course.models import base

N_CELLS, N_GENES = 240, 30


@pytest.fixture(scope="module")
def cells():
    """Raw counts (dense and CSR, about 70% zeros) and an AnnData in the toolkit's layout."""
    adata = datasets.synthetic_counts(n_cells=N_CELLS, n_genes=N_GENES, seed=1,
                                      mean_library_size=60.0)
    dense = adata.layers["counts"].astype(np.float32)
    adata.layers["counts"] = scipy.sparse.csr_matrix(dense)
    adata.X = scipy.sparse.csr_matrix(adata.X)
    return dense, scipy.sparse.csr_matrix(dense), adata


@pytest.fixture
def no_whole_matrix_densified(monkeypatch):
    """Fail any toarray()/todense() of more rows than one batch of in_batches."""
    for name in ("toarray", "todense"):
        original = getattr(scipy.sparse.csr_matrix, name)

        def guarded(self, *args, _original=original, **kwargs):
            assert self.shape[0] <= base.PREDICT_BATCH_SIZE, "a whole matrix was made dense"
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(scipy.sparse.csr_matrix, name, guarded)


def nb_vae_loss(data, epochs=2, **fit_arguments):
    keras.utils.set_random_seed(0)
    vae = models.VAE(data_shape=(N_GENES,), latent_dim=3, hidden_units=(16,), likelihood="nb",
                     seed=0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = vae.fit(data, epochs=epochs, batch_size=32, verbose=0, **fit_arguments)
    return vae, history.history["loss"][-1]


def test_sparse_batches_are_the_dense_rows_in_order_or_in_a_seeded_shuffle(cells):
    dense, csr, _ = cells
    # A non-canonical CSR matrix: a value split into two duplicate entries sums, as in scipy.
    rows, columns = csr.nonzero()
    split = scipy.sparse.csr_matrix(
        (np.concatenate([csr.data - 0.5, np.full(csr.nnz, 0.5)]),
         (np.concatenate([rows, rows]), np.concatenate([columns, columns]))), shape=csr.shape)
    split.has_canonical_format = False
    for matrix in (csr, split):
        batches = list(base.sparse_dataset((matrix, np.arange(N_CELLS)), batch_size=50,
                                           shuffle=False).as_numpy_iterator())
        np.testing.assert_allclose(np.concatenate([b[0] for b in batches]), dense)
        np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]),
                                      np.arange(N_CELLS))

    def order(seed):
        dataset = base.sparse_dataset((csr, np.arange(N_CELLS)), 50, shuffle=True, seed=seed)
        return np.concatenate([indices for _, indices in dataset.as_numpy_iterator()])

    assert not np.array_equal(order(1), np.arange(N_CELLS))
    np.testing.assert_array_equal(order(1), order(1))


def test_a_sparse_matrix_and_an_anndata_train_the_nb_vae_to_the_dense_loss(cells):
    dense, csr, adata = cells
    _, dense_loss = nb_vae_loss(dense)
    _, sparse_loss = nb_vae_loss(csr)
    vae, anndata_loss = nb_vae_loss(adata)  # layers["counts"]: the default of a count model.
    assert sparse_loss == pytest.approx(dense_loss, rel=0.03)
    assert anndata_loss == pytest.approx(sparse_loss, rel=1e-6)  # The same rows, same order.
    np.testing.assert_allclose(vae.encode(adata), vae.encode(dense), rtol=1e-5, atol=1e-6)
    assert datasets.add_embedding(adata, vae) == "X_vae"
    np.testing.assert_allclose(adata.obsm["X_vae"], vae.encode(dense), rtol=1e-5, atol=1e-6)


def test_training_and_encoding_never_densify_more_than_a_batch(cells,
                                                               no_whole_matrix_densified):
    dense, _, _ = cells
    big = scipy.sparse.csr_matrix(np.tile(dense, (3, 1)))  # 720 rows > one batch of 512.
    vae, _ = nb_vae_loss(big, epochs=1, validation_data=(big,))
    assert vae.encode(big).shape == (3 * N_CELLS, 3)
    assert vae.reconstruct(big).shape == big.shape
    assert len(vae.evaluate(big, batch_size=64, verbose=0)) == 3


def test_dca_records_its_statistics_from_sparse_counts_and_encodes_them(cells):
    dense, csr, adata = cells
    keras.utils.set_random_seed(0)
    dca = models.DCA(n_genes=N_GENES, latent_dim=3, hidden_units=(8,))
    dca.compile(optimizer="adam")
    dca.fit(csr, epochs=1, batch_size=64, verbose=0)
    library = dense.sum(axis=1)
    normalized = dense / (library / np.median(library))[:, None]
    expected = {"median_library": np.median(library),
                "log_gene_mean": np.log(normalized.mean(axis=0) + 1e-5),
                "input_mean": np.log1p(normalized).mean(axis=0),
                "input_std": np.maximum(np.log1p(normalized).std(axis=0), 1e-3)}
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(dca, name).numpy(), value, rtol=1e-4, atol=1e-6)
    assert dca.encode(adata).shape == (N_CELLS, 3)
    assert dca.denoise(csr).shape == (N_CELLS, N_GENES)
    assert np.isfinite(dca.evaluate(adata, verbose=0))


@pytest.mark.parametrize("kind", ["ldvae", "dgd", "scgan", "scgen"])
def test_every_count_model_fits_and_encodes_from_sparse_counts_or_an_anndata(cells, kind):
    dense, csr, adata = cells
    keras.utils.set_random_seed(0)
    if kind == "ldvae":
        model = models.VAE(data_shape=(N_GENES,), latent_dim=3, likelihood="nb",
                           linear_decoder=True)
    elif kind == "dgd":
        model = models.DGD(n_genes=N_GENES, n_cells=N_CELLS, latent_dim=2, n_components=2,
                           hidden_units=(8,))
    elif kind == "scgan":
        model = models.ScGAN(n_genes=N_GENES, latent_dim=4, generator_units=(8,),
                             critic_units=(8,), n_critic=1)
    else:  # scGen reads the log-normalized X of an AnnData (Gaussian likelihood).
        model = models.ScGen(data_shape=(N_GENES,), latent_dim=3, hidden_units=(8,))
    model.compile()
    history = model.fit(adata if kind in ("scgen", "dgd") else csr, epochs=1, batch_size=64,
                        verbose=0)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    if kind == "dgd":
        assert np.isfinite(model.evaluate((csr, np.arange(N_CELLS)), verbose=0)[0])
        assert model.infer(csr[:5], steps=2).shape == (5, 2)
    elif kind == "scgan":
        assert model.generate(4, seed=0).shape == (4, N_GENES)
    else:
        assert model.encode(adata).shape == (N_CELLS, 3)
    if kind == "scgen":  # Its default layer is X, the log-normalized values.
        np.testing.assert_allclose(model.encode(adata), model.encode(adata.X.toarray()),
                                   rtol=1e-5, atol=1e-6)


def test_bad_sparse_counts_get_the_same_errors_as_dense_ones(cells):
    _, csr, adata = cells
    vae = models.VAE(data_shape=(N_GENES,), latent_dim=2, likelihood="nb")
    vae.compile()
    for value, message in ((-1.0, "negative values"), (0.5, "non-integer values"),
                           (np.nan, "NaN or infinite")):
        bad = csr.copy()
        bad.data[3] = value
        with pytest.raises(ValueError, match=message):
            vae.fit(bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="Expected data of shape"):
        vae.encode(csr[:, :5])
    with pytest.raises(ValueError, match=r"no layers\['raw'\] \(its layers: 'counts'\)"):
        vae.fit(adata, layer="raw", epochs=1, verbose=0)
    with pytest.raises(ValueError, match="non-integer values"):
        vae.encode(adata.X)  # Log-normalized values.
    with pytest.raises(ValueError, match="validation_split needs arrays"):
        vae.fit(csr, validation_split=0.1, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="cells without any counts"):
        models.ScGAN(n_genes=N_GENES).fit(scipy.sparse.csr_matrix((4, N_GENES)), verbose=0)
