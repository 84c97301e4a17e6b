"""Helpers shared by the tests (imported as ``from helpers import ...``; fixtures stay in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from dwp_hub.card import ArchConfig
from dwp_hub.inference import BayesConv2d
from dwp_hub.training.fit import FitRecipe, fit_vae
from dwp_hub.training.harvest import KernelDataset
from dwp_hub.training.publish import make_card, source_info, write_version_folder

REPO = Path(__file__).resolve().parents[1]
TINY = {  # name -> (arch, versions)
    "tiny-7x7": (ArchConfig("conv7", 7, 2, 8), ("1.0.0", "1.1.0")),
    "tiny-5x5": (ArchConfig("conv5", 5, 4, 8), ("1.0.0",)),
    "tiny-3x3": (ArchConfig("mlp", 3, 4, 16), ("1.0.0",)),
}


def synthetic_kernels(k: int, n: int = 240, n_held: int = 40, seed: int = 0) -> KernelDataset:
    """Smooth random kernels (Gaussian blobs plus noise) with harvest-style metadata."""
    g = torch.Generator().manual_seed(seed)
    xs = torch.linspace(-1, 1, k)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    def draw(m: int) -> torch.Tensor:
        cx, cy = torch.rand(m, 1, 1, generator=g) * 2 - 1, torch.rand(m, 1, 1, generator=g) * 2 - 1
        amp = torch.randn(m, 1, 1, generator=g) * 0.3
        blob = amp * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) * 3)
        return (blob + 0.02 * torch.randn(m, k, k, generator=g)).unsqueeze(1)
    meta = {
        "layer_pattern": "0.weight", "layers": ["0.weight"], "kernel_size": k,
        "prune": {"rule": "none", "value": 0.0, "threshold": 0.0, "description": "keep all kernels"},
        "kernels_total": n + n_held, "kernels_kept": n + n_held, "n_train": n, "n_held_out": n_held,
        "held_out_nets": [3], "sources": [{"file": f"net{i}.safetensors", "sha256": "0" * 64} for i in range(4)],
        "source": {"dataset": "synthetic", "dataset_sha256": "", "network": "synthetic", "protocol": "tests"},
    }
    return KernelDataset(draw(n), draw(n_held), meta)


def build_tiny_prior(folder: Path, name: str, arch: ArchConfig, seed: int = 0, epochs: int = 2) -> Path:
    """Fit a tiny prior and write an unpublished version folder."""
    data = synthetic_kernels(arch.kernel_size, seed=seed)
    recipe = FitRecipe(epochs=epochs, seed=seed, iw_k=16, iw_max_kernels=16)
    result = fit_vae(data, arch, recipe, progress=False)
    card = make_card(result, data, arch, recipe, name=name, version="0.0.0",
                     description=f"Tiny test prior {name}.", source=source_info(data))
    return write_version_folder(folder, result.vae, card, data.held_out)


def bayes_layer(out: int = 8, inp: int = 4, k: int = 5, log_s2: float = -4.0, seed: int = 0) -> BayesConv2d:
    """A Bayesian conv layer with random means (std 0.1) and log σ² spread around ``log_s2``."""
    torch.manual_seed(seed)
    layer = BayesConv2d(inp, out, k, log_sigma2_init=log_s2)
    with torch.no_grad():
        layer.weight.normal_(0, 0.1)
        layer.log_sigma2.uniform_(log_s2 - 1, log_s2 + 1)
    return layer


def tiny_data(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random 28x28 images and labels ``arange(n) % 10``."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10
