"""Results CSVs of the reproduction scripts: rows appended as runs finish (fsynced, so a killed run
loses nothing written), and the commands that added rows, kept in a text file beside the CSV (one per
line): a report names every command that produced its rows, not just the last one run.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results CSV (``[]`` when it does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def append_row(path: Path, row: dict[str, Any], fields: Sequence[str]) -> None:
    """Append ``row`` (only ``fields``, in order); a CSV written with other columns is rewritten first
    under the current header (atomically), so old CSVs stay readable as columns are added."""
    new = not path.exists() or path.stat().st_size == 0
    path.parent.mkdir(parents=True, exist_ok=True)
    if not new:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), [])
        if tuple(header) != tuple(fields):
            old = read_rows(path)
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(fields))
                writer.writeheader()
                for r in old:
                    writer.writerow({k: r.get(k, "") for k in fields})
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields))
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in fields})
        fh.flush()
        os.fsync(fh.fileno())


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
