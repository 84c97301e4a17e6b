"""Probe (issue 11, session 7): how much of a prior's kernel energy its decoder explains.

For each NAME@VERSION prior: the median L2 norm of 4,000 decoder means of z ~ N(0, I) (the paper's initialisation),
the median norm of 4,000 true samples (decoder noise added), and the std of the decoder noise (samples minus
means; the fast bound pulls a weight towards the decoder mean with precision 1 / variance).

    DWP_HUB_REGISTRY=... python decoder.py notmnist-7x7@1.2.0 cand7-z2@1.0.0 ...
"""
import json
import sys

import torch

import dwp_hub


def main() -> None:
    torch.manual_seed(0)
    for spec in sys.argv[1:]:
        prior = dwp_hub.load(spec)
        g = torch.Generator().manual_seed(0)
        means = prior.sample(4000, generator=g, noise=False).flatten(1)
        draws = prior.sample(4000, generator=torch.Generator().manual_seed(1)).flatten(1)
        std = (draws - means).std().item()
        print(json.dumps({"prior": spec, "z_dim": prior.z_dim,
                          "decoder_mean_norm_median": round(means.norm(dim=1).median().item(), 3),
                          "sample_norm_median": round(draws.norm(dim=1).median().item(), 3),
                          "decoder_noise_std": round(std, 4)}), flush=True)


if __name__ == "__main__":
    main()
