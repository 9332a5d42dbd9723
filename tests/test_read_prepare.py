"""Your own data in: datasets.read (10x mtx folder and .h5, .h5ad, .loom) and datasets.prepare."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse

from course import datasets
from course.datasets.prepare import summary

N_CELLS, N_GENES, N_MITO = 240, 300, 5


@pytest.fixture(scope="module")
def raw():
    """Synthetic raw counts with gene names: 5 mitochondrial genes, 8 cells with almost no
    genes detected and 6 cells with most of their counts on mitochondrial genes."""
    adata = datasets.synthetic_counts(n_cells=N_CELLS, n_genes=N_GENES, seed=3)
    counts = adata.layers["counts"].astype(np.float32)
    counts[:8] = 0
    counts[:8, N_MITO : N_MITO + 4] = 1  # Four genes only.
    counts[8:14, :N_MITO] = 2000  # Mostly mitochondrial.
    genes = [f"MT-{i}" for i in range(N_MITO)] + [f"GENE{i}" for i in range(N_GENES - N_MITO)]
    genes[-1] = genes[-2]  # A duplicate name, as real gene symbols have.
    barcodes = [f"CELL{i}-1" for i in range(N_CELLS)]
    return scipy.sparse.csr_matrix(counts), genes, barcodes


def write_mtx_folder(folder, counts, genes, barcodes, version3=True):
    """A 10x Cell Ranger folder: v3 gzipped with features.tsv, or v2 plain with genes.tsv."""
    folder.mkdir()
    suffix = ".gz" if version3 else ""
    opener = gzip.open if version3 else open
    with opener(folder / f"matrix.mtx{suffix}", "wb") as file:
        scipy.io.mmwrite(file, scipy.sparse.coo_matrix(counts.T.astype(np.int64)))
    columns = [[f"ENSG{i:05d}" for i in range(len(genes))], genes]
    if version3:
        columns.append(["Gene Expression"] * len(genes))
    pd.DataFrame(columns).T.to_csv(folder / f"{'features' if version3 else 'genes'}.tsv{suffix}",
                                   sep="\t", header=False, index=False)
    pd.DataFrame(barcodes).to_csv(folder / f"barcodes.tsv{suffix}", sep="\t", header=False,
                                  index=False)
    return folder


def write_10x_h5(path, counts, genes, barcodes):
    """A Cell Ranger v3 ``filtered_feature_bc_matrix.h5`` (genes x cells CSC = cells CSR)."""
    import h5py

    with h5py.File(path, "w") as file:
        matrix = file.create_group("matrix")
        matrix["data"], matrix["indices"] = counts.data.astype(np.int32), counts.indices
        matrix["indptr"], matrix["shape"] = counts.indptr, np.array(counts.shape[::-1])
        matrix["barcodes"] = np.array(barcodes, dtype="S")
        features = matrix.create_group("features")
        features["id"] = np.array([f"ENSG{i:05d}" for i in range(len(genes))], dtype="S")
        features["name"] = np.array(genes, dtype="S")
        features["feature_type"] = np.array(["Gene Expression"] * len(genes), dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(genes), dtype="S")
    return path


@pytest.mark.parametrize("version3", [True, False], ids=["v3-gzipped", "v2-plain"])
def test_a_10x_mtx_folder_is_read_sparse_with_cells_as_rows(tmp_path, raw, version3):
    counts, genes, barcodes = raw
    adata = datasets.read(write_mtx_folder(tmp_path / "filtered", counts, genes, barcodes,
                                           version3))
    assert adata.shape == (N_CELLS, N_GENES) and scipy.sparse.issparse(adata.X)
    assert (adata.X != counts).nnz == 0
    assert list(adata.obs_names[:2]) == barcodes[:2]
    assert adata.var_names.is_unique and adata.var_names[0] == "MT-0"


def test_a_10x_h5_and_an_h5ad_give_the_same_cells(tmp_path, raw):
    counts, genes, barcodes = raw
    from_h5 = datasets.read(write_10x_h5(tmp_path / "filtered.h5", counts, genes, barcodes))
    from_h5.write_h5ad(tmp_path / "cells.h5ad")
    from_h5ad = datasets.read(tmp_path / "cells.h5ad")
    for adata in (from_h5, from_h5ad):
        assert adata.shape == (N_CELLS, N_GENES) and scipy.sparse.issparse(adata.X)
        assert (adata.X != counts).nnz == 0


def test_bad_files_get_clear_errors(tmp_path, raw):
    counts, genes, barcodes = raw
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.read(tmp_path / "missing.h5ad")
    (tmp_path / "notes.h5ad").write_text("not an HDF5 file")
    with pytest.raises(ValueError, match="Could not read .*notes.h5ad as an .h5ad file"):
        datasets.read(tmp_path / "notes.h5ad")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="Cannot read table.csv: expected a 10x .h5"):
        datasets.read(tmp_path / "table.csv")
    folder = write_mtx_folder(tmp_path / "incomplete", counts, genes, barcodes)
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(ValueError, match=r"not a 10x mtx folder: it lacks barcodes.tsv\[.gz\]"):
        datasets.read(folder)
    mixed = write_mtx_folder(tmp_path / "mixed", counts, genes, barcodes[:-1])
    with pytest.raises(ValueError, match="do not belong together"):
        datasets.read(mixed)


def test_a_loom_file_without_loompy_says_what_to_install(tmp_path):
    pytest.importorskip("h5py")
    try:
        import loompy  # noqa: F401
    except ImportError:
        (tmp_path / "cells.loom").write_bytes(b"")
        with pytest.raises(ImportError, match="pip install loompy"):
            datasets.read(tmp_path / "cells.loom")
    else:
        pytest.skip("loompy is installed")


@pytest.fixture(scope="module")
def prepared(raw):
    counts, genes, barcodes = raw
    import anndata

    adata = anndata.AnnData(counts.copy(), obs=pd.DataFrame(index=barcodes),
                            var=pd.DataFrame(index=genes))
    adata.var_names_make_unique()
    adata.obs["cell_type"] = "T"
    before = adata.copy()
    result = datasets.prepare(adata, n_top_genes=100, min_genes=20, min_cells=3,
                              max_mito_fraction=0.2, verbose=False)
    return before, adata, result


def test_prepare_removes_low_quality_cells_and_says_so(prepared):
    _, _, result = prepared
    qc = result.uns["prepare"]["steps"]["quality_control"]
    assert qc["cells_below_min_genes"] == 8 and qc["cells_above_max_mito_fraction"] == 6
    assert qc["mito_genes_found"] == N_MITO and qc["cells_removed"] == 14
    assert not any(name in result.obs_names for name in ("CELL0-1", "CELL13-1"))
    assert result.obs["mito_fraction"].max() <= 0.2 and result.obs["n_genes"].min() >= 20
    text = summary(result)
    assert "removed 14 cells (8 with fewer than 20 genes, 6 with more than 20% mitochondrial" \
        in text


def test_prepare_keeps_the_most_variable_genes_counts_and_log_normalized_x(prepared,
                                                                           tmp_path):
    before, adata, result = prepared
    assert result.n_vars == 100 and result.n_obs == N_CELLS - 14
    counts = result.layers["counts"]
    assert scipy.sparse.issparse(counts) and scipy.sparse.issparse(result.X)
    assert np.all(counts.data == np.round(counts.data))
    expected = np.log1p(counts.toarray() * 1e4 / result.obs["total_counts"].to_numpy()[:, None])
    np.testing.assert_allclose(result.X.toarray(), expected, rtol=1e-5)
    np.testing.assert_array_equal(result.obs["library_size"], counts.sum(axis=1).A1)
    assert (adata.X != before.X).nnz == 0 and adata.shape == before.shape  # Input untouched.
    result.write_h5ad(tmp_path / "prepared.h5ad")  # The summary in uns can be saved.
    assert datasets.read(tmp_path / "prepared.h5ad").uns["prepare"]["cells_out"] == result.n_obs
    assert list(result.obs["cell_type"].unique()) == ["T"]


def test_prepare_refuses_normalized_data_and_empty_results(prepared):
    _, _, result = prepared
    with pytest.raises(ValueError, match=r"adata.X is not raw counts .*pass layer="):
        datasets.prepare(_without_counts(result), n_top_genes=10, verbose=False)
    with pytest.raises(ValueError, match=r"No cells are left .* relax min_genes"):
        datasets.prepare(result, min_genes=10_000, verbose=False)
    with pytest.raises(ValueError, match="max_mito_fraction must be in"):
        datasets.prepare(result, max_mito_fraction=20, verbose=False)


def _without_counts(adata):
    adata = adata.copy()
    del adata.layers["counts"]
    return adata


def test_add_embedding_puts_an_array_in_obsm_under_a_given_key(prepared):
    _, _, result = prepared
    adata = result.copy()
    embedding = np.zeros((adata.n_obs, 3))
    assert datasets.add_embedding(adata, embedding, key="X_dgd") == "X_dgd"
    assert adata.obsm["X_dgd"].shape == (adata.n_obs, 3)
    with pytest.raises(ValueError, match="needs key="):
        datasets.add_embedding(adata, embedding)
    with pytest.raises(ValueError, match="one row per cell"):
        datasets.add_embedding(adata, embedding[:3], key="X_bad")


def test_a_single_cell_demo_reads_your_file_and_names_a_missing_label_column(tmp_path, raw):
    import anndata

    from course import demos

    counts, genes, barcodes = raw
    path = tmp_path / "mine.h5ad"
    anndata.AnnData(counts, obs=pd.DataFrame({"louvain": ["B", "T"] * (N_CELLS // 2)},
                                             index=barcodes),
                    var=pd.DataFrame(index=[f"G{i}" for i in range(N_GENES)])).write_h5ad(path)
    with pytest.raises(ValueError, match="--data replaces the PBMC cells of the single-cell"):
        demos.validate_request("vae-mnist", data_path=path)
    run = demos.Run("vae-pbmc", tmp_path, 1, 0, None, data_path=path)
    with pytest.raises(ValueError, match=r"no obs column 'cell_type' .* its obs columns: "
                                         r"louvain\. Pass --label-key NAME"):
        run.single_cell()
    run.label_key = "louvain"
    adata = run.single_cell()
    assert run.read_data and sorted(adata.obs["cell_type"].unique()) == ["B", "T"]
    assert "counts" in adata.layers and isinstance(adata.X, np.ndarray)


@pytest.mark.slow
def test_the_your_own_data_notebook_runs_in_smoke_mode(tmp_path):
    """notebooks/your_own_data.py (ungraded): read, prepare, train, UMAP, save to .h5ad."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "your_own_data.py"
    env = {**os.environ, "COURSE_SMOKE": "1", "MPLBACKEND": "Agg", "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(notebook)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "['cells_with_vae.h5ad', 'vae.keras']" in done.stdout
    assert "prepare: 700 cells x 765 genes in" in done.stdout
