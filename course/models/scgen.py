"""scGen: predict a perturbation response by arithmetic in a VAE's latent space.

Lotfollahi, Wolf & Theis, "scGen predicts single-cell perturbation responses", Nature Methods
16, 715-721 (2019).

Train one VAE on control and stimulated cells of every cell type but the one whose response is
wanted (its training is the VAE's: read ``VAE.train_step``). The stimulus is then a direction in
the latent space, estimated with the cell types balanced so that no type dominates it:

    delta  = mean_t E[z | stimulated, t] - mean_t E[z | control, t]    (t: the training types)
    x_pred = decode(encode(x_control) + delta)                         (cells of the held-out type)

The paper uses log-normalized expression with a Gaussian (squared error) decoder; so does the
default here. With real data, an AnnData with condition and cell-type columns::

    x = adata.X (log-normalized), conditions = adata.obs["condition"], types = adata.obs[...]
    train = ~((types == "CD4 T") & (conditions == "stimulated"))
    model = ScGen(data_shape=(adata.n_vars,)); model.compile("adam"); model.fit(x[train], ...)
    delta = model.latent_delta(x[train], conditions[train], types[train])
    predicted = model.predict_perturbation(x[(types == "CD4 T") & (conditions == "control")], delta)

(``course.demos.vae_family.scgen_holdout`` does all of this and scores it.)
"""

from __future__ import annotations

import keras
import numpy as np

from course.models.base import row_count
from course.models.vae import VAE


@keras.saving.register_keras_serializable(package="course")
class ScGen(VAE):
    """scGen (Lotfollahi et al., Nat Methods 2019): a VAE plus latent arithmetic for predicting
    the response of an unseen cell type to a stimulus; see the module docstring.

    Args: as :class:`VAE`; the defaults are a Gaussian likelihood for log-normalized expression
    and a 10-D latent space.
    """

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int = 10,
                 likelihood: str = "gaussian", **kwargs):
        super().__init__(data_shape, latent_dim=latent_dim, likelihood=likelihood, **kwargs)

    def latent_delta(self, x, conditions, cell_types, control: str = "control",
                     stimulated: str = "stimulated") -> np.ndarray:
        """The stimulus as a latent direction: the mean over cell types of each type's
        stimulated-minus-control latent mean (types seen in only one condition are skipped).

        Args:
            x: training cells (the model's input format: an array, a sparse matrix or an
                AnnData); conditions, cell_types: one label
                per cell; control, stimulated: the two condition labels.
        """
        conditions, cell_types = np.asarray(conditions), np.asarray(cell_types)
        if not len(conditions) == len(cell_types) == row_count(x):
            raise ValueError(f"x, conditions and cell_types must have one row per cell, got "
                             f"{row_count(x)}, {len(conditions)} and {len(cell_types)}.")
        z = self.encode(x)
        differences = []
        for cell_type in np.unique(cell_types):
            in_type = cell_types == cell_type
            chosen = [in_type & (conditions == label) for label in (stimulated, control)]
            if all(c.any() for c in chosen):
                differences.append(z[chosen[0]].mean(axis=0) - z[chosen[1]].mean(axis=0))
        if not differences:
            found = ", ".join(map(str, np.unique(conditions)))
            raise ValueError(f"No cell type has cells of both conditions {control!r} and "
                             f"{stimulated!r} (found {found}).")
        return np.mean(differences, axis=0)

    def predict_perturbation(self, x_control, delta) -> np.ndarray:
        """The predicted stimulated expression of control cells: decode(encode(x) + delta)."""
        delta = np.asarray(delta, np.float32)
        if delta.shape != (self.latent_dim,):
            raise ValueError(f"delta must have shape ({self.latent_dim},), got {delta.shape}; "
                             "compute it with latent_delta().")
        return self.decode(self.encode(x_control) + delta)
