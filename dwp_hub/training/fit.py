"""Fit a kernel VAE to a kernel dataset and evaluate it on held-out kernels.

Default recipe (the paper's): Adam lr 1e-3 with linear decay to 0, 300 epochs, batch 128, loss
summed over the batch. A NaN guard aborts with :class:`~dwp_hub.errors.TrainingError` that
carries the last good state.

``device`` says where the VAE trains and is evaluated. The batch order and the VAE's noise come from a CPU
generator whatever the device, so a fit on a GPU differs from the CPU's only by float rounding; the device is
not part of the recipe. The returned VAE is on the CPU.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from dwp_hub._device import resolve_device
from dwp_hub.card import ArchConfig, KernelStats, Metrics
from dwp_hub.errors import TrainingError
from dwp_hub.model.vae import KernelVAE
from dwp_hub.training.harvest import KernelDataset


@dataclass(frozen=True)
class FitRecipe:
    """VAE training hyper-parameters."""

    epochs: int = 300
    lr: float = 1e-3
    batch_size: int = 128
    seed: int = 0
    iw_k: int = 1000
    iw_max_kernels: int = 500

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FitResult:
    """A trained VAE plus its metrics, kernel statistics and loss history."""

    vae: KernelVAE
    metrics: Metrics
    stats: KernelStats
    seconds: float
    history: list[float] = field(default_factory=list)
    #: Where the VAE trained (the card's ``training.device``; the VAE itself is returned on the CPU).
    device: str = "cpu"


class NonFiniteLossError(TrainingError):
    """The loss became NaN or inf; ``last_good_state`` holds the weights of the last good epoch."""

    def __init__(self, message: str, last_good_state: dict[str, torch.Tensor]) -> None:
        super().__init__(message)
        self.last_good_state = last_good_state


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kernel_stats(kernels: torch.Tensor) -> KernelStats:
    """Mean, std and L2-norm quantiles of ``kernels``."""
    norms = kernels.flatten(1).norm(dim=1)
    qs = torch.quantile(norms, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95]))
    return KernelStats(
        mean=float(kernels.mean()), std=float(kernels.std()),
        norm_quantiles={f"q{int(q * 100):02d}": round(float(v), 6) for q, v in zip((0.05, 0.25, 0.5, 0.75, 0.95), qs)},
    )


@torch.no_grad()
def evaluate(vae: KernelVAE, kernels: torch.Tensor, recipe: FitRecipe, batch: int = 4096) -> tuple[float, float, int]:
    """Mean ELBO over ``kernels`` and mean IW log-likelihood over a seeded subset (nats/kernel), computed where
    ``vae`` is (noise and subset from a CPU generator)."""
    gen = torch.Generator().manual_seed(recipe.seed + 1)
    kernels = kernels.to(next(vae.parameters()).device)
    vae.eval()
    elbo = torch.cat([vae.elbo(kernels[i : i + batch], generator=gen) for i in range(0, len(kernels), batch)])
    sub = kernels
    if len(kernels) > recipe.iw_max_kernels:
        sub = kernels[torch.randperm(len(kernels), generator=gen)[: recipe.iw_max_kernels].to(kernels.device)]
    iw = vae.iw_log_prob(sub, k=recipe.iw_k, generator=gen)
    return float(elbo.mean()), float(iw.mean()), len(sub)


def fit_vae(
    data: KernelDataset,
    arch: ArchConfig,
    recipe: FitRecipe = FitRecipe(),
    progress: bool = True,
    reference_elbo: float | None = None,
    device: Any = None,
) -> FitResult:
    """Train a :class:`KernelVAE` on ``data.train`` and evaluate it on ``data.held_out``, on ``device``
    (default: the CPU); the result's VAE is on the CPU."""
    from dwp_hub._progress import progress_bar

    dev = resolve_device(device)

    if data.train.shape[-1] != arch.kernel_size:
        raise TrainingError(
            f"Kernels are {data.train.shape[-1]}x{data.train.shape[-1]} but the architecture is for "
            f"{arch.kernel_size}x{arch.kernel_size}."
        )
    if len(data.train) == 0:
        raise TrainingError("The kernel dataset is empty; harvest with a lower prune threshold.")
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    vae = KernelVAE(arch).to(dev)  # initialised on the CPU: the same weights anywhere
    opt = torch.optim.Adam(vae.parameters(), lr=recipe.lr)
    x = data.train.float().to(dev)
    steps = recipe.epochs * -(-len(x) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / steps))
    last_good = _cpu_state(vae)
    history: list[float] = []
    start = time.perf_counter()
    with progress_bar(progress) as bar:
        task = bar.add_task(f"fit {arch.kind} VAE", total=recipe.epochs)
        for epoch in range(recipe.epochs):
            perm = torch.randperm(len(x), generator=gen)
            total = 0.0
            for i in range(0, len(x), recipe.batch_size):
                loss = -vae.elbo(x[perm[i : i + recipe.batch_size].to(dev)], generator=gen).sum()
                if not torch.isfinite(loss):
                    vae.load_state_dict(last_good)
                    raise NonFiniteLossError(
                        f"VAE loss became {loss.item()} at epoch {epoch}, step {i // recipe.batch_size}. "
                        "The last good weights are kept; lower the learning rate or prune tiny kernels.",
                        last_good,
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item()
            history.append(-total / len(x))
            last_good = _cpu_state(vae)
            bar.update(task, advance=1, acc=f"train ELBO {history[-1]:.2f}")
    seconds = time.perf_counter() - start
    held = data.held_out if len(data.held_out) else data.train
    heldout_elbo, heldout_iw, n_iw = evaluate(vae, held.float(), recipe)
    train_elbo, _, _ = evaluate(vae, x[:5000], FitRecipe(iw_k=1, iw_max_kernels=1, seed=recipe.seed))
    metrics = Metrics(
        heldout_elbo=round(heldout_elbo, 4), heldout_iw_log_likelihood=round(heldout_iw, 4), iw_k=recipe.iw_k,
        train_elbo=round(train_elbo, 4), n_heldout_kernels=len(held), n_iw_kernels=n_iw, reference_elbo=reference_elbo,
    )
    vae = vae.cpu().eval()
    return FitResult(vae, metrics, kernel_stats(data.train.float()), seconds, history, device=str(dev))


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``module``'s state on the CPU (the last good weights of a fit, whatever its device)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
