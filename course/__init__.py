"""course: a Keras 3 / TensorFlow toolkit for teaching deep generative models in genomics.

Import the parts you need: ``from course import datasets, models, metrics, plots, distribute``.
"""

import os
import warnings

# Keras 3 on the TensorFlow backend; keep TensorFlow's C++ start-up chatter out of notebooks.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Keras 3.15 warns on EVERY fit() over a tf.data.Dataset that "shuffle=True was passed", even
# when nobody passed it (it is fit's default). Our pipelines shuffle in tf.data, so hide it.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed", category=UserWarning)

__version__ = "0.1.0"
