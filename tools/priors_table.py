"""Render the table of shipped priors (docs/results/priors.md and the README) from their cards.

Usage: python tools/priors_table.py [--write]   (prints the table; --write also updates
docs/results/priors.md and the PRIORS block of README.md)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from dwp_hub._listing import list_priors, prior_card

ROOT = Path(__file__).resolve().parents[1]


def table() -> str:
    rows = [
        "| prior | kernels | source | kept / harvested | held-out ELBO | held-out IW log-lik (K) | authors' ELBO | fit time | build time (peak mem) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for info in list_priors():
        if info.registry != "embedded":
            continue
        _, c = prior_card(info.spec)
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


def main() -> None:
    text = table()
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
