"""Markdown table of trajectory.jsonl (the rows trajectory.py appends): python table.py trajectory.jsonl"""
import json
import sys


def fmt(v, nd=2):
    return "-" if v is None else f"{v:.{nd}f}"


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1])]
    print("| run | epoch | steps | val acc | L2 term | 7x7 kept | kept median (balanced) | 7x7 low-freq | 7x7 abs cos "
          "| 5x5 kept | 5x5 median (balanced) | 5x5 low-freq |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t, b = r["trained"], r["balanced"]
        print(f"| {r['name']} | {r['epoch']} | {r['steps']:,} | {fmt(r['val_acc'], 3)} | {r['l2_term']:.1f} "
              f"| {t['k7_frac_kept']:.0%} | {fmt(t['k7_kept_norm_q50'])} ({fmt(b['k7_kept_norm_q50'])}) "
              f"| {fmt(t['k7_kept_low_freq'])} | {fmt(t['k7_kept_abs_cos'])} | {t['k5_frac_kept']:.0%} "
              f"| {fmt(t['k5_kept_norm_q50'], 3)} ({fmt(b['k5_kept_norm_q50'], 3)}) | {fmt(t['k5_kept_low_freq'])} |")


if __name__ == "__main__":
    main()
