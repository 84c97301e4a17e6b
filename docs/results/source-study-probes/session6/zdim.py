"""Probe (issue 11, session 6): does a wider latent sharpen the 7x7 prior's decoder means?

Refits the 7x7 kernel VAE (the paper's conv7 architecture, hidden 32) with z_dim in Z_DIMS on the kept
7x7 kernels of a study candidate (its cached ``kernels7.safetensors``: train / held-out nets as in the study)
at the study's budget (4,000 steps at batch 128), and writes each fit as a study candidate folder
``<candidate>-z<Z>`` (``vae7.safetensors``; ``vae5.safetensors`` copied from the candidate) that
``swap6.py`` can run VI with. Prints, per fit: held-out ELBO and IW log-likelihood, the latent's use
(mean KL(r(z|w) || N(0, I)) of held-out kernels, nats) and the median L2 norm of 2,000 decoder means of
z ~ N(0, I) against the real kept kernels' median.

Run from a frozen worktree's venv (the package installed there):
    python zdim.py w64-lr1e-2-b64-e15-aff 2,4,8
First harvest a kernel set from a folder of source nets into a candidate folder (the recipe's harvest rule):
    python zdim.py harvest NAME SOURCES_DIR N_NETS HELD_OUT(e.g. 44-47) [LAYER KS PRUNE]
"""
import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dwp_hub.card import ArchConfig
from dwp_hub.training.fit import FitRecipe, fit_vae
from dwp_hub.training.harvest import KernelDataset

WORK = Path("/work/runs/source-study/candidates")


def harvest_mode(args: list[str]) -> None:
    from dwp_hub.training.harvest import HarvestSpec, PruneRule, harvest

    name, sdir, n_nets, held = args[0], Path(args[1]), int(args[2]), args[3]
    layer, ks, cut = (args[4], int(args[5]), float(args[6])) if len(args) > 4 else ("0.weight", 7, 0.39)
    a, b = (int(x) for x in held.split("-"))
    paths = sorted(sdir.glob("*.safetensors"))[:n_nets]
    if len(paths) < n_nets:
        raise SystemExit(f"only {len(paths)} nets in {sdir}")
    spec = HarvestSpec(layer=layer, kernel_size=ks, prune=PruneRule(rule="min_norm", value=cut),
                       held_out=tuple(range(a, b + 1)), max_kernels_per_net=150 if ks == 5 else None)
    data = harvest(paths, spec)
    out = WORK / name
    out.mkdir(parents=True, exist_ok=True)
    save_file({"train": data.train.contiguous(), "held_out": data.held_out.contiguous()}, str(out / f"kernels{ks}.safetensors"))
    print(json.dumps({"candidate": name, "kernel_size": ks, "nets": n_nets, "train": len(data.train),
                      "held_out": len(data.held_out)}), flush=True)


def main() -> None:
    torch.set_num_threads(1)
    if sys.argv[1] == "harvest":
        harvest_mode(sys.argv[2:])
        return
    name, zdims = sys.argv[1], [int(z) for z in sys.argv[2].split(",")]
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
    kernels = load_file(str(WORK / name / "kernels7.safetensors"))
    data = KernelDataset(kernels["train"].contiguous(), kernels["held_out"].contiguous(), {})
    real = torch.cat([data.train, data.held_out]).flatten(1).norm(dim=1).median().item()
    for z in zdims:
        out = WORK / (f"{name}-z{z}" + ("" if steps == 4000 else f"-s{steps}"))
        out.mkdir(parents=True, exist_ok=True)
        cfg = {"kind": "conv7", "z_dim": z, "hidden": 32}
        epochs = max(1, round(steps / math.ceil(len(data.train) / 128)))
        t = time.time()
        res = fit_vae(data, ArchConfig(kernel_size=7, **cfg), FitRecipe(epochs=epochs, iw_k=1000, iw_max_kernels=500),
                      progress=False)
        vae = res.vae.eval()
        save_file(vae.state_dict(), str(out / "vae7.safetensors"), metadata={"arch": json.dumps({"kernel_size": 7, **cfg})})
        if (WORK / name / "vae5.safetensors").is_file():
            shutil.copy(WORK / name / "vae5.safetensors", out / "vae5.safetensors")
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            means = vae.decoder.mean(torch.randn(2000, z, generator=g)).flatten(1).norm(dim=1).median().item()
            mu, var = vae.encoder(data.held_out)
            kl = 0.5 * (var + mu.pow(2) - 1 - var.log()).flatten(1).sum(1).mean().item()
        row = {"candidate": name, "z_dim": z, "steps": steps, "n_train": len(data.train), "n_held_out": len(data.held_out),
               "heldout_elbo": res.metrics.heldout_elbo, "heldout_iw": res.metrics.heldout_iw_log_likelihood,
               "kl_nats": round(kl, 2), "decoder_mean_median_norm": round(means, 3), "real_median_norm": round(real, 3),
               "fit_seconds": round(time.time() - t, 1)}
        (out / "summary.json").write_text(json.dumps(row, indent=1))
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
