"""Decoder means and noise of the shipped priors for z ~ N(0, I): python decoder_stats.py [SPEC ...]."""
import sys

import torch

import dwp_hub

torch.manual_seed(0)
q = torch.tensor([0.05, 0.5, 0.95])
for spec in sys.argv[1:] or ["notmnist-7x7@1.2.0", "notmnist-5x5@1.1.0"]:
    prior = dwp_hub.load(spec)
    with torch.no_grad():
        mu, var = prior.decode(torch.randn(4096, prior.z_dim))
    sample = mu + var.sqrt() * torch.randn_like(mu)
    fmt = lambda t: " / ".join(f"{float(x):.3f}" for x in torch.quantile(t.flatten(1).norm(dim=1), q))  # noqa: E731
    print(f"{spec}: decoder-mean L2 norms q05/median/q95 {fmt(mu)}; decoder std per weight, median "
          f"{float(var.sqrt().median()):.4f}; prior-sample norms {fmt(sample)}")
