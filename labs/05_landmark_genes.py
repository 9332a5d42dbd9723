# This lab is generated from solutions/05_landmark_genes.py by `course labs build`.
# Instructors: edit the solution and rebuild; never edit this file by hand.
# %% [markdown]
# # Lab 5: Inferring target genes from landmark genes
#
# Measuring every gene is expensive. The LINCS L1000 project measures about 1,000 **landmark**
# genes and *infers* the other ~20,000 **target** genes from them. D-GEX (Chen et al. 2016)
# showed that an MLP beats linear regression at this; GGAN (Wang et al. 2018) trained the
# regressor as the generator of a conditional GAN, with an L1 term and a consistency term.
#
# We replay that story on a small single-cell data set: the most variable genes of 700 blood
# cells are the landmarks, the remaining genes the targets. You will build the baselines, write
# GGAN's generator loss and the concordance correlation it is judged by, and put the three
# models side by side.

# %%
import os
import warnings

import keras
import matplotlib.pyplot as plt
import numpy as np
from keras import ops
from sklearn.linear_model import LinearRegression

from course import datasets, metrics, models, plots
from course.grading import check, check_all

SMOKE = os.environ.get("COURSE_SMOKE") == "1"
N_LANDMARKS = 100
N_TARGETS = 100 if SMOKE else None  # None: every gene that is not a landmark
EPOCHS = 3 if SMOKE else 100
BATCH_SIZE = 32
keras.utils.set_random_seed(0)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", datasets.BundledDataWarning)
    adata = datasets.load_pbmc()
split = datasets.landmark_split(adata, n_landmarks=N_LANDMARKS, n_targets=N_TARGETS, seed=0)
print(f"{split.n_landmarks} landmark genes -> {split.n_targets} target genes; "
      f"{len(split.x_train)} training, {len(split.x_val)} validation, {len(split.x_test)} test "
      "cells")

# %% [markdown]
# Every gene is standardized with the mean and standard deviation of the training cells. Look
# at the targets: most values sit on a spike at each gene's minimum. Those are the cells where
# the gene was not detected at all. Single-cell data are **zero-inflated**, and that will
# matter for the choice of loss.

# %%
figure = plt.figure(figsize=(5, 3))
plt.hist(split.y_train.ravel(), bins=100)
plt.xlabel("standardized expression of the target genes")
plt.ylabel("cells x genes")
share_at_minimum = (split.y_train == split.y_train.min(axis=0)).mean()
plt.title(f"{share_at_minimum:.0%} of the values are the gene's minimum (not detected)");

# %% [markdown]
# ## Baseline 1: linear regression
#
# The simplest answer is a least-squares linear map from landmarks to targets, one regression
# per target gene. D-GEX's linear baseline is exactly this.
#
# ### Exercise 5.1
# Write `fit_linear_baseline(landmarks, targets)`: fit a
# `sklearn.linear_model.LinearRegression` of the targets on the landmarks and return it.

# %%
def fit_linear_baseline(landmarks, targets):
    """A LinearRegression of target expression on landmark expression, fitted."""
    raise NotImplementedError("Exercise 5.1: Return LinearRegression().fit(landmarks, targets) (inputs first, outputs second).")


check("5.1")
linear_model = fit_linear_baseline(split.x_train, split.y_train)
linear_predictions = linear_model.predict(split.x_test)
print(f"Linear regression, test MAE: {metrics.mae(split.y_test, linear_predictions):.3f}")

# %% [markdown]
# ## Baseline 2: the D-GEX MLP, trained with L1 or L2
#
# D-GEX used an MLP with tanh hidden layers trained by mean squared error (MSE, L2). MSE is
# minimized by the conditional *mean*. On zero-inflated data the mean sits between the spike
# of zeros and the expressed cells, and predicts neither well. The mean absolute error (MAE,
# L1) is minimized by the conditional *median*, which is the spike itself for most cells. Since
# we judge predictions by their MAE, the L1 loss should win.
#
# ### Exercise 5.2
# Write `train_mlp(split, loss)`: build a `models.MLPRegressor(split.n_landmarks,
# split.n_targets, hidden_units=(256,))`, compile it with `keras.optimizers.Adam(1e-3)` and the
# given `loss`, fit it on the **training** cells for `EPOCHS` epochs with batch size
# `BATCH_SIZE` (validate on the validation cells, `verbose=0`), and return the model.

# %%
def train_mlp(split, loss):
    """An MLP from landmarks to targets, trained with ``loss`` ("mse" or "mae")."""
    raise NotImplementedError("Exercise 5.2: Build MLPRegressor(...), compile(Adam(1e-3), loss=loss), fit on split.x_train/y_train with validation_data, return it.")


