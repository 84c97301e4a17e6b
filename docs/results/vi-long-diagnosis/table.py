"""Render diag.py's JSON lines as the README's table: python table.py FILE.jsonl [FILE.jsonl ...]."""
import json
import sys

cols = ["run", "step", "acc (ensemble)", "acc (mean weights)", "data term N·CE", "KL (nats)"]
for layer in ("0", "3"):
    cols += [f"layer {layer}: mean log σ²", "mean abs θ", "median σ/abs θ"]
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
for path in sys.argv[1:]:
    name = path.rsplit("/", 1)[-1].removesuffix(".jsonl")
    for line in open(path):
        r = json.loads(line)
        cells = [name, str(r["step"]), f"{r['acc_ensemble']:.3f}", f"{r['acc_mean']:.3f}", f"{r['data']:.2f}",
                 f"{r['kl']:.0f}"]
        for layer in ("0", "3"):
            s = r["layers"][layer]
            cells += [f"{s['log_s2']:.2f}", f"{s['abs_theta']:.4f}", f"{s['sigma_over_theta']:.3f}"]
        print("| " + " | ".join(cells) + " |")
