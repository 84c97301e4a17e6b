"""Listing priors without importing torch (used by ``dwp-hub list`` and ``info``)."""

from __future__ import annotations

from dataclasses import dataclass

from dwp_hub.card import PriorCard
from dwp_hub.registry import LocalRegistry, Resolved, registries, resolve


@dataclass(frozen=True)
class PriorInfo:
    """One published version as the index describes it."""

    name: str
    version: str
    kernel_size: int
    source: str
    heldout_elbo: float | None
    registry: str
    description: str
    latest: bool

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


def list_priors(all_versions: bool = False, regs: list[LocalRegistry] | None = None) -> list[PriorInfo]:
    """Priors in every local registry, newest version first per name.

    Args:
        all_versions: include every version, not only the newest of each name.
    """
    regs = registries() if regs is None else regs
    rows: dict[tuple[str, str], PriorInfo] = {}
    for reg in regs:
        for name, versions in reg.index().items():
            for version, entry in versions.items():
                rows.setdefault((name, version), PriorInfo(
                    name, version, int(entry.get("kernel_size", 0)), str(entry.get("source", "")),
                    entry.get("heldout_elbo"), reg.label, str(entry.get("description", "")), False))
    out = []
    for name in sorted({n for n, _ in rows}):
        resolved = resolve(name, regs)
        for key in sorted((k for k in rows if k[0] == name), key=lambda k: tuple(map(int, k[1].split("."))), reverse=True):
            info = rows[key]
            latest = key[1] == str(resolved.version)
            if latest or all_versions:
                out.append(PriorInfo(**{**info.__dict__, "latest": latest}))
    return out


def prior_card(spec: str) -> tuple[Resolved, PriorCard]:
    """Resolve ``spec`` in the local registries and read its card (no torch, no hashing)."""
    resolved = resolve(spec)
    return resolved, resolved.registry.card(resolved.name, resolved.version)
