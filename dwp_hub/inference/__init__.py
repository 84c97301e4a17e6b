"""Variational inference with hub priors (the paper's Section 3-4).

>>> from dwp_hub.inference import to_bayesian, fit_vi, evaluate
>>> model = to_bayesian(net, priors="auto")          # deep weight priors by kernel size
>>> result = fit_vi(model, x_train, y_train, x_eval=x_test, y_eval=y_test)
>>> result.metrics["acc_ensemble"]

Convention: a layer's KL is summed over its weights; the loss is ``N · mean CE + Σ KL``
(:func:`neg_elbo`).
"""

from __future__ import annotations

from typing import Any

from dwp_hub.inference._protocols import Bound, Family, Precision, Sampler, SamplingMode, VariationalLayer
from dwp_hub.inference.layers import (
    BayesConv2d,
    BayesianLayer,
    BayesLinear,
    ConversionReport,
    bayesian_layers,
    mean_weights,
    sampling_mode,
    set_stochastic,
    to_bayesian,
    to_bayesian_report,
)
from dwp_hub.inference.predict import Prediction, classification_metrics, predict
from dwp_hub.inference.objective import bound_gap, data_term, kl_divergence, kl_terms, neg_elbo
from dwp_hub.inference.priors import (
    DEFAULT_KERNELS_PER_STEP,
    DeepWeightPriorKL,
    GapEstimate,
    LogUniformKL,
    PRIOR_CLASSES,
    PriorKL,
    SparseLogUniformKL,
    StandardNormalKL,
    prior_families,
)
from dwp_hub.inference.vi import (
    VIRecipe,
    VIResult,
    evaluate,
    fit_deterministic,
    fit_vi,
    load_checkpoint,
    predict_proba,
    save_checkpoint,
)

__all__ = [
    "DEFAULT_KERNELS_PER_STEP",
    "BayesConv2d",
    "BayesLinear",
    "BayesianLayer",
    "Bound",
    "ConversionReport",
    "DeepWeightPriorKL",
    "Family",
    "GapEstimate",
    "LogUniformKL",
    "PRIOR_CLASSES",
    "PriorKL",
    "Precision",
    "Sampler",
    "SamplingMode",
    "SparseLogUniformKL",
    "StandardNormalKL",
    "VIRecipe",
    "VIResult",
    "VariationalLayer",
    "bayesian_layers",
    "bound_gap",
    "data_term",
    "evaluate",
    "fit_deterministic",
    "fit_vi",
    "kl_divergence",
    "kl_terms",
    "load_checkpoint",
    "mean_weights",
    "neg_elbo",
    "paper_net",
    "predict",
    "predict_proba",
    "Prediction",
    "classification_metrics",
    "prior_families",
    "sampling_mode",
    "save_checkpoint",
    "set_stochastic",
    "to_bayesian",
    "to_bayesian_report",
]


def __getattr__(name: str) -> Any:
    """``paper_net`` lives in :mod:`dwp_hub.paper` (the paper's setup); re-exported here, imported on first use."""
    if name == "paper_net":
        from dwp_hub.paper import paper_net

        globals()[name] = paper_net
        return paper_net
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
