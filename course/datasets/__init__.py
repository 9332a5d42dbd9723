"""Data loaders (the old course/datasets.py, moved here whole; the split by concern follows)."""

from course.datasets.cache import *  # noqa: F401,F403
