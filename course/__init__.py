"""course: a Keras 3 / TensorFlow toolkit for teaching deep generative models in genomics.

Import the parts you need: ``from course import datasets, models, metrics, plots, distribute``.
"""

import os
import warnings

# Keras 3 on the TensorFlow backend. TensorFlow's C++ log level 3 hides its start-up lines (such
# as "failed call to cuInit: ... UNKNOWN ERROR (303)" on a machine without a GPU); both must be
# set before TensorFlow is imported, and a value the user has set wins.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Keras 3.15 warns on EVERY fit() over a tf.data.Dataset that "shuffle=True was passed", even
# when nobody passed it (it is fit's default). Our pipelines shuffle in tf.data, so hide it.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed", category=UserWarning)

__version__ = "0.1.0"


def import_tensorflow_quietly() -> None:
    """Import TensorFlow without the lines its C++ libraries print while they load.

    A few lines ("Could not find cuda drivers on your machine", "All log messages before
    absl::InitializeLog() is called ...") are written to the process's stderr before
    ``TF_CPP_MIN_LOG_LEVEL`` takes effect, so the import runs with file descriptor 2 pointed at
    the null device. Python exceptions still propagate. Nothing is hidden when TensorFlow is
    already imported or the user asked for its log (``TF_CPP_MIN_LOG_LEVEL`` below 3). It
    returns nothing, so that a notebook cell calling it shows nothing either.

    Every lab's first code cell calls it: a lab's imports (``import keras``) come before
    ``course``'s, and a Jupyter kernel forwards the C++ lines to the cell's output.
    """
    import sys

    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "3":
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    try:
        with open(os.devnull, "w") as null_device:
            os.dup2(null_device.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
