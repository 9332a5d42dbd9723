# %% [markdown]
# # Lab 5: Inferring target genes from landmark genes
#
# Measuring every gene is expensive. The LINCS L1000 project measures about 1,000 **landmark**
# genes and *infers* the other ~20,000 **target** genes from them. D-GEX (Chen et al. 2016)
# showed that an MLP beats linear regression at this; GGAN (Wang et al. 2018) trained the
# regressor as the generator of a conditional GAN, with an L1 term and a consistency term.
#
# We replay that story on a small single-cell data set: the most variable genes of the
# training cells are the landmarks, the remaining genes the targets. Before any model, we ask
# how to *judge* a prediction, because on single-cell data the most popular error measure, the
# mean absolute error (MAE), rewards a model that knows nothing. Then you build a regularized
# linear baseline, the D-GEX MLP, GGAN's generator loss, and the per-gene correlation that
# tells the models apart.

# %%
import os
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
from keras import ops
from sklearn.linear_model import RidgeCV

from course import datasets, evaluation, metrics, models, plots
from course.grading import check, check_all

SMOKE = os.environ.get("COURSE_SMOKE") == "1"
N_LANDMARKS = 100
N_TARGETS = 100 if SMOKE else None  # None: every gene that is not a landmark
EPOCHS = 3 if SMOKE else 200  # at most: the networks stop early on the validation cells
BATCH_SIZE = 64
keras.utils.set_random_seed(0)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", datasets.BundledDataWarning)
    adata = datasets.load_pbmc()
split = datasets.landmark_split(adata, n_landmarks=N_LANDMARKS, n_targets=N_TARGETS, seed=0)
cell_types, _ = datasets.labels(adata)
print(f"{split.n_landmarks} landmark genes -> {split.n_targets} target genes; "
      f"{len(split.x_train)} training, {len(split.x_val)} validation, {len(split.x_test)} test "
      "cells")

# %% [markdown]
# The models see every gene standardized with the mean and standard deviation of the training
# cells (`split.x_*`, `split.y_*`). We judge them on the expression scale itself,
# log1p(counts per 10,000): `split.target_expression` undoes the standardization. Look at the
# targets: most entries are exactly zero, cells where the gene was not detected at all.
# Single-cell data are **zero-inflated**.

# %%
y_train = split.target_expression(split.y_train)
y_test = split.target_expression(split.y_test)
figure = plt.figure(figsize=(5, 3))
plt.hist(y_test.ravel(), bins=100)
plt.xlabel("log1p expression of the target genes, test cells")
plt.ylabel("cells x genes")
median_is_zero = (np.median(y_train, axis=0) == 0).mean()
plt.title(f"{(y_test == 0).mean():.0%} of the entries are 0; "
          f"{median_is_zero:.0%} of the genes have median 0");

# %% [markdown]
# ## Why MAE rewards predicting zero
#
# A constant prediction c of one gene has the mean absolute error mean |y - c|, which is
# smallest at the **median** of y; the squared error mean (y - c)^2 is smallest at the **mean**.
# When a gene is undetected in more than half of the cells its median is 0: the best constant
# under MAE says "never expressed", in every cell. No model of the cells is needed for that.
#
# ## Exercise 5.1: The floors
# Write `per_gene_floor(y_train, n_cells, statistic)`: the per-gene `"mean"` or `"median"` of
# the training cells, repeated for `n_cells` cells (an array of shape `(n_cells, n_genes)`).

# %%
def per_gene_floor(y_train, n_cells, statistic):
    """Every one of n_cells cells gets the per-gene mean or median of the training cells."""
    ### BEGIN SOLUTION 5.1: One value per gene (column), computed over the cells (rows), then tiled to n_cells rows.
    summary = np.median if statistic == "median" else np.mean
    return np.tile(summary(y_train, axis=0), (n_cells, 1))
    ### END SOLUTION


check("5.1")
floors = {statistic: per_gene_floor(y_train, len(y_test), statistic)
          for statistic in ("mean", "median")}
for statistic, prediction in floors.items():
    print(f"per-gene {statistic:<6}: MAE {metrics.mae(y_test, prediction):.3f}, "
          f"RMSE {metrics.rmse(y_test, prediction):.3f}")

