"""Probe (issue 11, session 10): why does mnist-7x7 lower notMNIST accuracy (the reverse direction)?

The shipped transfer check (docs/results/transfer/shipped.jsonl) puts mnist-7x7@1.1.0 on the 7x7 layer of the
paper's net (the 5x5 layer under the standard normal) and finds 0.572 against 0.650 on notMNIST (test protocol,
N=50, 5 seeds). This separates the prior from its initialisation on the VALIDATION protocol (notMNIST-10k: N
stratified from images 0-2499, accuracy on 2500-4999), 400 steps at batch 50, MC ensemble of 10, per seed:
  sn          standard normal on both layers, Xavier means
  dwp         the 7x7 prior with decoder-mean initialisation (the transfer check's arm)
  dwp-xavier  the 7x7 prior with Xavier means
  sn-dwp-init standard normal on both layers, 7x7 means from the prior's decoder
Rows are appended to OUT (JSON lines) and finished (arm, seed) pairs are skipped, so a rerun resumes.
From a frozen worktree:
    DWP_HUB_DATA=../shared/data python reverse.py OUT PRIOR_SPEC SEEDS [N] [ARMS]
"""
import json
import sys
import time
from pathlib import Path

import torch

from dwp_hub.data import mnist10k_protocol
from dwp_hub.inference import VIRecipe, fit_vi
from dwp_hub.paper import paper_net

ARMS = {"sn": ("standard-normal", "xavier"), "dwp": ("dwp", "dwp"), "dwp-xavier": ("dwp", "xavier"),
        "sn-dwp-init": ("standard-normal", "dwp")}


def main() -> None:
    out, spec, seeds = Path(sys.argv[1]), sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    arms = sys.argv[5].split(",") if len(sys.argv) > 5 else list(ARMS)
    torch.set_num_threads(1)
    done = set()
    if out.exists():
        done = {(r["prior_spec"], r["arm"], r["seed"], r["n"]) for r in map(json.loads, out.read_text().splitlines())}
    for seed in seeds:
        split = mnist10k_protocol(n, seed, protocol="validation", dataset="notmnist")
        recipe = VIRecipe(epochs=max(1, round(400 / -(-n // 50))), batch_size=50, seed=seed)
        for arm in arms:
            if (spec, arm, seed, n) in done:
                continue
            prior, init = ARMS[arm]
            table = {7: spec, 5: "standard-normal"}
            t0 = time.time()
            model = paper_net(prior, dwp_priors=table, seed=seed, init=init)
            res = fit_vi(model, split.x_train, split.y_train, recipe, x_eval=split.x_eval, y_eval=split.y_eval,
                         progress=False)
            row = {"prior_spec": spec, "arm": arm, "seed": seed, "n": n, "acc": round(res.metrics["acc_ensemble"], 4),
                   "protocol": split.protocol, "seconds": round(time.time() - t0, 1)}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
