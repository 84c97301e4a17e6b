"""Shared pieces of the initialisation experiments (``fig3a.py``, ``fig4.py``, ``bench_init.py``).

* the learned-filter bank: kernels harvested from the notMNIST source networks with the same
  layer and pruning rule as the prior recipes, sampled with replacement;
* the three initialisations of conv layers (``dwp``, ``xavier``, ``filters``);
* the MNIST-10k protocol data (train on images 0-4999, test on 5000-9999);
* how ``fig3a.py`` and ``fig4.py`` start (:func:`setup_run`: config, command line, threads, pinned priors, bank).

Configs, seeds, result files and the random stand-in priors are in :mod:`tools._experiment`.
"""

from __future__ import annotations

import argparse
import glob
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tools._experiment import REPO, Timer, command_line, load_priors, pin_specs, set_threads

METHODS = ("dwp", "xavier", "filters")
#: Extra arms (opt-in with --methods): prior samples rescaled per layer to std sqrt(2 / fan_in);
#: the prior for one kernel size only (ablations: which prior helps or hurts), Xavier elsewhere.
EXTRA_METHODS = ("dwp-noise", "dwp-fanin", "dwp-only7", "dwp-only5")
#: Display name and plot colour of every init method (all reproduction scripts).
LABELS = {"dwp": "dwp samples", "dwp-noise": "dwp samples with decoder noise", "xavier": "xavier",
          "filters": "learned filters", "dwp-fanin": "dwp, fan-in scale", "dwp-only7": "dwp 7x7 only (xavier 5x5)",
          "dwp-only5": "dwp 5x5 only (xavier 7x7)"}
COLORS = {"dwp": "tab:blue", "dwp-noise": "tab:cyan", "xavier": "tab:orange", "filters": "tab:green",
          "dwp-fanin": "tab:purple", "dwp-only7": "tab:red", "dwp-only5": "tab:brown"}
#: Recipes whose harvest rule defines the learned-filter bank of each kernel size.
FILTER_RECIPES = {7: REPO / "tools/recipes/notmnist-7x7.yaml", 5: REPO / "tools/recipes/notmnist-5x5.yaml"}
PROTOCOL = "MNIST-10k protocol: train on all 5,000 images 0-4999 of the MNIST test file, evaluate on images 5000-9999"


def parse_methods(value: Any) -> tuple[str, ...]:
    """Init methods, comma-separated (``dwp,xavier,filters`` and the extra arms of :data:`EXTRA_METHODS`)."""
    names = tuple(m.strip() for m in (value if isinstance(value, (list, tuple)) else str(value).split(","))
                  if m.strip())
    bad = sorted(set(names) - set(METHODS + EXTRA_METHODS))
    if bad or not names:
        raise ValueError(f"unknown method(s) {bad}; choose from {','.join(METHODS + EXTRA_METHODS)}")
    return names


# -- priors ---------------------------------------------------------------------------------------------
def describe_priors(priors: dict[int, Any]) -> str:
    parts = []
    for k, p in sorted(priors.items(), reverse=True):
        elbo = p.card.metrics.heldout_elbo
        extra = "" if math.isnan(elbo) else f", held-out ELBO {elbo:.1f} nats"
        parts.append(f"{k}x{k}: {p.card.spec} ({p.card.arch.kind}, z {p.card.arch.z_dim}{extra})")
    return "; ".join(parts)


