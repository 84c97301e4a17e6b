"""How much a prior helps: VI with the prior against the standard normal on a target domain.

The transfer benefit of a 7x7 or 5x5 prior is measured on the paper's MNIST classifier (fconv 32/128,
:func:`~dwp_hub.paper.paper_net`): the layer of the prior's kernel size gets the deep weight prior
(means initialised from it, the paper's recipe), every other conv layer the standard normal; the
baseline gives every layer the standard normal. Both arms train on the same class-stratified subsets
(``n_train`` images, one per data-split seed) with the same optimiser budget, and the benefit is the
accuracy difference paired over seeds. The target domain is the other dataset of the pair: a
notMNIST prior is scored on MNIST-10k, an MNIST prior on notMNIST-10k (the reverse direction).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dwp_hub.errors import ConfigError

#: Target domain of each source domain.
TARGETS = {"notmnist": "mnist", "mnist": "notmnist"}


@dataclass(frozen=True)
class TransferSpec:
    """How the benefit is measured (recorded in the card beside the result)."""

    dataset: str = "mnist"
    protocol: str = "test"
    n_train: int = 50
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 400
    batch_size: int = 50
    #: Score on the first ``n_eval`` evaluation images only (``None``: all of them; tests use fewer).
    n_eval: int | None = None

    def __post_init__(self) -> None:
        if self.dataset not in TARGETS.values():
            raise ConfigError(f"transfer.dataset must be one of {', '.join(sorted(TARGETS.values()))}, "
                              f"got {self.dataset!r}.")
        if not self.seeds or self.steps < 1 or self.batch_size < 1 or self.n_train < 10:
            raise ConfigError("transfer needs at least one seed, steps >= 1, batch_size >= 1 and n_train >= 10.")


@dataclass(frozen=True)
class TransferResult:
    """Accuracies of both arms per seed, and their paired difference."""

    spec: TransferSpec
    acc_prior: tuple[float, ...]
    acc_standard_normal: tuple[float, ...]
    other_layers: str = "standard-normal"
    split_protocol: str = ""

    @property
    def benefit(self) -> float:
        return statistics.mean(a - b for a, b in zip(self.acc_prior, self.acc_standard_normal))

    @property
    def benefit_std(self) -> float:
        d = [a - b for a, b in zip(self.acc_prior, self.acc_standard_normal)]
        return statistics.stdev(d) if len(d) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"]["seeds"] = list(self.spec.seeds)
        d["benefit"] = round(self.benefit, 4)
        d["benefit_std"] = round(self.benefit_std, 4)
        return d

    def to_card(self) -> Any:
        """The card's :class:`~dwp_hub.card.TransferInfo`."""
        from dwp_hub.card import TransferInfo

        s = self.spec
        return TransferInfo(dataset=s.dataset, protocol=s.protocol, n_train=s.n_train, seeds=list(s.seeds),
                            steps=s.steps, batch_size=s.batch_size, acc_prior=list(self.acc_prior),
                            acc_standard_normal=list(self.acc_standard_normal), benefit=round(self.benefit, 4),
                            benefit_std=round(self.benefit_std, 4), other_layers=self.other_layers,
                            split_protocol=self.split_protocol)

    def summary(self) -> str:
        s = self.spec
        return (f"VI on {s.dataset} ({s.protocol} protocol, N={s.n_train}, {len(s.seeds)} seeds, {s.steps} steps): "
                f"{statistics.mean(self.acc_prior):.3f} with the prior vs {statistics.mean(self.acc_standard_normal):.3f} "
                f"with the standard normal, {self.benefit:+.3f} ± {self.benefit_std:.3f} paired")


def evaluate_transfer(prior: Any, kernel_size: int, spec: TransferSpec = TransferSpec(), *,
                      threads: int = 0, on_run: Callable[[str, int, float], None] | None = None) -> TransferResult:
    """Measure the transfer benefit of ``prior`` (a loaded DeepWeightPrior, a KernelVAE or a hub spec)
    for the paper net's layer of ``kernel_size`` (7: the first, 5: the second)."""
    import torch

    from dwp_hub.data import mnist10k_protocol
    from dwp_hub.inference import VIRecipe, fit_vi
    from dwp_hub.paper import paper_net

    if kernel_size not in (5, 7):
        raise ConfigError(f"the transfer benefit is measured on the paper's 7x7/5x5 net; no {kernel_size}x"
                          f"{kernel_size} layer there.")
    if threads:
        torch.set_num_threads(threads)
    accs: dict[str, list[float]] = {"prior": [], "standard-normal": []}
    protocol = ""
    for seed in spec.seeds:
        split = mnist10k_protocol(spec.n_train, seed, protocol=spec.protocol, dataset=spec.dataset)
        protocol = split.protocol
        epochs = max(1, round(spec.steps / math.ceil(spec.n_train / spec.batch_size)))
        recipe = VIRecipe(epochs=epochs, batch_size=spec.batch_size, seed=seed)
        for arm in accs:
            if arm == "prior":
                table = {kernel_size: prior, **{k: "standard-normal" for k in (5, 7) if k != kernel_size}}
                model = paper_net("dwp", dwp_priors=table, seed=seed)
            else:
                model = paper_net("standard-normal", seed=seed)
            res = fit_vi(model, split.x_train, split.y_train, recipe, x_eval=split.x_eval[: spec.n_eval],
                         y_eval=split.y_eval[: spec.n_eval], progress=False)
            accs[arm].append(round(res.metrics["acc_ensemble"], 4))
            if on_run is not None:
                on_run(arm, seed, accs[arm][-1])
    return TransferResult(spec, tuple(accs["prior"]), tuple(accs["standard-normal"]), split_protocol=protocol)
