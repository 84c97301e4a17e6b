"""The one home of the hub's default prior per kernel size.

``priors="auto"`` (:func:`dwp_hub.init_model`, :func:`dwp_hub.inference.to_bayesian`), the paper's
MNIST experiment (:mod:`dwp_hub.paper`, ``dwp-hub vi``) and the reproduction scripts
all read it from here. Names are unversioned: each resolves to the newest installed version.
"""

from __future__ import annotations

#: Default prior for each kernel size: priors learned on notMNIST (7x7, 5x5; the paper's MNIST
#: experiment) and on CIFAR-10 ResNets (3x3).
DEFAULT_PRIORS: dict[int, str] = {7: "notmnist-7x7", 5: "notmnist-5x5", 3: "cifar10-3x3"}


def paper_priors() -> dict[int, str]:
    """The deep weight priors of the paper's MNIST net (its 7x7 and 5x5 layers)."""
    return {k: DEFAULT_PRIORS[k] for k in (7, 5)}


def paper_priors_spec() -> str:
    """:func:`paper_priors` as a ``7=NAME,5=NAME`` command-line spec."""
    return ",".join(f"{k}={v}" for k, v in paper_priors().items())
