"""The dwp-hub demo: load a shipped prior, show its card, initialise the paper's MNIST net, draw samples.

Run with ``make demo`` (or ``python tools/demo.py`` inside the environment). Writes
``dwp-demo-samples.png`` in the current directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from rich.console import Console

import dwp_hub
from dwp_hub.errors import PriorNotFoundError
from dwp_hub.model.nets import NetConfig, build_net

console = Console()


def main() -> int:
    try:
        prior7 = dwp_hub.load("notmnist-7x7")
        prior5 = dwp_hub.load("notmnist-5x5")
    except PriorNotFoundError as err:
        console.print(f"[red]The demo needs the shipped notMNIST priors:[/red] {err}\n"
                      "Build them with: dwp-hub build tools/recipes/notmnist-7x7.yaml --to priors")
        return 1
    card = prior7.card
    m = card.metrics
    console.rule(f"[bold]{card.spec}[/bold]")
    console.print(card.description)
    console.print(f"source: {card.source.n_networks} x {card.source.network} on {card.source.domain}, "
                  f"layer {card.source.layer}; {card.kernels.kept} kernels kept of {card.kernels.total}")
    console.print(f"held-out ELBO {m.heldout_elbo:.2f} nats/kernel (authors' release: {m.reference_elbo}), "
                  f"IW log-likelihood {m.heldout_iw_log_likelihood:.2f} (K={m.iw_k})")
    console.print(f"weights sha256 {card.weights_sha256[:16]}..., created {card.created}")

    console.rule("[bold]Initialise the paper's MNIST net (fconv 32/128) from the hub priors[/bold]")
    net = build_net(NetConfig("fconv", (32, 128)))
    report = dwp_hub.init_model(net, [prior7, prior5], generator=torch.Generator().manual_seed(0))
    console.print(str(report))

    out = Path("dwp-demo-samples.png").resolve()
    kernels = prior7.sample(64, generator=torch.Generator().manual_seed(0), noise=False)
    dwp_hub.plot_kernels(kernels, out, f"{card.spec}: 64 samples")
    console.print(f"Wrote a grid of 64 sampled kernels to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