check("5.2")
mlp_l2 = train_mlp(split, "mse")
mlp_l1 = train_mlp(split, "mae")
mlp_l2_predictions = mlp_l2.predict(split.x_test, verbose=0)
mlp_l1_predictions = mlp_l1.predict(split.x_test, verbose=0)
for name, predictions in [("MLP, L2", mlp_l2_predictions), ("MLP, L1", mlp_l1_predictions)]:
    print(f"{name} loss, test MAE: {metrics.mae(split.y_test, predictions):.3f}")

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
# The adversarial term is lab 4's non-saturating loss: it pushes the predictions to look like
# real expression profiles rather than blurry averages. The L1 term keeps them close to the
# truth. $\hat y$ and $\hat y'$ are G's predictions for two noisy copies of the same landmarks
# (different random noise each): the consistency term asks G to give the same answer for both,
# so that small measurement noise does not change the prediction.
#
# ### Exercise 5.3
# Write `ggan_generator_loss`. All terms are means over the batch (and genes); return the
# weighted total.

# %%
def ggan_generator_loss(fake_logits, predicted, targets, other_predicted, l1_weight,
                        consistency_weight):
    """Adversarial + l1_weight * L1 to the truth + consistency_weight * consistency."""
    raise NotImplementedError("Exercise 5.3: Non-saturating BCE(1, fake_logits) + l1_weight * mean|predicted - targets| + consistency_weight * mean (predicted - other_predicted)^2.")


check("5.3")

# %% [markdown]
# `course.models.LandmarkGAN` uses exactly this loss in its `train_step` (read it in
# `course/models/landmark.py`). Train it with $\lambda_1 = 10$ and $\lambda_2 = 1$: the L1 term
# dominates, the adversarial term sharpens.

# %%
landmark_gan = models.LandmarkGAN(split.n_landmarks, split.n_targets, hidden_units=(256,),
                                  l1_weight=10.0, consistency_weight=1.0)
landmark_gan.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                     g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
gan_history = landmark_gan.fit((split.x_train, split.y_train), epochs=EPOCHS,
                               batch_size=BATCH_SIZE, verbose=0)
gan_predictions = landmark_gan.predict(split.x_test, verbose=0)
plots.loss_curves(gan_history, title="LandmarkGAN");

# %% [markdown]
# ## Judging the predictions: MAE and concordance correlation
#
# GGAN reports two numbers: the MAE and Lin's **concordance correlation coefficient** (CCC),
#
# $$\mathrm{CCC} = \frac{2\,\mathrm{cov}(y, \hat y)}
#                      {\mathrm{var}(y) + \mathrm{var}(\hat y) + (\bar y - \bar{\hat y})^2}.$$
#
# Pearson's correlation is 1 for any prediction on a straight line with the truth, even one
# that is shifted or scaled. The CCC is 1 only on the identity line: the variances in the
# denominator penalize a wrong scale and the squared mean difference a shift.
#
# ### Exercise 5.4
# Write `concordance_correlation(y_true, y_pred)` over all entries (flatten both arrays). Use
# population statistics (`np.mean`, `np.var`, the mean of the centred products for the
# covariance).

# %%
def concordance_correlation(y_true, y_pred):
    """Lin's concordance correlation coefficient of two arrays, over all their entries."""
    raise NotImplementedError("Exercise 5.4: 2 * covariance / (var_true + var_pred + (mean_true - mean_pred)**2), over the flattened arrays.")


check("5.4")
print(f"yours: {concordance_correlation(split.y_test, linear_predictions):.4f}, "
      f"course.metrics: {metrics.concordance_correlation(split.y_test, linear_predictions):.4f}")

# %% [markdown]
# ### Exercise 5.5
# Put the four models side by side. Write `score(predictions)`, returning a dict with the
# test-set `"MAE"` (use `metrics.mae`) and `"CCC"` (your function) of one model's predictions
# against `split.y_test`.

# %%
def score(predictions):
    """{"MAE": ..., "CCC": ...} of predictions for the test cells."""
    raise NotImplementedError("Exercise 5.5: Return {\"MAE\": metrics.mae(split.y_test, predictions), \"CCC\": concordance_correlation(split.y_test, predictions)}.")


check("5.5")
all_predictions = {
    "linear regression": linear_predictions,
    "MLP, L2 loss": mlp_l2_predictions,
    "MLP, L1 loss": mlp_l1_predictions,
    "LandmarkGAN": gan_predictions,
}
print(f"{'model':<20}{'MAE':>8}{'CCC':>8}")
for name, predictions in all_predictions.items():
    scores = score(predictions)
    print(f"{name:<20}{scores['MAE']:>8.3f}{scores['CCC']:>8.3f}")

# %% [markdown]
# Lower MAE and higher CCC are better. The L1-trained MLP wins the MAE by far: for most cells
# it predicts the spike of non-detection, which is exactly the median. But its CCC drops,
# because the median ignores the spread of the expressed cells. The L2-trained models keep
# more of the spread but miss the spike. The GAN sits in between: its adversarial term asks
# for predictions that *look like* real profiles, which buys back CCC at some cost in MAE.
# Which is better depends on what the predictions are for. A picture shows what the numbers
# hide: the spike of non-detected values on the left, and how the predictions spread.

# %%
plots.predicted_vs_true(split.y_test, gan_predictions, title="LandmarkGAN");

# %%
per_gene = {name: metrics.mae(split.y_test, predictions, per_gene=True)
            for name, predictions in all_predictions.items()}
plots.per_gene_error_histogram(per_gene.pop("LandmarkGAN"), baselines=per_gene,
                               label="LandmarkGAN");

# %%
check_all(lab=5)
