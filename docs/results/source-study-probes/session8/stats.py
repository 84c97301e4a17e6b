"""Probe (issue 11, session 8): kernel statistics of source nets before and after harvest.balance.

For the source nets of one recipe (a sources-* folder that dwp-hub build trained), prints the 7x7 (first layer,
L2 >= 0.39 kept) and 5x5 (second layer, L2 >= 0.131 kept) kernel statistics of tools/source_study.py's
kernel_stats, as trained and balanced (dwp_hub.training.balance: each net moved to its L2 term's balanced point,
function unchanged), plus the L2 term before and after. The paper's released 7x7 kernels: 8.6% kept, median norm
1.36; its 5x5 kernels: median 0.17. Run from a frozen worktree's venv, PYTHONPATH its root:
    python stats.py SOURCES_DIR > stats.jsonl
"""
import json
import sys
from pathlib import Path

import torch

from dwp_hub.model.nets import NetConfig, build_net
from dwp_hub.training.balance import balance_state
from dwp_hub.training.harvest import read_checkpoint
from tools.source_study import kernel_stats

CUTS = {"0.weight": (7, 0.39), "3.weight": (5, 0.131)}


def main() -> None:
    paths = sorted(Path(sys.argv[1]).glob("*.safetensors"))
    kernels = {(b, n): [] for b in (False, True) for n in CUTS}
    l2 = {False: 0.0, True: 0.0}
    for p in paths:
        state, meta = read_checkpoint(p)
        net = build_net(NetConfig.from_dict(meta["recipe"]["net"]))
        bal, report = balance_state(state, net)
        l2[False] += report.penalty_before / len(paths)
        l2[True] += report.penalty_after / len(paths)
        for b, s in ((False, state), (True, bal)):
            for n, (k, _) in CUTS.items():
                kernels[(b, n)].append(s[n].reshape(-1, k, k))
    for (b, n), ks in kernels.items():
        ks = torch.cat(ks)
        k, cut = CUTS[n]
        row = {"layer": n, "kernel": f"{k}x{k}", "balanced": b, "nets": len(paths), "l2_term_mean": round(l2[b], 3),
               **kernel_stats(ks, ks[ks.flatten(1).norm(dim=1) >= cut])}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
