"""The package answers no exercise of the lab being graded (issue 17, item 1).

For every exercise of labs 2-7 that one call into ``course`` (or a borrowed method with a few
aliases) could answer, ``LAZY`` holds the answer a hostile student would write. Before the
answer key each of them earned its points; now the grader's kernel imports a copy of the
package in which those objects refuse to run, so each gets 0 with a reason that names the
object, while the lab's solution keeps full marks (tests/test_labs.py) and self-study is as
before. Copying or naming the package's code is flagged in the report.

The grading runs are slow: all lazy answers of a lab are ONE submission, and the six labs are
graded in ONE run of the grader (two kernels at a time).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import jupytext
import pytest

from course.grading.answer_key import ANSWERS, COPY_SOURCES, Answer, answers, guard
from course.grading.answer_key import flags as answer_flags
from course.grading.answer_key.copies import guarded_source, package_copy

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = {int(path.name[:2]): path for path in (ROOT / "solutions").glob("0[2-7]_*.py")}

# Exercise -> the body of its solution block, written by calling or borrowing the package.
LAZY = {
    "2.1": """
        return models.VAE.reparameterize(
            types.SimpleNamespace(seed_generator=seed_generator), z_mean, z_log_var)
    """,
    "2.2": """
        return models.vae.kl_divergence(z_mean, z_log_var)
    """,
    "2.3": """
        self._encode = lambda x, training=False: self.encoder(x, training=training)
        self.reparameterize = lambda mean, log_var: sample_z(mean, log_var)
        self.log_likelihood = lambda x, z, training=False: -self.reconstruction_loss(
            x, self.decoder(z, training=training))
        with tf.GradientTape() as tape:
            reconstruction_loss, kl_loss = models.VAE.loss_terms(self, images, training=True)
            loss = ops.mean(reconstruction_loss + kl_loss)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
    """,
    "3.1": """
        return likelihoods.negative_binomial(x, mu, theta)
    """,
    "4.1": """
        return models.gan.discriminator_loss(real_logits, fake_logits)
    """,
    "4.2": """
        return models.gan.non_saturating_generator_loss(fake_logits)
    """,
    "4.3": """
        return models.gan.saturating_generator_loss(fake_logits)
    """,
    "4.4": """
        self._unpack = lambda data: (data, None)
        self._generate = lambda z, condition, training=False: self.generator(
            z, training=training)
        self._discriminate = lambda x, condition, training=False: self.discriminator(
            x, training=training)
        self.random_latent_vectors = lambda n, seed=None: keras.random.normal(
            (n, self.latent_dim), seed=self.seed_generator)
        self.label_smoothing = 0.0
        self.generator_loss = "non_saturating"
        self._update_trackers = lambda **values: self.update_trackers(**values)
        return models.GAN.train_step(self, real_images)
    """,
    "5.1": """
        import types
        split = types.SimpleNamespace(y_train=y_train,
                                      y_test=np.zeros((n_cells, y_train.shape[1])))
        floor = evaluation.per_gene_median if statistic == "median" else evaluation.per_gene_mean
        return np.array(next(iter(floor(split, 0, 0).values())))
    """,
    "5.3": """
        mlp = models.MLPRegressor(split.n_landmarks, split.n_targets, hidden_units=(256,))
        mlp.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
        evaluation.fit_on_split(mlp, split, epochs, seed=0)
        return mlp
    """,
    "5.4": """
        from course.models import landmark
        return (models.gan.non_saturating_generator_loss(fake_logits)
                + l1_weight * landmark.reconstruction_error(predicted, targets, "l1")
                + consistency_weight * landmark.reconstruction_error(
                    predicted, other_predicted, "mse"))
    """,
    "5.5": """
        return metrics.per_gene_pearson(y_true, y_pred)
    """,
    "6.1": """
        return distribute.scale_loss(ops.mean(per_example_losses))
    """,
    "6.3": """
        return distribute.normal(shape, seed_generator)
    """,
    "7.2": """
        from course.models import dgd
        return dgd.mixture_log_density(z, means, log_variances, weight_logits)
    """,
    "7.3": """
        import types
        from course import models
        def trackers(loss, reconstruction_loss, prior_loss):
            self.loss_tracker.update_state(loss)
            self.reconstruction_loss_tracker.update_state(ops.mean(reconstruction_loss))
            self.prior_loss_tracker.update_state(ops.mean(prior_loss))
            return {metric.name: metric.result() for metric in self.metrics}
        borrowed = types.SimpleNamespace(
            validate_batch=lambda counts, cell_indices: (counts, cell_indices),
            representations=self.representations.table,
            log_likelihood=lambda counts, z, training=False: -self.reconstruction_loss(counts, z),
            log_prior=lambda z: -self.prior_loss(z), network_weights=self.network_weights,
            optimizer=self.optimizer, representation_optimizer=self.representation_optimizer,
            _update_trackers=trackers)
        return models.DGD.train_step(borrowed, (counts, cell_indices))
    """,
    "7.4": """
        from course import models
        model.validated_counts = lambda counts: np.asarray(counts, "float32")
        model._best_component_means = lambda counts: np.asarray(initial_z, "float32")
        model.log_likelihood = lambda counts, z: -model.reconstruction_loss(counts, z)
        model.log_prior = lambda z: -model.prior_loss(z)
        return models.DGD.infer(model, counts, steps, learning_rate)
    """,
}
# Exercises that no call into the package answers (checked by hand, see the report).
NOT_ANSWERED_BY_THE_PACKAGE = {"2.4", "3.2", "3.3", "4.5", "5.2", "6.2", "6.4", "7.1"}
_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)### BEGIN SOLUTION (?P<id>[\d.]+)[^\n]*\n"
    r".*?^[ \t]*### END SOLUTION[^\n]*\n",
    re.M | re.S,
)


def lazy_submission(lab: int) -> str:
    """The lab's solution with every exercise of ``LAZY`` answered by the package instead."""

    def replace(match: re.Match) -> str:
        body = LAZY.get(match["id"])
        if body is None:
            return match[0]
        return textwrap.indent(textwrap.dedent(body).strip() + "\n", match["indent"])

    text = _BLOCK.sub(replace, SOLUTIONS[lab].read_text())
    imports = "import types\n\nfrom course import distribute, evaluation, likelihoods, metrics\n"
    imports += "from course import models\n"
    return text.replace("import os\n", f"import os\n{imports}", 1)