# -- learned filters -----------------------------------------------------------------------------------
@dataclass
class FilterBank:
    """Learned kernels ``{k: [N, 1, k, k]}`` and where they came from."""

    kernels: dict[int, torch.Tensor]
    description: str

    def fill_(self, weight: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Fill ``weight`` ``[out, in, k, k]`` with kernels drawn uniformly, with replacement."""
        k = weight.shape[-1]
        bank = self.kernels[k]
        n = weight.shape[0] * weight.shape[1]
        idx = torch.randint(len(bank), (n,), generator=generator)
        with torch.no_grad():
            weight.copy_(bank[idx].reshape(weight.shape).to(weight.dtype))
        return weight


def default_sources() -> list[Path]:
    """Checkpoints of the notMNIST source networks the prior recipes train (``runs/``)."""
    from dwp_hub.training.recipe import load_recipe
    from dwp_hub.training.source import source_dir

    recipe = load_recipe(FILTER_RECIPES[7])
    folder = source_dir(recipe.source, REPO / "runs")  # type: ignore[arg-type]
    paths = sorted(folder.glob("*.safetensors"))
    if not paths:  # any notMNIST fconv source family
        paths = sorted(Path(p) for p in glob.glob(str(REPO / "runs/sources-notmnist-fconv-*/*.safetensors")))
    return paths


def learned_filters(sources: Sequence[Path] | None = None, sizes: Iterable[int] = (7, 5)) -> FilterBank:
    """Harvest the learned-filter bank with each recipe's layer and pruning rule, all nets pooled."""
    import dataclasses

    from dwp_hub.training.harvest import harvest
    from dwp_hub.training.recipe import load_recipe

    paths = list(sources) if sources else default_sources()
    if not paths:
        raise SystemExit("No notMNIST source checkpoints found under runs/; pass --sources or build the priors first.")
    kernels, parts = {}, []
    for k in sizes:
        spec = dataclasses.replace(load_recipe(FILTER_RECIPES[k]).harvest, held_out=())
        data = harvest(paths, spec)
        kernels[k] = data.train
        parts.append(f"{k}x{k}: {len(data.train):,} kernels of layer {spec.layer} ({spec.prune.describe()})")
    return FilterBank(kernels, f"{len(paths)} notMNIST source nets; " + "; ".join(parts))


def scale_check(priors: dict[int, Any] | None, bank: FilterBank | None, n: int = 3000) -> str:
    """Median L2 norm of prior samples (decoder means, as used for init) against the learned kernels."""
    if not priors or not bank:
        return "not measured"
    parts = []
    for k, p in sorted(priors.items(), reverse=True):
        if k not in bank.kernels:
            continue
        s = p.sample(n, generator=torch.Generator().manual_seed(0), noise=False).flatten(1).norm(dim=1).median()
        b = bank.kernels[k].flatten(1).norm(dim=1).median()
        parts.append(f"{k}x{k}: {float(s):.3f} against {float(b):.3f} ({float(s / b):.1f}x)")
    return "; ".join(parts)


# -- the three initialisations -------------------------------------------------------------------------------
_CONV = (nn.Conv2d, nn.ConvTranspose2d)


def xavier_all_(net: nn.Module, generator: torch.Generator) -> nn.Module:
    """Xavier-uniform weights and zero biases for every conv, transposed conv and linear layer."""
    for m in net.modules():
        if isinstance(m, (*_CONV, nn.Linear)):
            nn.init.xavier_uniform_(m.weight, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def init_net_(net: nn.Module, method: str, generator: torch.Generator, priors: dict[int, Any] | None = None,
              bank: FilterBank | None = None) -> nn.Module:
    """Xavier everywhere, then the conv kernels by ``method`` (biases stay zero).

    ``dwp``: decoder means of z ~ N(0, I) from the prior of each kernel size (the paper's choice
    for VI, recipe file; Sections 4.2/4.3 say "samples from the deep weight prior");
    ``dwp-noise``: true samples of p(w): the decoder mean plus its Gaussian noise;
    ``dwp-fanin``: the same samples rescaled per layer to std ``sqrt(2 / fan_in)`` (``scale="fan_in"``);
    ``dwp-only7`` / ``dwp-only5``: the prior for 7x7 (or 5x5) kernels only, Xavier for the rest;
    ``filters``: learned kernels drawn with replacement; ``xavier``: nothing more.
    """
    from dwp_hub.init import init_model

    xavier_all_(net, generator)
    if method == "xavier":
        return net
    if method in ("dwp", "dwp-noise", "dwp-fanin", "dwp-only7", "dwp-only5"):
        assert priors is not None
        scale = "fan_in" if method == "dwp-fanin" else "prior"
        only = method.startswith("dwp-only")
        table = {int(method[-1]): priors[int(method[-1])]} if only else priors
        report = init_model(net, table, generator=generator, strict=not only, scale=scale,
                            noise=method == "dwp-noise")
        assert only or len(report) == sum(isinstance(m, _CONV) for m in net.modules())
        return net
    if method == "filters":
        assert bank is not None
        for m in net.modules():
            if isinstance(m, _CONV):
                bank.fill_(m.weight, generator)
        return net
    raise ValueError(f"Unknown init method {method!r}; use one of {METHODS + EXTRA_METHODS}.")


# -- data -----------------------------------------------------------------------------------------------
def mnist_protocol() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x_train, y_train, x_test, y_test``: MNIST test-file images 0-4999 / 5000-9999."""
    from dwp_hub.data import load_idx_dataset

    x, y = load_idx_dataset("mnist")
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return xt[:5000], yt[:5000], xt[5000:], yt[5000:]


# -- how fig3a and fig4 start ---------------------------------------------------------------------------------
@dataclass
class RunSetup:
    """A figure's run as :func:`setup_run` prepared it."""

    cfg: Any
    ns: argparse.Namespace
    command: str
    timer: Timer
    priors: dict[int, Any] | None
    bank: FilterBank | None

    def described(self) -> tuple[str, str, str]:
        """The priors, the learned-filter bank and their kernel scales, as the reports print them."""
        return (describe_priors(self.priors) if self.priors else "not used",
                self.bank.description if self.bank else "not used", scale_check(self.priors, self.bank))


def setup_run(config_cls: Any, script: str, argv: list[str] | None, description: str) -> RunSetup:
    """The config (with ``--report-only``), the command line to record, torch threads, the output folder, a timer,
    the priors (pinned to the versions they resolve to, so rows record them; loaded when a ``dwp`` method runs) and
    the learned-filter bank (when ``filters`` runs)."""
    def extra(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--report-only", action="store_true", help="only rebuild the markdown and plot from the CSV")

    cfg, ns = config_cls.from_args(argv, description, extra)
    shown = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
    command = command_line(script, shown, prefix="DWP_HUB_DATA=../shared/data python")
    set_threads(cfg.threads)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    timer = Timer()
    use_prior = any(m.startswith("dwp") for m in cfg.methods)
    if use_prior and not cfg.random_priors:  # rows record the versions used
        pinned = pin_specs({7: cfg.prior7, 5: cfg.prior5})
        cfg = cfg.replace(prior7=pinned[7], prior5=pinned[5])
    priors = load_priors({7: cfg.prior7, 5: cfg.prior5}, random=cfg.random_priors) if use_prior else None
    bank = learned_filters(cfg.sources or None) if "filters" in cfg.methods else None
    return RunSetup(cfg, ns, command, timer, priors, bank)
