"""Balance a source net's layers: the function-preserving rescaling its L2 term drives it towards.

A source net's convolutions are joined by positively homogeneous maps (LeakyReLU, max pooling):
multiplying a unit's incoming kernel and bias by ``s > 0`` and its outgoing weights by ``1 / s``
leaves the function unchanged. The L2 term ``l2 * sum ||p||^2`` over the convolutions is not
invariant: over these rescalings of the units *between two convolutions* it is smallest where every such
unit's incoming norm ``||w_in||^2 + b^2`` equals its outgoing norm ``||w_out||^2``, and its gradient keeps
pushing a run towards that point. A short run at a large step (the only affordable one on a few cores)
stops before it, with first-layer kernels smaller than the next layer's weights that read them.
:func:`balance_state` moves a checkpoint to that point exactly (block coordinate descent on a convex
function of the log-scales). The last convolution's output units are left as they are: they feed an
unpenalised classifier, so the L2 term has no minimum over their scale. Harvested kernels then have the
scale the balanced units give them, and the net computes what it computed before.
"""

from __future__ import annotations

from dataclasses import dataclass
import torch
from torch import nn

from dwp_hub.errors import CheckpointError

__all__ = ["BalanceReport", "balance_state", "balanced_pairs"]

#: Modules through which a rescaling of a unit passes unchanged (positively homogeneous, channel-wise).
HOMOGENEOUS = (nn.LeakyReLU, nn.ReLU, nn.MaxPool2d, nn.Identity)


@dataclass(frozen=True)
class BalanceReport:
    """What :func:`balance_state` did: the layer pairs it equalised, its sweeps, and the L2 term before and after."""

    pairs: tuple[tuple[str, str], ...]
    sweeps: int
    penalty_before: float
    penalty_after: float
    max_imbalance: float  # largest |log(incoming / outgoing)| of a live unit in the final sweep (< 4 * tol)


def balanced_pairs(net: nn.Sequential) -> list[tuple[str, str]]:
    """Names (``"<index>"``) of the consecutive ``Conv2d`` pairs of ``net`` joined only by positively
    homogeneous modules: the pairs a per-unit rescaling can move between."""
    pairs, prev, clean = [], None, False
    for name, module in net.named_children():
        if isinstance(module, nn.Conv2d):
            if prev is not None and clean and module.groups == 1:
                pairs.append((prev, name))
            prev, clean = (name, True) if module.groups == 1 else (None, False)
        elif not isinstance(module, HOMOGENEOUS):
            prev, clean = None, False
    return pairs


def _penalty(state: dict[str, torch.Tensor], layers: list[str]) -> float:
    total = 0.0
    for n in layers:
        total += float((state[f"{n}.weight"].double() ** 2).sum())
        if f"{n}.bias" in state:
            total += float((state[f"{n}.bias"].double() ** 2).sum())
    return total


def balance_state(state: dict[str, torch.Tensor], net: nn.Sequential, *, tol: float = 1e-7,
                  max_sweeps: int = 200) -> tuple[dict[str, torch.Tensor], BalanceReport]:
    """A copy of ``state`` (a state dict of ``net``'s architecture) with every hidden unit between two
    convolutions of :func:`balanced_pairs` rescaled so that its incoming and outgoing L2 norms are equal.

    The net computes the same function (up to rounding); the summed squared norm of the convolutions'
    parameters (the source recipe's L2 term) is at its minimum over these rescalings, the last convolution's
    output scale held. A unit whose incoming or outgoing weights are all zero is left alone. Raises
    :class:`~dwp_hub.errors.CheckpointError` if the state does not fit the architecture, no pair exists, or the
    sweeps do not converge.
    """
    pairs = balanced_pairs(net)
    if not pairs:
        raise CheckpointError("This architecture has no two convolutions joined by a positively homogeneous "
                              "activation, so there is nothing to balance; drop harvest.balance.")
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for a, b in pairs:
        for key in (f"{a}.weight", f"{a}.bias", f"{b}.weight"):
            if key not in expected and key not in state:
                continue  # a conv without bias
            if key not in state or key not in expected or tuple(state[key].shape) != expected[key]:
                got = tuple(state[key].shape) if key in state else "missing"
                raise CheckpointError(f"Cannot balance: {key} is {got}, the recorded architecture has "
                                      f"{expected.get(key, 'none')}. The checkpoint does not match its recorded net.")
    out = {k: v.detach().clone().double() if v.is_floating_point() else v.clone() for k, v in state.items()}
    layers = sorted({n for p in pairs for n in p}, key=int)
    before = _penalty(out, layers)
    sweeps, worst = 0, 0.0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 - the count is reported
        worst = 0.0
        for a, b in pairs:
            w_in, w_out = out[f"{a}.weight"], out[f"{b}.weight"]
            inc = (w_in.flatten(1) ** 2).sum(1)
            if f"{a}.bias" in out:
                inc = inc + out[f"{a}.bias"] ** 2
            outg = (w_out.transpose(0, 1).flatten(1) ** 2).sum(1)
            live = (inc > 0) & (outg > 0)
            scale = torch.ones_like(inc)
            scale[live] = (outg[live] / inc[live]) ** 0.25
            worst = max(worst, float(scale[live].log().abs().max()) if live.any() else 0.0)
            out[f"{a}.weight"] = w_in * scale.view(-1, *([1] * (w_in.dim() - 1)))
            if f"{a}.bias" in out:
                out[f"{a}.bias"] = out[f"{a}.bias"] * scale
            out[f"{b}.weight"] = w_out / scale.view(1, -1, *([1] * (w_out.dim() - 2)))
        if worst < tol:
            break
    else:
        raise CheckpointError(f"Balancing did not converge in {max_sweeps} sweeps (a unit's incoming and outgoing "
                              f"norms still differ by a factor {float(torch.tensor(4 * worst).exp()):.3g}); the "
                              "checkpoint's weights may be degenerate. Drop harvest.balance for it.")
    result = {k: v.to(state[k].dtype) if v.is_floating_point() else v for k, v in out.items()}
    return result, BalanceReport(tuple(pairs), sweeps, before, _penalty(out, layers), 4 * worst)