# --- the answer key itself (fast) -------------------------------------------------------------


def test_every_listed_object_and_caller_is_a_function_of_the_package():
    for lab in ANSWERS:
        for entry in answers(lab):
            for target in (entry.target, *entry.callers):
                assert guard._code(target).co_name == target.split(".")[-1].split(":")[-1]
    for entry in [*sum(COPY_SOURCES.values(), ())]:
        assert guard._code(entry.target)


def test_the_guarded_source_keeps_every_other_line_where_it_was():
    source = textwrap.dedent('''
        def answer(x):
            """Doc."""
            y = x + 1
            return y

        def other(x):
            return x
    ''')
    entries = {"answer": [ANSWERS[2][1]]}
    guarded = guarded_source(source, entries, 2)
    assert guarded.splitlines()[6:] == source.splitlines()[6:]
    lines = guarded.splitlines()
    assert lines[2].startswith('    """Doc."""; __import__("course.grading.answer_key.guard"')
    assert lines[3:5] == ["", ""] and len(lines) == len(source.splitlines())


def test_a_name_the_module_lacks_is_a_clear_error():
    with pytest.raises(ValueError, match="not a function of that module"):
        guarded_source("def other():\n    pass\n", {"missing": [ANSWERS[2][0]]}, 2)


def test_an_object_that_runs_on_import_cannot_be_stubbed():
    source = "def mlp(loss):\n    return loss\n\n\nPREDICTORS = {'mlp': mlp('mse')}\n"
    entry = Answer("course.evaluation:mlp", "5.3")
    with pytest.raises(ValueError, match="runs when its module is imported"):
        guarded_source(source, {"mlp": [entry]}, 5)


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[int, Path]:
    cache = tmp_path_factory.mktemp("answer-key")
    return {lab: package_copy(lab, cache) for lab in ANSWERS}


@pytest.mark.slow
def test_the_copies_are_world_readable_in_a_private_cache(copies):
    for copy in copies.values():
        assert oct(copy.parents[1].stat().st_mode & 0o777) == "0o700"
        assert all(path.stat().st_mode & 0o004 for path in copy.rglob("*"))
        assert (copy / "grading" / "answer_key" / "guard.py").is_file()
    again = package_copy(4, next(iter(copies.values())).parents[1])
    assert again == copies[4]