# %% [markdown]
# The median wins on MAE and the mean on RMSE, and neither knows anything about any cell. A
# model that gets a lower MAE may simply be closer to "always zero". We will judge the models
# by what a biologist needs: does the prediction go **up and down with the truth** across cells
# (per-gene correlation), and does it get the values right (RMSE)?
#
# ## Baseline 1: ridge regression
#
# D-GEX's linear baseline is least squares. With 100 landmarks and about 500 cells that
# overfits; ridge regression shrinks the weights by a penalty alpha * |w|^2, and `RidgeCV`
# chooses alpha by (efficient leave-one-out) cross-validation **on the cells it is given**.
#
# ## Exercise 5.2: A regularized baseline
# Write `fit_ridge(split)`: fit a `RidgeCV(alphas=evaluation.RIDGE_ALPHAS)` of the standardized
# targets on the standardized landmarks of the **training** cells only, and return it.

# %%
def fit_ridge(split):
    """RidgeCV of targets on landmarks, alpha chosen on the training cells, fitted."""
    ### BEGIN SOLUTION 5.2: Which cells may a model learn from? Inputs first, outputs second.
    return RidgeCV(alphas=evaluation.RIDGE_ALPHAS).fit(split.x_train, split.y_train)
    ### END SOLUTION


check("5.2")
ridge_model = fit_ridge(split)
print(f"alpha chosen by cross-validation: {ridge_model.alpha_:g}")
predictions = {"per-gene mean": floors["mean"], "per-gene median": floors["median"],
               "ridge": split.target_expression(ridge_model.predict(split.x_test))}

# %% [markdown]
# ## Baseline 2: the D-GEX MLP, trained with MSE or L1
#
# D-GEX used an MLP with tanh hidden layers trained by mean squared error. MSE is minimized by
# the conditional *mean*, L1 by the conditional *median*: trained with L1, the MLP learns the
# same lesson as the median floor and predicts "not detected" for most genes. The network has
# many more weights than there are training cells, so we stop training when the error on the
# **validation** cells stops falling and keep the best weights (`keras.callbacks.
# EarlyStopping(patience=10, restore_best_weights=True)`). The test cells stay untouched until
# the very end: choosing anything on them would make the test score optimistic.
#
# ## Exercise 5.3: The MLP, early-stopped on validation cells
# Write `train_mlp(split, loss, epochs)`: build `models.MLPRegressor(split.n_landmarks,
# split.n_targets, hidden_units=(256,))`, compile it with `keras.optimizers.Adam(1e-3)` and the
# given `loss`, fit it on the training cells for at most `epochs` epochs (batch size
# `BATCH_SIZE`, `verbose=0`) with the validation cells as `validation_data` and the early
# stopping callback above, and return the model.

# %%
def train_mlp(split, loss, epochs):
    """An MLP from landmarks to targets trained with ``loss``, early-stopped on validation."""
    ### BEGIN SOLUTION 5.3: fit on the training cells; validation_data and EarlyStopping watch the validation cells.
    mlp = models.MLPRegressor(split.n_landmarks, split.n_targets, hidden_units=(256,))
    mlp.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    stop = keras.callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    mlp.fit(split.x_train, split.y_train, validation_data=(split.x_val, split.y_val),
            epochs=epochs, batch_size=BATCH_SIZE, callbacks=[stop], verbose=0)
    return mlp
    ### END SOLUTION


check("5.3")
for loss, name in (("mse", "MLP, MSE"), ("mae", "MLP, L1")):
    mlp = train_mlp(split, loss, EPOCHS)
    predictions[name] = split.target_expression(mlp.predict(split.x_test, verbose=0))

# %% [markdown]
# ## GGAN: the regressor as a generator
#
# GGAN turns the regressor into the generator G of a conditional GAN. The discriminator D sees
# pairs (landmarks, targets) and learns to tell measured targets from predicted ones; G is
# trained on three terms:
#
# $$L_G = \underbrace{\mathrm{BCE}(1, D(x, \hat y))}_{\text{adversarial}}
#       + \lambda_1 \underbrace{\mathrm{mean}\,|\hat y - y|}_{\text{L1}}
#       + \lambda_2 \underbrace{\mathrm{mean}\,(\hat y - \hat y')^2}_{\text{consistency}}$$
#
# The adversarial term is lab 4's non-saturating loss: it asks for predictions that *look like*
# measured profiles, sharp rather than blurry averages. The L1 term keeps them close to the
# truth. $\hat y$ and $\hat y'$ are G's predictions for two noisy copies of the same landmarks:
# the consistency term asks G to give the same answer for both.
#
# ## Exercise 5.4: GGAN's generator loss
# Write `ggan_generator_loss`. All terms are means over the batch (and genes); return the
# weighted total.

