"""course: a Keras 3 / TensorFlow toolkit for teaching deep generative models in genomics.

Import the parts you need: ``from course import datasets, models, metrics, plots, distribute``.
"""

import os

# Keras 3 on the TensorFlow backend; keep TensorFlow's C++ start-up chatter out of notebooks.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
