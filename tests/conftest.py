"""Test-session set-up: quiet TensorFlow, two logical CPU devices (configured before TensorFlow
initializes), one MirroredStrategy shared by every distributed test, a fixed seed for each test,
and the `slow` mark on the tests listed below (`pytest -m "not slow"` is the fast subset)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")

import course  # noqa: E402  (sets TF_CPP_MIN_LOG_LEVEL before TensorFlow starts)

course.import_tensorflow_quietly()

import keras  # noqa: E402
import pytest  # noqa: E402

from course import distribute  # noqa: E402

N_CPU_REPLICAS = 2
distribute.configure_cpu_replicas(N_CPU_REPLICAS)

# Tests not marked @pytest.mark.slow in their own file that take 2 s of CPU time or more each
# (measured per test, all parameters, on a 2-core machine; wall-clock times there were up to 10x
# longer because the machine was shared), so that `pytest -m "not slow"` stays under 3 minutes.
# The full suite (CI) runs them all. Re-measure with `pytest -m "not slow" --durations=30`.
SLOW_FILES = {
    "test_multiworker.py",  # two worker processes train over loopback
}
SLOW_TESTS = {
    # Each runs every lab notebook in a Jupyter kernel.
    "test_labs.py::test_each_solution_runs_in_smoke_mode_and_gets_full_marks",
    "test_labs.py::test_each_student_lab_scores_zero_with_not_implemented_feedback",
    "test_checks_lab07.py::test_the_solution_passes_for_every_seed",
    "test_datasets.py::test_a_damaged_mnist_cache_is_named_and_the_bundled_digits_are_used",
    "test_datasets.py::test_auto_mnist_without_network_falls_back_with_exactly_one_warning",
    "test_datasets.py::test_bundled_mnist_has_the_documented_shapes_range_and_labels",
    "test_datasets.py::test_bundled_mnist_split_is_deterministic_and_disjoint",
    "test_datasets.py::test_datasets_info_prints_a_table_of_sources",
    "test_dca.py::test_save_and_load_keep_the_statistics_and_the_denoising",
    "test_dca.py::test_the_mean_scales_with_the_size_factor",
    "test_dca.py::test_training_lowers_the_loss_and_records_the_median_library",
    "test_dca.py::test_two_replicas_make_the_single_device_update",
    "test_dgd.py::test_a_step_updates_only_the_representations_of_the_batch",
    "test_dgd.py::test_output_shapes",
    "test_dgd.py::test_save_and_load_keep_weights_config_and_both_optimizers",
    "test_dgd.py::test_two_replicas_update_and_log_what_one_device_does",
    "test_distribute.py::test_fit_on_a_dataset_does_not_warn_about_shuffle",
    "test_distributed_training.py::test_a_model_trained_under_a_strategy_saves_and_reloads_outside_it",
    "test_distributed_training.py::test_mixed_precision_trains_with_loss_scaling_and_float32_losses",
    "test_distributed_training.py::test_the_comparison_fails_when_the_loss_is_not_scaled_by_replicas",
    "test_distributed_training.py::test_update_and_logged_losses_equal_the_single_device_ones",
    "test_dnagan.py::test_distributed_step_equals_the_single_device_step",
    "test_dnagan.py::test_save_and_load_keeps_config_and_outputs",
    "test_evaluation.py::test_the_protocol_is_reproducible_and_reports_every_predictor_and_split",
    "test_gan.py::test_conditional_gan_trains_under_mirrored_strategy",
    "test_gan.py::test_gan_trains_in_mixed_precision",
    "test_gan.py::test_save_and_load_keeps_config_optimizer_state_and_outputs",
    "test_gan_metrics.py::test_digit_classifier_recognises_held_out_real_digits",
    "test_jupyter.py::test_jupyter_opens_a_py_lab_as_a_notebook",
    "test_landmark.py::test_landmark_gan_trains_under_mirrored_strategy",
    "test_landmark.py::test_mlp_baseline_fits_with_mse_and_round_trips",
    "test_landmark.py::test_training_logs_every_term_and_lowers_the_error",
    "test_ldvae.py::test_save_and_load_keep_the_linear_decoder",
    "test_ldvae.py::test_two_replicas_make_the_single_device_update",
    "test_plots.py::test_umap_comparison_puts_the_embeddings_side_by_side_with_their_titles",
    "test_saving.py::test_a_saved_model_loads_with_the_same_weights",
    "test_scgan.py::test_distributed_step_equals_the_single_device_step",
    "test_scgan.py::test_save_and_load_keeps_config_optimizer_state_and_outputs",
    "test_scgan.py::test_scgan_trains_in_mixed_precision_with_float32_losses",
    "test_scgen.py::test_delta_is_the_mean_over_types_of_the_stimulated_minus_control_latent_means",
    "test_vae.py::test_conditional_generation_uses_its_label",
    "test_vae.py::test_count_models_train_on_raw_counts",
    "test_vae.py::test_gradients_reach_the_encoder_through_the_sampler",
    "test_vae.py::test_loss_falls_on_a_small_batch",
    "test_vae.py::test_models_train_on_two_replicas",
    "test_vae.py::test_models_train_under_mixed_precision",
    "test_vae.py::test_same_seed_gives_the_same_model",
    "test_vae.py::test_save_and_load_keep_encodings_beta_and_optimizer_state",
    "test_vae_metrics.py::test_importance_weighted_bound_is_at_least_the_elbo",
    "test_vae_metrics.py::test_iwae_with_one_sample_estimates_the_elbo",
    "test_lab_equivalence.py::test_6_2_the_replica_step_is_keras_fit_step_on_one_device_and_two_replicas",
    "test_landmark.py::test_nan_in_a_later_batch_of_a_dataset_is_a_value_error_naming_it",
    "test_landmark.py::test_landmark_gan_trains_in_mixed_precision",
    "test_sparse.py::test_a_sparse_matrix_and_an_anndata_train_the_nb_vae_to_the_dense_loss",
    "test_sparse.py::test_dca_records_its_statistics_from_sparse_counts_and_encodes_them",
}


def pytest_collection_modifyitems(config, items):
    """Mark the tests of SLOW_FILES and SLOW_TESTS as slow."""
    for item in items:
        file_name = Path(str(item.fspath)).name
        name = item.name.split("[")[0]
        if file_name in SLOW_FILES or f"{file_name}::{name}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def strategy():
    """A MirroredStrategy over two logical CPUs, created once per test session."""
    return distribute.get_strategy("mirrored", cpu_replicas=N_CPU_REPLICAS)


@pytest.fixture(autouse=True)
def _seed_and_precision():
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
