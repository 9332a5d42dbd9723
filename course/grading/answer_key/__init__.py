"""The answer key: which objects of ``course`` answer which exercise, lab by lab.

The package is the students' textbook, and some of its objects compute an exercise's answer
(the KL term, the negative binomial likelihood, the GAN's training step, the evaluation
protocol). While lab N is graded, the kernel imports a copy of the package in which the
objects listed for lab N refuse to run (``copies``): a cell that calls or borrows one gets 0
for that exercise and a reason that says why (``guard``). A submission whose exercise code
copies or names one of them is flagged in its report for the instructor (``flags``).

Each entry is an :class:`Answer`:

- ``callers`` empty: a **stub**. The object's body is replaced; every call raises
  ``AnswerUnavailable`` (e.g. ``GAN.train_step`` while lab 4 is graded).
- ``callers`` given: a **guard**. The object still works when its direct caller is one of the
  listed package functions on an instance of a package class (so that the lab's own model can
  train), and raises for anything else: a cell, a borrowed method, a function of the student's.
  E.g. ``distribute.scale_loss`` while lab 6 is graded runs for ``GAN.train_step`` only.

A probe that needs such an object brings its own copy (lab 7's probes get the grader's
mixture density as source with their inputs). Self-study (``check("2.1")`` in a student's own
notebook) never sees any of this.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """An object of ``course`` that answers an exercise.

    Attributes:
        target: ``"module:qualname"``, e.g. ``"course.models.gan:GAN.train_step"``.
        exercise: the exercise it answers, e.g. ``"4.4"``.
        callers: ``"module:qualname"`` of the package functions that may still call it.
    """

    target: str
    exercise: str
    callers: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return self.target.split(":")[0]

    @property
    def qualname(self) -> str:
        return self.target.split(":")[1]

    @property
    def dotted(self) -> str:
        """``course.models.gan.GAN.train_step``: how the reason names it."""
        return self.target.replace(":", ".")


_VAE = "course.models.vae:VAE"
_GAN = "course.models.gan:GAN"
_LANDMARK = "course.models.landmark:LandmarkGAN"
_LANDMARK_STEPS = (f"{_LANDMARK}.train_step", f"{_LANDMARK}.test_step")
_ADVERSARIAL = "course.models.adversarial:AdversarialModel"

ANSWERS: dict[int, tuple[Answer, ...]] = {
    2: (
        Answer(f"{_VAE}.reparameterize", "2.1"),  # z = mu + exp(log_var / 2) * epsilon
        Answer("course.models.vae:kl_divergence", "2.2"),  # the closed-form KL, per example
        Answer(f"{_VAE}.loss_terms", "2.3"),  # encode, sample, decode, both loss terms
        Answer(f"{_VAE}.train_step", "2.3"),  # the ELBO step (borrowed with a few aliases)
    ),
    3: (
        # The NB log-likelihood, element by element; the lab's count VAE still trains on it.
        Answer("course.likelihoods:negative_binomial", "3.1", (f"{_VAE}._count_log_likelihood",)),
        Answer("course.likelihoods:_negative_binomial", "3.1",  # its log_prob is the answer
               ("course.likelihoods:negative_binomial",
                "course.likelihoods:zero_inflated_negative_binomial")),
        Answer("course.likelihoods:zero_inflated_negative_binomial", "3.1",  # dropout -> 0
               (f"{_VAE}._count_log_likelihood",)),
        Answer(f"{_VAE}._count_log_likelihood", "3.1", (f"{_VAE}._log_prob",)),  # with a fake self
    ),
    4: (
        Answer("course.models.gan:discriminator_loss", "4.1"),  # real and fake halves
        Answer("course.models.gan:non_saturating_generator_loss", "4.2"),
        Answer("course.models.gan:saturating_generator_loss", "4.3"),
        Answer(f"{_GAN}.train_step", "4.4"),  # the two-player step (borrowed with aliases)
    ),
    5: (
        Answer("course.evaluation:per_gene_mean", "5.1"),  # the floors, tiled over the cells
        Answer("course.evaluation:per_gene_median", "5.1"),
        Answer("course.evaluation:ridge", "5.2"),  # RidgeCV on the training cells
        # Early stopping on validation (evaluation.mlp's predictors call it: they refuse too).
        Answer("course.evaluation:fit_on_split", "5.3"),
        # GGAN's generator loss from its parts; the lab's LandmarkGAN still trains on them.
        Answer("course.models.gan:non_saturating_generator_loss", "5.4", _LANDMARK_STEPS),
        Answer("course.models.landmark:reconstruction_error", "5.4", _LANDMARK_STEPS),
        Answer(f"{_LANDMARK}._weighted_total", "5.4", _LANDMARK_STEPS),
        Answer("course.metrics:per_gene_pearson", "5.5"),  # r per gene, NaN for constants
        Answer("course.metrics:_columnwise_pearson", "5.5",
               ("course.metrics:per_gene_spearman", "course.metrics:per_cell_pearson")),
    ),
    6: (
        # Loss / replicas: the lab's models.GAN (exercise 6.4) still trains on it.
        Answer("course.distribute:scale_loss", "6.1", (f"{_GAN}.train_step",)),
        # Noise folded with the replica id; GAN.train_step still draws its latent vectors.
        Answer("course.distribute:normal", "6.3", (f"{_ADVERSARIAL}.random_latent_vectors",)),
        Answer(f"{_ADVERSARIAL}.random_latent_vectors", "6.3",
               (f"{_GAN}.train_step", f"{_GAN}.test_step", f"{_ADVERSARIAL}.generate")),
    ),
    7: (
        Answer("course.models.dgd:mixture_log_density", "7.2"),  # probes bring their own
        Answer("course.models.dgd:DGD.log_prior", "7.2"),  # the mixture prior of a fake self
        Answer("course.models.dgd:DGD.train_step", "7.3"),  # the MAP step
        Answer("course.models.dgd:DGD.infer", "7.4"),  # Adam on new representations only
    ),
}

# Objects whose source a student might copy into an exercise without the object answering it
# in one call (they draw a picture, or need more around them): compared by the flags only.
COPY_SOURCES: dict[int, tuple[Answer, ...]] = {
    2: (Answer("course.plots:manifold_grid", "2.4"),),
    4: (Answer("course.plots:class_grid", "4.5"),),
}


def answers(lab: int | None) -> tuple[Answer, ...]:
    """The objects that refuse to run while ``lab`` is graded (none for an unknown lab)."""
    return ANSWERS.get(lab, ()) if lab is not None else ()