def _run_in_copy(copy: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(copy.parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=copy.parent,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_stub_says_why_and_a_guard_lets_the_labs_model_train(copies):
    result = _run_in_copy(copies[6], """
        import numpy as np, course, keras
        from course import distribute, models
        assert course.__file__.startswith(COPY), course.__file__
        for call in (lambda: distribute.scale_loss(keras.ops.ones(())),
                     lambda: distribute.normal((3,), keras.random.SeedGenerator(0))):
            try:
                call()
            except NotImplementedError as error:
                print("REFUSED", error)
        gan = models.GAN(data_shape=(4,), latent_dim=2, hidden_units=(8,))
        gan.compile()
        history = gan.fit(np.random.rand(16, 4).astype("float32"), batch_size=8, epochs=1,
                          verbose=0)
        print("TRAINED", np.isfinite(history.history["d_loss"][-1]), gan.generate(2).shape)
    """.replace("COPY", repr(str(copies[6]))))
    assert result.returncode == 0, result.stderr[-2000:]
    refused = [line for line in result.stdout.splitlines() if line.startswith("REFUSED")]
    assert len(refused) == 2
    assert "course.distribute.scale_loss is not available while lab 6 is graded" in refused[0]
    assert "exercise 6.1" in refused[0] and "write it yourself" in refused[0]
    assert "TRAINED True (2, 4)" in result.stdout


# --- flags (fast) ----------------------------------------------------------------------------


def _notebook(text: str):
    return jupytext.reads(text, fmt="py:percent")


@pytest.mark.parametrize("lab", sorted(SOLUTIONS))
def test_no_solution_is_flagged(lab):
    assert answer_flags.flags(_notebook(SOLUTIONS[lab].read_text()), lab) == []


def test_a_renamed_copy_of_the_package_is_flagged_and_a_call_is_named():
    copied = textwrap.dedent('''
        # %%
        from course import metrics
        import numpy as np

        def per_gene_correlation(truth, guess):
            def centred(values):
                spread = values - values.mean(axis=0)
                size = np.sqrt((spread**2).sum(axis=0))
                flat = size <= 1e-6 * np.sqrt((values**2).sum(axis=0))
                return spread, np.where(flat, np.nan, size)

            (truth, truth_size), (guess, guess_size) = centred(truth), centred(guess)
            r = (truth * guess).sum(axis=0) / (truth_size * guess_size)
            return np.clip(r, -1.0, 1.0)

        check("5.5")

        # %%
        def per_gene_floor(y_train, n_cells, statistic):
            return metrics.per_gene_pearson(y_train, y_train)

        check("5.1")
    ''')
    found = answer_flags.flags(_notebook(copied), 5)
    assert any(flag.startswith("5.5: ") and "course.metrics._columnwise_pearson's code" in flag
               for flag in found), found
    assert any(flag.startswith("5.1: names course.metrics.per_gene_pearson") for flag in found)


# --- grading the lazy answers (slow: one run of the grader) -----------------------------------


@pytest.fixture(scope="module")
def lazy_reports(tmp_path_factory) -> dict[int, dict]:
    from course.grading.runner import grade

    folder = tmp_path_factory.mktemp("lazy")
    paths = []
    for lab in sorted(SOLUTIONS):
        path = folder / f"lazy_{lab:02d}.py"
        path.write_text(lazy_submission(lab))
        paths.append(path)
    reports = grade(paths, tmp_path_factory.mktemp("reports"), jobs=2, calibrate=False,
                    smoke=True, progress=False, cell_timeout=300, total_timeout=900,
                    check_timeout=120)
    return {report["lab"]: report for report in reports}


@pytest.mark.slow
@pytest.mark.parametrize("lab", sorted(SOLUTIONS))
def test_an_exercise_answered_by_the_package_gets_no_points_and_says_why(lazy_reports, lab):
    report = lazy_reports[lab]
    for entry in report["exercises"]:
        if entry["id"] not in LAZY:
            continue
        assert entry["points"] == 0, (entry["id"], entry["message"])
        assert re.search(rf"course\.\S+ is not available while lab {lab} is graded",
                         entry["message"]), (entry["id"], entry["message"])
    flagged = {flag.split(":")[0] for flag in report["flags"]}
    assert {key for key in LAZY if key.startswith(f"{lab}.")} <= flagged, report["flags"]


# --- what the probes bring into the kernel (fast) ---------------------------------------------


def test_after_a_probe_that_stands_in_for_an_exercise_that_exercise_is_judged_no_more(monkeypatch):
    """The probes of 7.3 and 7.4 put a working representation table and mixture density into
    the notebook (so that a mistake in 7.1 or 7.2 costs nothing twice). A notebook could keep
    them and answer 7.1 and 7.2 with them when those are judged again after the last cell, or
    when their check cells come after 7.3's: once such a probe has started, 7.1 and 7.2 keep
    the verdict they had, and get a fail that says why if they had none."""
    import nbformat

    from course.grading import execution
    from course.grading.limits import Limits
    from course.grading.plan import make_plan
    from course.grading.registry import CheckResult, get_exercise

    assert get_exercise("7.3").stands_in_for == ("7.1", "7.2")
    assert get_exercise("7.4").stands_in_for == ("7.1", "7.2")
    plan = make_plan(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), [])
    outcome = execution.Outcome()
    monkeypatch.setattr(execution, "save_arrays", lambda *args: None)
    monkeypatch.setattr(execution.os, "chmod", lambda *args: None)
    monkeypatch.setattr(execution, "_run_timed", lambda *args: None)  # the kernel is lost
    session = types.SimpleNamespace(scratch=types.SimpleNamespace(
        inputs=Path("/nonexistent"), work=Path("/nonexistent")))
    limits = Limits(cell=10, total=100, check=10)
    outcome.results["7.1"] = CheckResult("7.1", "", 0, 2, False, "the student's own hint")
    assert not execution._probe(session, get_exercise("7.3"), 1e12, limits, outcome, plan)
    assert outcome.stood_in == {"7.1": "7.3", "7.2": "7.3"}
    for exercise in ("7.1", "7.2"):  # no kernel is needed: nothing runs
        assert execution._probe(None, get_exercise(exercise), 1e12, limits, outcome, plan)
    assert outcome.results["7.1"].message == "the student's own hint"  # it stands
    second = outcome.results["7.2"]
    assert (second.passed, second.points) == (False, 0)
    assert "judged after exercise 7.3, whose check gives the kernel a working 7.2" in (
        second.message)
