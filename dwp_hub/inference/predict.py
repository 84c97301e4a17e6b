"""Predictive distributions of Bayesian nets and their uncertainty and calibration metrics.

:func:`predict` runs ``samples`` stochastic forward passes per batch and keeps running sums only (never
the ``samples`` full outputs; peak memory does not grow with ``samples``). Each pass draws one weight sample
per Bayesian layer, shared by the batch (``sampling="weights"``: the exact posterior predictive, at the cost of
a deterministic pass); ``sampling="local"`` uses the training-time local reparameterisation instead (a mean
and a variance operation per layer, independent noise per example and output unit). The running sums give
the mean probabilities p̄ = (1/K) Σ_k p_k, the predictive entropy H[p̄], the expected entropy
(1/K) Σ_k H[p_k] (aleatoric part) and their difference, the mutual information between the prediction and
the weights (epistemic part, ≥ 0).

:func:`classification_metrics` scores mean probabilities: accuracy, NLL, Brier score and expected
calibration error (equal-width confidence bins, the top-label definition of Guo et al. 2017, the
same as ``torchmetrics``' ``MulticlassCalibrationError(norm="l1")``, which the tests check).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dwp_hub.errors import ConfigError
from dwp_hub.inference._protocols import SamplingMode
from dwp_hub.inference.layers import bayesian_layers, sampling_mode

_EPS = 1e-12


@dataclass
class Prediction:
    """Per-example predictive quantities, each ``[N]`` except ``probs`` ``[N, C]`` (nats)."""

    probs: Tensor
    entropy: Tensor
    expected_entropy: Tensor
    mutual_information: Tensor

    @property
    def labels(self) -> Tensor:
        return self.probs.argmax(1)


def _entropy(p: Tensor) -> Tensor:
    return -(p * p.clamp_min(_EPS).log()).sum(-1)


@torch.no_grad()
def predict(model: nn.Module, x: Any, samples: int = 10, *, batch_size: int = 256,
            generator: torch.Generator | None = None, device: Any = None,
            sampling: SamplingMode | str = SamplingMode.WEIGHTS) -> Prediction:
    """The MC predictive distribution of ``model`` on ``x`` (a tensor ``[N, ...]`` or an iterable of
    input batches, e.g. a ``DataLoader`` yielding ``x`` or ``(x, y)``).

    Args:
        samples: stochastic passes K (Bayesian layers sample); a model without Bayesian layers gives
            one deterministic pass and zero mutual information.
        batch_size: examples per forward pass when ``x`` is a tensor.
        generator: makes the passes reproducible (a seed is drawn from it; the global generator is
            left untouched).
        device: where to run (default: the model's device); results are returned on the CPU.
        sampling: ``"weights"`` (one weight draw per layer and pass, shared by the batch: the exact
            predictive, one deterministic pass's cost) or ``"local"`` (local reparameterisation, as in
            training: about twice the cost). See :class:`~dwp_hub.inference.SamplingMode`.
    """
    if samples < 1:
        raise ConfigError(f"samples must be >= 1, got {samples}.")
    mode = SamplingMode.parse(sampling)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    k = samples if bayesian_layers(model) else 1
    batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size)) if torch.is_tensor(x) else x
    seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if generator is not None else None
    was_training = model.training
    model.eval()
    out: dict[str, list[Tensor]] = {"probs": [], "entropy": [], "expected_entropy": []}
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), sampling_mode(model, mode):
            batches = iter(batches)  # a DataLoader draws its base seed here: not from the noise stream below
            if seed is not None:
                torch.manual_seed(seed)
            for xb in batches:
                if isinstance(xb, (tuple, list)):
                    xb = xb[0]
                xb = xb.to(dev)
                mean, exp_h = None, None
                for _ in range(k):
                    p = F.softmax(model(xb).float(), dim=-1)
                    mean = p if mean is None else mean.add_(p)
                    h = _entropy(p)
                    exp_h = h if exp_h is None else exp_h.add_(h)
                assert mean is not None and exp_h is not None
                mean, exp_h = mean / k, exp_h / k
                out["probs"].append(mean.cpu())
                out["entropy"].append(_entropy(mean).cpu())
                out["expected_entropy"].append(exp_h.cpu())
    finally:
        model.train(was_training)
    probs = torch.cat(out["probs"])
    ent, exp_ent = torch.cat(out["entropy"]), torch.cat(out["expected_entropy"])
    return Prediction(probs, ent, exp_ent, (ent - exp_ent).clamp_min(0.0))


def expected_calibration_error(probs: Tensor, y: Tensor, bins: int = 15) -> float:
    """Top-label ECE with ``bins`` equal-width confidence bins: Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|."""
    conf, pred = probs.max(1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1, dtype=conf.dtype)
    idx = torch.bucketize(conf, edges[1:-1], right=True)  # bin b holds (edge_b, edge_{b+1}]
    ece = torch.zeros((), dtype=torch.float64)
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.double().mean() * (correct[m].mean() - conf[m].mean()).abs().double()
    return float(ece)


def classification_metrics(probs: Tensor, y: Tensor, bins: int = 15) -> dict[str, float]:
    """Accuracy, NLL (nats), Brier score (sum over classes, mean over examples) and ECE of ``probs``."""
    y = y.long()
    onehot = F.one_hot(y, probs.shape[1]).to(probs.dtype)
    return {
        "accuracy": float((probs.argmax(1) == y).float().mean()),
        "nll": float(-probs.gather(1, y[:, None]).clamp_min(_EPS).log().mean()),
        "brier": float(((probs - onehot) ** 2).sum(1).mean()),
        "ece": expected_calibration_error(probs, y, bins),
    }


def reliability_diagram(probs: Tensor, y: Tensor, path: str | Path, bins: int = 15, title: str = "") -> Path:
    """Write a reliability diagram (accuracy against confidence per bin, with the bins' counts) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf, pred = probs.max(1)
    correct = (pred == y).float()
    edges = torch.linspace(0, 1, bins + 1)
    idx = torch.bucketize(conf, edges[1:-1], right=True)
    centers = ((edges[:-1] + edges[1:]) / 2).tolist()
    accs = [float(correct[idx == b].mean()) if (idx == b).any() else 0.0 for b in range(bins)]
    counts = [int((idx == b).sum()) for b in range(bins)]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.bar(centers, accs, width=1 / bins, edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    for c, a, n in zip(centers, accs, counts):
        if n:
            ax.text(c, a + 0.01, str(n), ha="center", fontsize=5)
    ece = expected_calibration_error(probs, y, bins)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} ECE {ece:.3f}".strip(), fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
