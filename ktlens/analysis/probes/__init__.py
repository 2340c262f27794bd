"""Linear probes over any hook, with a random-model control and a shuffled-label control.

A probe asks: is quantity Y a *linear* function of the activations at hook H (position P)?

* class targets: multinomial logistic regression (softmax), full-batch L-BFGS, small L2;
* scalar targets: ridge regression, closed form, L2 picked per target by generalized cross-validation.

For the logistic probes features are centred and whitened with the training split's covariance (PCA whitening; directions of
~zero variance, e.g. constant features, are dropped), so a probe's answer does not depend on how the
hook happens to scale or correlate its coordinates, and L-BFGS converges in ~100 iterations. For
ridge they are only centred and scaled by one global number (ridge then shrinks the low-variance
directions instead of amplifying units that are nearly silent on the train split).
Examples are split once into train/test (`test_fraction`, `seed`); every score is on the held-out
test split. Each result carries

* ``accuracy``          test accuracy (class) or test R^2 (scalar) of the probe on the trained model;
* ``baseline``          majority class of the train split scored on the test split (class), or R^2 of
                        predicting the train mean (scalar, ~0);
* ``control_accuracy``  the same probe on a randomly initialised model of the same architecture (same
                        cfg, another init seed): what the architecture and the inputs give for free;
* ``shuffled_accuracy`` the same probe on the trained model's activations with the labels permuted
                        over examples: what a probe can memorise (selectivity = accuracy - shuffled).

Activations are read only through ``model.run_with_cache(tokens, names_filter=[...])``, so any
`HookedModel` works. The package:

* ``records``    `ProbeTarget`, `ProbeResult`, `Features`;
* ``positions``  position specs and the default position convention of each model type;
* ``features``   gathering activations (`gather_features`), `check_hooks`, `random_control_model`;
* ``fitting``    `fit_classifiers` (logistic) and `fit_ridge`;
* ``running``    `run_probes`, `probe_features`, the controls, sample-size warnings, progress;
* ``table``      `results_table`;
* ``targets``    the studies' examples and targets (`probe_data`, `default_hooks`), read from the task
  modules' ``VARIABLES`` registries. It is the only study-specific module and is not imported here
  (import it as ``ktlens.analysis.probes.targets`` or ``ktlens.analysis.probe_targets``).

Positions (the ``positions`` argument, one spec for every hook or a dict hook -> spec). The position
axis is axis 1 of the hook's activation (axis 2, the query axis, for ``hook_pattern`` and
``hook_attn_scores``); every axis after it is flattened into features.

* ``k`` (int, negative counts from the end): the activation at position k only;
* ``[k1, k2, ...]``: the activations at those positions, concatenated into one feature vector;
* ``"flatten"``: every position concatenated (one feature vector per example);
* ``"all"``: every position is a separate row (rows of one example stay in the same split);
  per-position targets take the value at that row's position;
* ``"none"``: the hook has no position axis (``[batch, d]``), e.g. ``hook_resid_final``;
* ``"default"``: the model type's convention (``positions.default_position``); for the K-theory model
  decoder position 0 (the BOS position, which sees the whole source through cross-attention, before
  any label is read), for the remainders model the '=' position, and "flatten" for embeddings.
"""

from ktlens.analysis.probes.features import check_hooks, gather_features, random_control_model
from ktlens.analysis.probes.fitting import RIDGE_GRID, fit_classifiers, fit_ridge
from ktlens.analysis.probes.positions import QUERY_AXIS_HOOKS, default_position, resolve_position
from ktlens.analysis.probes.records import Features, PositionSpec, ProbeResult, ProbeTarget
from ktlens.analysis.probes.running import SmallSampleWarning, probe_features, run_probes, sample_size_warnings
from ktlens.analysis.probes.table import results_table

__all__ = [
    "ProbeTarget",
    "ProbeResult",
    "Features",
    "PositionSpec",
    "QUERY_AXIS_HOOKS",
    "RIDGE_GRID",
    "SmallSampleWarning",
    "check_hooks",
    "default_position",
    "resolve_position",
    "gather_features",
    "fit_classifiers",
    "fit_ridge",
    "probe_features",
    "random_control_model",
    "run_probes",
    "sample_size_warnings",
    "results_table",
]
