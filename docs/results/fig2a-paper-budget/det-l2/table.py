"""Render det_l2.jsonl as table.md (seeds that every L2 weight has; paired differences to the default 1e-3).

    python table.py det_l2.jsonl > table.md
"""

import json
import statistics as st
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
l2s = sorted({r["l2"] for r in rows})
acc = {(r["l2"], r["seed"]): r["acc"] for r in rows}
nll = {(r["l2"], r["seed"]): r["nll"] for r in rows}
full = [s for s in sorted({r["seed"] for r in rows}) if all((w, s) in acc for w in l2s)]
print("| L2 weight | " + " | ".join(f"seed {s}" for s in full) + " | mean acc | mean NLL | − 1e-3 (paired) |")
print("|---|" + "---|" * (len(full) + 3))
for w in l2s:
    a, n = [acc[(w, s)] for s in full], [nll[(w, s)] for s in full]
    d = [acc[(w, s)] - acc[(1e-3, s)] for s in full]
    diff = "" if w == 1e-3 else f"{st.mean(d):+.3f} ± {st.stdev(d):.3f}" if len(d) > 1 else f"{d[0]:+.3f}"
    print(f"| {w:g} | " + " | ".join(f"{x:.3f}" for x in a) + f" | {st.mean(a):.3f} | {st.mean(n):.3f} | {diff} |")
