"""Causal abstraction: interchange interventions and distributed alignment search (DAS) on ktlens models.

``interchange``: the model-agnostic part (a subspace swapped at a hook, at several positions at once; DAS
training; interchange-intervention accuracy), built on ``transformer_lens.tools.analysis.interchange``.
``ktheory``: the K-theory task's locations, answer-changing pairs and one DAS fit with its controls.
``sweep``: variables x locations x subspace sizes. ``dose``: setting the capped count along a direction.
"""
