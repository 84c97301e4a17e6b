"""Probe (issue 11, session 7): how much of a prior's kernel energy its decoder explains.

For each NAME@VERSION prior: the median L2 norm of 4,000 decoder means of z ~ N(0, I) (the paper's initialisation),
the median norm of 4,000 true samples (decoder noise added), and the decoder noise std (root of the mean decoder variance at
those z; the fast bound pulls a weight towards the decoder mean with precision 1 / variance).

    DWP_HUB_REGISTRY=... python decoder.py notmnist-7x7@1.2.0 cand7-z2@1.0.0 ...
"""
import json
import sys

import torch

import dwp_hub


def main() -> None:
    for spec in sys.argv[1:]:
        prior = dwp_hub.load(spec)
        z = torch.randn(4000, prior.z_dim, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            mean, var = prior.vae.decoder(z)
        std = var.sqrt()
        draws = mean + std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
        print(json.dumps({"prior": spec, "z_dim": prior.z_dim,
                          "decoder_mean_norm_median": round(mean.flatten(1).norm(dim=1).median().item(), 3),
                          "sample_norm_median": round(draws.flatten(1).norm(dim=1).median().item(), 3),
                          "decoder_noise_std": round(std.pow(2).mean().sqrt().item(), 4)}), flush=True)


if __name__ == "__main__":
    main()
