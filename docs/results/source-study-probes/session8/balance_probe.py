"""Probe (issue 11, session 8): per-unit incoming / outgoing norms of source net IDX of the shipped 7x7 recipe
(trained into OUT if absent). Run from a frozen worktree, PYTHONPATH its root:
    DWP_HUB_DATA=../shared/data python balance_probe.py OUT 0
"""
import sys, torch
from pathlib import Path
from dwp_hub.training.source import SourceRecipe, train_one
from dwp_hub.training.harvest import read_checkpoint
from dwp_hub.model.nets import NetConfig
out = Path(sys.argv[1]); idx = int(sys.argv[2])
r = SourceRecipe(dataset="notmnist", net=NetConfig("fconv", (64, 32)), n_nets=1, epochs=15, seed=0, lr=0.01, batch_size=64, l2=0.001)
p = out / f"notmnist-fconv-{idx:03d}.safetensors"
if not p.exists():
    p = train_one(r, idx, out, threads=1)
st, meta = read_checkpoint(p)
w1, b1, w2 = st["0.weight"], st["0.bias"], st["3.weight"]
a = (w1.flatten(1).norm(dim=1)**2 + b1**2).sqrt()
o = w2.transpose(0, 1).flatten(1).norm(dim=1)
kept = w1.flatten(1).norm(dim=1) >= 0.39
print("val", meta["val_accuracy"], "kept", int(kept.sum()))
s = (o / a).sqrt()
for i in torch.argsort(-a)[:20]:
    print(f"c{int(i):2d} |w1|={float(w1[i].norm()):.3f} |b1|={float(b1[i].abs()):.3f} |w2_in|={float(o[i]):.3f} balanced |w1|={float(w1[i].norm()*s[i]):.3f}")
