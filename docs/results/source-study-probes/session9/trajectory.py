"""Probe (issue 11, session 9): do first-layer kernels reach the paper's regime with the paper's step and length?

Trains one fconv(W, 32) source net per recipe on the 9,000 notMNIST-10k training images with the paper's optimiser
(Adam 1e-3 with linear decay to 0, batch 256, L2 1e-3 on the conv parameters) for about the paper's number of steps
(650 epochs of 36 steps = 23,400; the paper: 100 epochs of notMNIST's 60k images, about 23,000 steps), and records
the kernels' statistics along the run (train_one's ``inspect`` hook; nothing changes the net):
7x7 kernels as trained and balanced (dwp_hub.training.balance: the L2 term's minimum over function-preserving
rescalings), kept at the paper's cutoff L2 >= 0.39 (the paper's released kernels: 8.6% kept of width 256, median
1.36); 5x5 kept at >= 0.131 (paper median about 0.17); statistics by tools/source_study.py's kernel_stats
(low-freq: share of energy at |f| <= 1, white noise 0.18 for 7x7). The state at each recorded epoch is saved
beside the rows so kernel VAEs can be fitted on it later.
Run from a frozen worktree (PYTHONPATH its root), one thread:
    DWP_HUB_DATA=../shared/data python trajectory.py OUT_DIR NAME=WIDTH:EPOCHS:AUGMENT[:SEED] ...
Rows are appended to OUT_DIR/trajectory.jsonl (one per recorded epoch).
"""
import json
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from dwp_hub.model.nets import NetConfig, build_net
from dwp_hub.training.balance import balance_state
from dwp_hub.training.source import SourceRecipe, train_one
from tools.source_study import kernel_stats

RECORD = {10, 20, 40, 80, 160, 320, 480, 650}


def _stats(kernels: torch.Tensor, cutoff: float) -> dict:
    kept = kernels[kernels.flatten(1).norm(dim=1) >= cutoff]
    if len(kept) < 2:  # early in a run nothing may pass the cutoff yet
        return {"n_kept": len(kept), "frac_kept": len(kept) / len(kernels)} | dict.fromkeys(
            ("kept_norm_q05", "kept_norm_q50", "kept_norm_q95", "kept_low_freq", "kept_abs_cos"))
    return kernel_stats(kernels, kept)


def stats(state: dict, cutoff7: float = 0.39, cutoff5: float = 0.131) -> dict:
    k7 = state["0.weight"].reshape(-1, 7, 7).float()
    k5 = state["3.weight"].reshape(-1, 5, 5).float()
    s7, s5 = (_stats(k, c) for k, c in ((k7, cutoff7), (k5, cutoff5)))
    keep = ("frac_kept", "kept_norm_q05", "kept_norm_q50", "kept_norm_q95", "kept_low_freq", "kept_abs_cos", "n_kept")
    return {**{f"k7_{k}": s7[k] for k in keep}, **{f"k5_{k}": s5[k] for k in keep}}


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for arg in sys.argv[2:]:
        name, spec = arg.split("=")
        parts = spec.split(":")
        width, epochs, augment = int(parts[0]), int(parts[1]), parts[2]
        seed = int(parts[3]) if len(parts) > 3 else 0
        cfg = NetConfig("fconv", (width, 32))
        recipe = SourceRecipe(dataset="notmnist", net=cfg, n_nets=1, seed=seed, epochs=epochs, lr=1e-3,
                              batch_size=256, l2=1e-3, augment=augment)
        arch = build_net(cfg)
        accs: dict[int, float] = {}
        t0 = time.perf_counter()

        def on_epoch(epoch: int, acc: float) -> None:
            accs[epoch + 1] = acc

        def inspect(epoch: int, net: torch.nn.Module) -> None:
            e = epoch + 1
            if e not in RECORD and e != epochs:
                return
            state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            bal, rep = balance_state(state, arch)
            l2 = sum(float((state[k] ** 2).sum()) for k in ("0.weight", "0.bias", "3.weight", "3.bias"))
            row = {"name": name, "width": width, "epochs": epochs, "augment": augment, "seed": seed, "epoch": e,
                   "steps": e * 36, "val_acc": accs.get(e), "l2_term": round(l2, 3),
                   "seconds": round(time.perf_counter() - t0, 1),
                   "trained": stats(state), "balanced": stats({k: v.float() for k, v in bal.items()})}
            with open(out / "trajectory.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            save_file({k: v.contiguous() for k, v in state.items()}, str(out / f"{name}-e{e:04d}.safetensors"))
            print(json.dumps({k: row[k] for k in ("name", "epoch", "val_acc", "seconds")}),
                  row["trained"]["k7_frac_kept"], row["trained"]["k7_kept_norm_q50"], row["trained"]["k7_kept_low_freq"],
                  flush=True)

        train_one(recipe, 0, out / name, threads=1, on_epoch=on_epoch, inspect=inspect)


if __name__ == "__main__":
    main()
