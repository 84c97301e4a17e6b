"""dwp-hub: a hub of pretrained deep weight priors (Atanov et al., ICLR 2019).

>>> import dwp_hub
>>> prior = dwp_hub.load("notmnist-7x7")          # newest version; "notmnist-7x7@1.0.0" pins one
>>> dwp_hub.init_model(net, generator=torch.Generator().manual_seed(0))

Attributes are imported lazily so that listing priors does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dwp_hub._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from dwp_hub._api import load
    from dwp_hub._listing import PriorInfo, list_priors
    from dwp_hub.card import PriorCard
    from dwp_hub.init import InitReport, init_, init_model
    from dwp_hub.model.prior import DeepWeightPrior
    from dwp_hub.registry import PublishResult
    from dwp_hub.training.publish import publish

__all__ = [
    "DeepWeightPrior",
    "DeepWeightPriorDistribution",
    "InitReport",
    "PriorCard",
    "PriorInfo",
    "PublishResult",
    "__version__",
    "init_",
    "init_model",
    "list_priors",
    "load",
    "plot_kernels",
    "publish",
]

_LAZY = {
    "load": "dwp_hub._api",
    "list_priors": "dwp_hub._listing",
    "PriorInfo": "dwp_hub._listing",
    "PriorCard": "dwp_hub.card",
    "init_": "dwp_hub.init",
    "init_model": "dwp_hub.init",
    "InitReport": "dwp_hub.init",
    "DeepWeightPrior": "dwp_hub.model.prior",
    "DeepWeightPriorDistribution": "dwp_hub.model.distribution",
    "publish": "dwp_hub.training.publish",
    "PublishResult": "dwp_hub.registry",
    "plot_kernels": "dwp_hub.plot",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dwp_hub' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