# %%
def ggan_generator_loss(fake_logits, predicted, targets, other_predicted, l1_weight,
                        consistency_weight):
    """Adversarial + l1_weight * L1 to the truth + consistency_weight * consistency."""
    ### BEGIN SOLUTION 5.4: Lab 4's non-saturating loss of the fake logits, plus each weighted term as a mean over all entries.
    adversarial_loss = ops.mean(
        ops.binary_crossentropy(ops.ones_like(fake_logits), fake_logits, from_logits=True)
    )
    l1_loss = ops.mean(ops.abs(predicted - targets))
    consistency_loss = ops.mean(ops.square(predicted - other_predicted))
    return adversarial_loss + l1_weight * l1_loss + consistency_weight * consistency_loss
    ### END SOLUTION


check("5.4")

# %% [markdown]
# `course.models.LandmarkGAN` writes these terms out in its `train_step` (read it in
# `course/models/landmark.py`), with a choice of reconstruction term: `"l1"` as in GGAN, or
# `"mse"`, the course's default, because under the protocol below the L1 version learned the
# median's lesson too. It keeps GGAN's two jobs apart. Its prediction (`predict`) is ridge
# regression, solved in closed form when `fit` starts, plus a network that refines it with the
# reconstruction and consistency terms. `generate(landmarks, seed)` draws one profile per cell:
# the prediction plus a deviation that the generator makes from random noise, trained with the
# adversarial term and the energy score (below). We train both versions, early-stopped on the
# validation cells.

# %%
for reconstruction in ("l1", "mse"):
    landmark_gan = models.LandmarkGAN(split.n_landmarks, split.n_targets,
                                      reconstruction=reconstruction, seed=0)
    landmark_gan.compile()
    stop = keras.callbacks.EarlyStopping(monitor="val_reconstruction_loss", mode="min",
                                         patience=10, restore_best_weights=True)
    gan_history = landmark_gan.fit(split.x_train, split.y_train,
                                   validation_data=(split.x_val, split.y_val), epochs=EPOCHS,
                                   batch_size=BATCH_SIZE, callbacks=[stop], verbose=0)
    predictions[f"LandmarkGAN, {reconstruction}"] = split.target_expression(
        landmark_gan.predict(split.x_test, verbose=0))
plots.loss_curves(gan_history, title="LandmarkGAN (mse)");

# %% [markdown]
# ## A generator is judged on its draws
#
# A point prediction is one profile per cell, the mean of what cells with these landmarks
# look like; a conditional generator should give many, that differ as such cells do. The
# **energy score** judges draws $x_1, \dots, x_M$ of a cell against its true profile $y$:
# $\frac{1}{M}\sum_i \lVert x_i - y\rVert - \frac{1}{2M(M-1)}\sum_{i \ne j}
# \lVert x_i - x_j\rVert$ (lower is better). It is a *proper* scoring rule: only the true
# spread scores best, so a blurred mean loses and so does noise for its own sake. A point
# prediction scores its distance to the truth. The bar to clear is a simple sampler: ridge's
# prediction plus the residual of a random training cell.

# %%
draws = np.stack([split.target_expression(landmark_gan.generate(split.x_test, seed=seed))
                  for seed in range(20)], axis=1)
(ridge_draws,) = evaluation.ridge_residuals(split, seed=0, epochs=0).values()
ridge_draws = evaluation.log1p_draws(split, ridge_draws)
for name, scored in (("LandmarkGAN, prediction", predictions["LandmarkGAN, mse"]),
                     ("LandmarkGAN, 20 draws", draws), ("ridge + residuals, 20 draws",
                                                         ridge_draws)):
    print(f"{name:<30} energy score {metrics.energy_score(scored, y_test).mean():6.2f}")

# %% [markdown]
# ## Judging the predictions: per-gene correlation
#
# For each target gene, Pearson's r between its true and predicted expression over the test
# cells asks: does the prediction rise in the cells where the gene is high? A constant
# prediction (a floor) has no r at all: it is **undefined** (NaN), neither 0 nor 1, and so is
# the r of a gene that is zero in every test cell. We leave such genes out of the average and
# count them.
#
# ## Exercise 5.5: Per-gene Pearson correlation
# Write `per_gene_correlation(y_true, y_pred)`: one Pearson r per gene (column), over the cells
# (rows), as a numpy array; NaN where the true or the predicted column is constant.

