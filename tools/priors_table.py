"""Render the table of shipped priors (docs/results/priors.md and the README) from their cards.

Usage: python tools/priors_table.py [--write]   (prints the table; --write also updates
docs/results/priors.md and the PRIORS block of README.md)

"Does it help?" reads the transfer benefit from each card (builds with a ``transfer:`` recipe section
measure it) or, for versions published before that, from ``docs/results/transfer/shipped.jsonl``
(``tools/transfer_table.py``, the same measurement).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dwp_hub._listing import list_priors, prior_card
from dwp_hub.card import PriorCard

ROOT = Path(__file__).resolve().parents[1]


def embedded_cards() -> Iterator[PriorCard]:
    """The cards of the priors embedded in the package, in the listing's order."""
    for info in list_priors():
        if info.registry == "embedded":
            yield prior_card(info.spec)[1]


def table() -> str:
    rows = [
        "| prior | kernels | source | kept / harvested | held-out ELBO | held-out IW log-lik (K) | authors' ELBO | fit time | build time (peak mem) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in embedded_cards():
        m, t, k = c.metrics, c.training, c.kernels
        ref = f"{m.reference_elbo:.1f}" if m.reference_elbo is not None else "-"
        build = (f"{t.build_seconds / 60:.1f} min ({t.build_peak_memory_mb:.0f} MiB)"
                 if t.build_seconds is not None else "-")
        rows.append(
            f"| `{c.spec}` | {c.arch.kernel_size}x{c.arch.kernel_size} | {c.source.domain}: {c.source.n_networks} x "
            f"{c.source.network}, `{c.source.layer}` | {k.kept} / {k.total} | {m.heldout_elbo:.2f} | "
            f"{m.heldout_iw_log_likelihood:.2f} ({m.iw_k}) | {ref} | {t.seconds / 60:.1f} min | {build} |"
        )
    return "\n".join(rows)


def _measured() -> dict[str, dict[str, Any]]:
    path = ROOT / "docs" / "results" / "transfer" / "shipped.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["prior"]: r for r in rows}


def transfer_table() -> str:
    """How much each prior helps: VI accuracy with the prior on its layer against the standard normal."""
    measured = _measured()
    rows = [
        "| prior | target (protocol) | N | seeds | steps | with the prior | standard normal | benefit (paired) | from |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in embedded_cards():
        t = c.transfer
        if t is not None:
            d = {"spec": {"dataset": t.dataset, "protocol": t.protocol, "n_train": t.n_train, "seeds": t.seeds,
                          "steps": t.steps}, "acc_prior": t.acc_prior, "acc_standard_normal": t.acc_standard_normal,
                 "benefit": t.benefit, "benefit_std": t.benefit_std}
            src = "card"
        elif c.spec in measured:
            d, src = measured[c.spec], "`docs/results/transfer/shipped.jsonl`"
        else:
            why = ("n/a: the paper's net has no 3x3 layer" if c.arch.kernel_size not in (5, 7) else "not measured")
            rows.append(f"| `{c.spec}` | {why} | | | | | | | |")
            continue
        sp = d["spec"]
        rows.append(
            f"| `{c.spec}` | {sp['dataset']} ({sp['protocol']}) | {sp['n_train']} | {len(sp['seeds'])} | {sp['steps']} | "
            f"{statistics.mean(d['acc_prior']):.3f} | {statistics.mean(d['acc_standard_normal']):.3f} | "
            f"{d['benefit']:+.3f} ± {d['benefit_std']:.3f} | {src} |"
        )
    return "\n".join(rows)


def main() -> None:
    help_note = ("Does it help? VI of the paper's net (fconv 32/128, 400 steps at batch 50) with the prior on the layer "
                 "of its kernel size and the standard normal elsewhere, against the standard normal everywhere, on the "
                 "same subsets; a notMNIST prior is scored on MNIST-10k, an MNIST prior on notMNIST-10k. Benefit: mean "
                 "± std of the paired difference over seeds.\n")
    text = table() + "\n\n" + help_note + "\n" + transfer_table()
    print(text)
    if "--write" in sys.argv:
        note = ("Metrics are nats per kernel on kernels of held-out source networks (higher is better), read from "
                "each prior's card; regenerate with `python tools/priors_table.py --write`.\n")
        (ROOT / "docs" / "results").mkdir(parents=True, exist_ok=True)
        (ROOT / "docs" / "results" / "priors.md").write_text("# Shipped priors\n\n" + note + "\n" + text + "\n")
        readme = (ROOT / "README.md").read_text()
        block = f"<!-- PRIORS:START -->\n{text}\n\n{note}<!-- PRIORS:END -->"
        readme = re.sub(r"<!-- PRIORS:START -->.*<!-- PRIORS:END -->", lambda _: block, readme, flags=re.DOTALL)
        (ROOT / "README.md").write_text(readme)


if __name__ == "__main__":
    main()
