"""The commands that added rows to a results CSV, kept in a text file beside it (one per line).

A reproduction's report names every command that produced its rows, not just the last one run.
"""

from __future__ import annotations

from pathlib import Path


def record(log: Path, command: str) -> None:
    """Append ``command`` to ``log`` unless it is already there."""
    if command in commands(log):
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh:
        fh.write(command + "\n")


def commands(log: Path) -> list[str]:
    """The recorded commands, oldest first (empty when there is no log)."""
    return [c for c in log.read_text().splitlines() if c.strip()] if log.exists() else []
