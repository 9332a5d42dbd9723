"""The checks of each lab: ``labNN.py`` holds the verdicts of ``solutions/NN_topic.py``.

Each exercise has random inputs drawn here, in the grader, a probe in
``course.grading.probes.labNN`` that runs the student's code on them, and a verdict here that
recomputes the answer and names the mistake when it is wrong (see ``course.grading.registry``)::

    @exercise("2.1", points=3, title="Sample z with the reparameterization trick",
              probe=probes.sample_z, inputs=sampler_inputs)
    def sample_z_verdict(inputs, outputs):
        ...

A lab's module is imported the first time one of its exercises is checked; it imports no other
lab's checks. The helpers the verdicts share are in ``tools.py`` (expectations on arrays,
scalars, binary cross-entropies) and ``steps.py`` (the float64 reference of one SGD step).
Test properties (shapes, KL >= 0 and 0 at the prior, gradients reach the encoder), not exact
numbers, and keep each check well under the default 60 s limit in smoke mode.
"""
