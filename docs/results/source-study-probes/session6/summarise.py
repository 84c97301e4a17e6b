"""Summarise the probe rows of sessions 6 and 7 (VALIDATION protocol): accuracy mean ± std over seeds per arm and size, and
the paired difference to the standard normal over the same seeds.

Inputs: bf16_check CSVs (``--precisions fp32`` runs of tools/bf16_check.py; arm = the row's deep weight priors,
or ``standard-normal``).

    python summarise.py shipped_vs_sn.csv
"""
import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

acc: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
for name in sys.argv[1:]:
    for r in csv.DictReader(Path(name).open()):
        arm = "standard-normal" if r["prior"] == "standard-normal" else r["dwp_priors"]
        acc[(arm, int(r["size"]))][int(r["seed"])] = float(r["acc_ensemble"])


def ms(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


sizes = sorted({s for _, s in acc})
print("| arm (7x7 prior, 5x5 prior) | " + " | ".join(f"N={s}" for s in sizes) + " | "
      + " | ".join(f"− standard normal, N={s}" for s in sizes) + " |")
print("|---" * (1 + 2 * len(sizes)) + "|")
for arm in sorted({a for a, _ in acc}, key=lambda a: (a != "standard-normal", a)):
    cells, diffs = [], []
    for s in sizes:
        runs = acc.get((arm, s), {})
        base = acc.get(("standard-normal", s), {})
        cells.append(f"{ms(list(runs.values()))} ({len(runs)})" if runs else "")
        paired = [runs[k] - base[k] for k in runs if k in base]
        diffs.append(("+" if statistics.mean(paired) >= 0 else "") + ms(paired) if paired and arm != "standard-normal" else "")
    print(f"| {arm} | " + " | ".join(cells) + " | " + " | ".join(diffs) + " |")
