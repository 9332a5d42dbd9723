"""The checks of each lab: ``labNN.py`` holds the checks of ``solutions/NN_topic.py``.

A lab's module is imported the first time one of its exercises is checked. Each check is a
plain function of the student's namespace, registered with its id, points and title::

    from course.grading import CheckFailed, exercise

    @exercise("2.1", points=2, title="Sample z with the reparameterization trick")
    def sample_z_is_random_and_differentiable(ns):
        ...

Test properties (shapes, KL >= 0 and 0 at the prior, gradients reach the encoder), not exact
numbers, and keep each check well under the default 60 s limit in smoke mode.
"""
