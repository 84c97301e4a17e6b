"""Probe (issue 11, session 7): first-layer width and training length against 7x7 kernel statistics.

Trains a few fconv(W, 32) source nets per recipe on the 9,000 notMNIST-10k training images (the shipped
recipe's optimiser: Adam 1e-2 with linear decay, batch 64, L2 1e-3) and prints the statistics of their first-layer
kernels: all-kernel norm quantiles, the share kept at the paper's cutoff (L2 >= 0.39; the paper's released
kernels: 8.6% kept, median 1.36), kept-norm quantiles and the low-frequency energy share (tools/source_study.py's
kernel_stats; train_seconds from the checkpoints' headers, 1 thread per net, 2 nets at once).
Run from a frozen worktree's venv:
    DWP_HUB_DATA=../shared/data python width.py WORK_DIR NAME=WIDTH:EPOCHS:NETS[:LR] ...
"""
import json
import statistics
import sys
from pathlib import Path

import torch

from dwp_hub.model.nets import NetConfig
from dwp_hub.training.harvest import read_checkpoint
from dwp_hub.training.source import SourceRecipe, source_dir, train_sources
from tools.source_study import kernel_stats


def stats(paths: list[Path]) -> dict:
    ckpts = [read_checkpoint(p) for p in paths]
    ks = torch.cat([state["0.weight"].reshape(-1, 7, 7) for state, _ in ckpts])
    return {"nets": len(paths), "val_acc": round(statistics.mean(m["val_accuracy"] for _, m in ckpts), 4),
            "train_seconds_per_net": [m["train_seconds"] for _, m in ckpts],
            **kernel_stats(ks, ks[ks.flatten(1).norm(dim=1) >= 0.39])}


def main() -> None:
    work = Path(sys.argv[1])
    for arg in sys.argv[2:]:
        name, spec = arg.split("=")
        parts = spec.split(":")
        width, epochs, nets = int(parts[0]), int(parts[1]), int(parts[2])
        lr = float(parts[3]) if len(parts) > 3 else 1e-2
        r = SourceRecipe(dataset="notmnist", net=NetConfig("fconv", (width, 32)), n_nets=nets, seed=0, epochs=epochs,
                         lr=lr, batch_size=64, l2=1e-3)
        d = source_dir(r, work)
        paths = train_sources(r, d, workers=2, progress=False)
        print(json.dumps({"name": name, "width": width, "epochs": epochs, "lr": lr, "dir": d.name, **stats(paths)}),
              flush=True)


if __name__ == "__main__":
    main()
