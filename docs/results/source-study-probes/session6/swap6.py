"""Probe (issue 11, session 6): VI on the VALIDATION protocol with a chosen prior per layer, on today's engine.

An arm is ``A|B``: A the prior of the 7x7 layer, B of the 5x5 layer, each a hub spec (``notmnist-7x7@1.2.0``), a
study candidate folder name under /work/runs/source-study/candidates (its vae7 / vae5), or ``sn`` (standard
normal). The paper's net (fconv 32/128), 400 steps at batch 50, dwp initialisation where the layer has a deep
weight prior, the fast bound's defaults; accuracy of a 10-pass MC ensemble on MNIST-10k images 2500-4999.
Rows are appended to OUT (JSON lines); a (arm, size, seed) already there is skipped.

    PYTHONPATH=<frozen worktree> python swap6.py "w64-lr1e-2-b64-e15-aff-z4|notmnist-5x5@1.1.0,..." 50,100 0-4 rows.jsonl
"""
import json
import math
import sys
import time
from pathlib import Path

import torch

import dwp_hub
from dwp_hub.data import mnist10k_protocol
from dwp_hub.inference import VIRecipe, fit_vi
from dwp_hub.paper import paper_net

WORK = Path("/work/runs/source-study/candidates")


def prior_for(ks: int, spec: str):
    if spec == "sn":
        return "standard-normal"
    if "@" in spec:
        return dwp_hub.load(spec)
    from tools.source_study import load_vae
    return load_vae(WORK / spec / f"vae{ks}.safetensors")


def seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    torch.set_num_threads(1)
    arms, sizes, seed_list, out = sys.argv[1].split(","), [int(s) for s in sys.argv[2].split(",")], seeds(sys.argv[3]), Path(sys.argv[4])
    done = set()
    if out.exists():
        done = {(r["arm"], r["size"], r["seed"]) for r in map(json.loads, out.read_text().splitlines())}
    for arm in arms:
        s7, s5 = arm.split("|")
        for size in sizes:
            for seed in seed_list:
                if (arm, size, seed) in done:
                    continue
                t = time.time()
                split = mnist10k_protocol(size, seed, protocol="validation")
                table = {7: prior_for(7, s7), 5: prior_for(5, s5)}
                model = paper_net("dwp", dwp_priors=table, seed=seed)
                epochs = max(1, round(400 / math.ceil(size / 50)))
                res = fit_vi(model, split.x_train, split.y_train, VIRecipe(epochs=epochs, batch_size=50, seed=seed),
                             x_eval=split.x_eval, y_eval=split.y_eval, progress=False)
                row = {"arm": arm, "size": size, "seed": seed, "protocol": split.protocol,
                       "acc": round(res.metrics["acc_ensemble"], 4), "seconds": round(time.time() - t, 1)}
                print(json.dumps(row), flush=True)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
