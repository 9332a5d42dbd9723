"""Your own single-cell data in: 10x ``.h5``, a 10x ``mtx`` folder, ``.h5ad`` and ``.loom``.

:func:`read` returns an AnnData whose count matrix stays sparse (CSR): a 10x run of 50,000
cells x 33,000 genes is about 100 MB as CSR and 6.6 GB dense. Nothing is filtered or
normalized here; :func:`course.datasets.prepare` does that, and says what it removed.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

FORMATS = ("10x .h5", "10x mtx folder (matrix.mtx[.gz], features.tsv[.gz] or genes.tsv[.gz], "
           "barcodes.tsv[.gz])", ".h5ad", ".loom")


def read(path):
    """Read a single-cell count file or folder as an AnnData (counts sparse, genes unique).

    Args:
        path: a 10x Genomics ``.h5`` (Cell Ranger's filtered_feature_bc_matrix.h5), a 10x
            ``mtx`` folder (filtered_feature_bc_matrix/), an ``.h5ad`` written by anndata or
            scanpy, or a ``.loom`` file (needs ``pip install loompy``).

    Returns:
        An AnnData with cells as rows. Duplicate gene names are made unique ("GENE-1").

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for a format it cannot read, or a file that is not what its name says.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist. Pass a {_formats()}.")
    if path.is_dir():
        adata = _read_mtx_folder(path)
    elif path.suffix == ".h5":
        adata = _read_with(path, "a 10x Genomics .h5 (Cell Ranger's *_feature_bc_matrix.h5)",
                           _read_10x_h5)
    elif path.suffix == ".h5ad":
        adata = _read_with(path, "an .h5ad file written by anndata", _read_h5ad)
    elif path.suffix == ".loom":
        adata = _read_with(path, "a .loom file", _read_loom)
    elif path.name.endswith((".mtx", ".mtx.gz")):
        adata = _read_mtx_folder(path.parent)
    else:
        raise ValueError(f"Cannot read {path.name}: expected a {_formats()}.")
    _sparse_counts(adata)
    adata.var_names_make_unique()
    adata.obs_names_make_unique()
    return adata


def _formats() -> str:
    return ", a ".join(FORMATS[:-1]) + " or a " + FORMATS[-1]


def _read_with(path: Path, what: str, reader):
    """``reader(path)``, with any failure to parse reported as a ValueError naming the file."""
    try:
        return reader(path)
    except ImportError:
        raise
    except Exception as error:  # h5py, anndata and scanpy raise many kinds of errors.
        raise ValueError(f"Could not read {path} as {what}: {type(error).__name__}: {error}. "
                         "Is the file complete and of this format?") from error


def _read_10x_h5(path: Path):
    import scanpy as sc

    return sc.read_10x_h5(path)


def _read_h5ad(path: Path):
    import anndata

    return anndata.read_h5ad(path)


def _read_loom(path: Path):
    try:
        import loompy  # noqa: F401  (anndata's loom reader needs it)
    except ImportError:
        raise ImportError(f"Reading {path.name} needs loompy: pip install loompy (or convert "
                          "the file to .h5ad).") from None
    import anndata

    return anndata.io.read_loom(path, sparse=True)


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.exists():
                return candidate
    return None


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _read_mtx_folder(folder: Path):
    """A 10x ``mtx`` folder: genes x cells Matrix Market counts with gene and barcode lists."""
    import anndata
    import pandas as pd
    import scipy.io
    import scipy.sparse

    matrix_file = _find(folder, ("matrix.mtx",))
    genes_file = _find(folder, ("features.tsv", "genes.tsv"))
    barcodes_file = _find(folder, ("barcodes.tsv",))
    missing = [name for name, found in (("matrix.mtx[.gz]", matrix_file),
                                        ("features.tsv[.gz] or genes.tsv[.gz]", genes_file),
                                        ("barcodes.tsv[.gz]", barcodes_file)) if found is None]
    if missing:
        raise ValueError(f"{folder} is not a 10x mtx folder: it lacks {', '.join(missing)}. "
                         f"Pass a {_formats()}.")
    try:
        with _open_text(matrix_file) as file:
            counts = scipy.sparse.csr_matrix(scipy.io.mmread(file).T)
        genes = pd.read_csv(genes_file, sep="\t", header=None, dtype=str)
        barcodes = pd.read_csv(barcodes_file, sep="\t", header=None, dtype=str)
    except Exception as error:
        raise ValueError(f"Could not read the 10x mtx folder {folder}: {type(error).__name__}: "
                         f"{error}.") from error
    if counts.shape != (len(barcodes), len(genes)):
        raise ValueError(
            f"{matrix_file.name} holds {counts.shape[1]} genes x {counts.shape[0]} cells, but "
            f"{genes_file.name} lists {len(genes)} genes and {barcodes_file.name} "
            f"{len(barcodes)} barcodes: the files do not belong together."
        )
    # Columns: gene id, gene symbol (absent in some old genes.tsv), feature type (v3).
    symbols = genes[1] if genes.shape[1] > 1 else genes[0]
    var = pd.DataFrame({"gene_ids": genes[0].to_numpy()}, index=symbols.to_numpy())
    if genes.shape[1] > 2:
        var["feature_types"] = genes[2].to_numpy()
    obs = pd.DataFrame(index=barcodes[0].to_numpy())
    return anndata.AnnData(X=counts.astype(np.float32), obs=obs, var=var)


def _sparse_counts(adata) -> None:
    """Store a dense X that is mostly zeros (as count matrices are) as CSR, in place."""
    import scipy.sparse

    if adata.isbacked or adata.X is None or scipy.sparse.issparse(adata.X):
        return
    if np.count_nonzero(adata.X) < 0.5 * adata.X.size:
        adata.X = scipy.sparse.csr_matrix(adata.X)