# %%
def per_gene_correlation(y_true, y_pred):
    """Pearson's r of each column of y_true with the same column of y_pred (NaN if constant)."""
    ### BEGIN SOLUTION 5.5: Centre each column; r = sum(a * b) / sqrt(sum(a^2) * sum(b^2)) per column. A column is constant when its max equals its min (np.ptp), even if rounding leaves a tiny spread.
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    a = y_true - y_true.mean(axis=0)
    b = y_pred - y_pred.mean(axis=0)
    constant = (np.ptp(y_true, axis=0) == 0) | (np.ptp(y_pred, axis=0) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=0) / np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
    return np.where(constant, np.nan, r)
    ### END SOLUTION


check("5.5")
print(f"{'model':<18}{'mean r':>8}{'undefined':>10}{'RMSE':>7}{'MAE':>7}{'var ratio':>10}"
      f"{'zeros':>7}")
for name, prediction in predictions.items():
    r = per_gene_correlation(y_test, prediction)
    print(f"{name:<18}{np.nanmean(r) if (~np.isnan(r)).any() else np.nan:>8.3f}"
          f"{int(np.isnan(r).sum()):>10}{metrics.rmse(y_test, prediction):>7.3f}"
          f"{metrics.mae(y_test, prediction):>7.3f}"
          f"{np.nanmedian(metrics.variance_ratio(y_test, prediction)):>10.3f}"
          f"{metrics.zero_fraction(prediction):>7.2f}")
print(f"{'truth':<18}{'':>8}{'':>10}{'':>7}{'':>7}{1.0:>10.3f}{metrics.zero_fraction(y_test):>7.2f}")

# %% [markdown]
# Read the table column by column (one split of the cells; the protocol below averages five):
#
# - **MAE** ranks the per-gene median first, ahead of every model, and the L1-trained MLP next.
#   Both predict "not detected" for most genes (the `zeros` column, the share of predicted
#   entries below 0.5) and their correlations are the lowest or undefined: MAE rewards
#   predicting zero.
# - **Per-gene r and RMSE** reward getting expression right. Ridge regression, a regularized
#   linear map, is hard to beat; the MSE-trained LandmarkGAN comes close; the MSE MLP, with
#   more weights than there are training cells, trails them.
# - **Sharpness** (`var ratio`, predicted over true variance per gene, 1 for a realistic
#   spread): every point prediction is far blurrier than real cells, because 100 landmarks
#   explain little of each target.
#
# GGAN's argument was that the adversarial term buys sharp, realistic predictions where MSE
# gives blurry ones. Over five random splits of the 700 bundled cells (the README's table,
# from `python benchmarks/gan.py --part landmark`), that does not hold for a point prediction:
# every one is blurry. What a generator buys is draws. Its prediction has a per-gene r of
# 0.226 +- 0.008, 96% of kNN regression's 0.235 (ridge 0.224). Its draws (20 per cell) have
# an energy score of 20.72 +- 0.17 against 28.98 for its own prediction, so the noise matters
# (the earlier LandmarkGAN's draws, which ignored their noise, scored 27.07); a generator
# trained by the discriminator alone scores 25.68. But the two simple samplers still win,
# narrowly: ridge plus a resampled residual 20.51 +- 0.19, a random near neighbour's profile
# 20.67 +- 0.19. Resampling real cells gives the real spread (variance ratio 0.86 and 0.96,
# the GAN's draws 0.50) that 490 training cells do not teach a generator.
# `course run landmark-pbmc` runs that protocol (kNN regression, the two conditional samplers,
# dense vs sparse genes, energy score and CRPS, MMD, a real-vs-predicted classifier, cell-type
# accuracy).

# %%
figure = plt.figure(figsize=(5, 3))
for name in ("ridge", "MLP, MSE", "MLP, L1", "LandmarkGAN, mse"):
    r = per_gene_correlation(y_test, predictions[name])
    plt.hist(r[~np.isnan(r)], bins=40, histtype="step", label=name)
plt.xlabel("per-gene Pearson r, test cells")
plt.ylabel("genes")
plt.legend();

# %%
check_all(lab=5)
