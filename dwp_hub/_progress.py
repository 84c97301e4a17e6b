"""Progress reporting: rich bars on a terminal, periodic log lines otherwise, nothing when disabled."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Seconds between log lines when output is not a terminal (nohup logs, CI).
LOG_INTERVAL = 30.0


class _NullBar:
    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


class _LogBar:
    """Prints ``description: done/total (elapsed) fields`` at most every ``LOG_INTERVAL`` seconds."""

    def __init__(self) -> None:
        self._tasks: dict[int, dict[str, Any]] = {}
        self._last = 0.0

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        tid = len(self._tasks)
        self._tasks[tid] = {"description": description, "total": total, "done": 0.0, "start": time.time(),
                            "fields": fields}
        return tid

    def update(self, task: int, advance: float = 0.0, **fields: Any) -> None:
        t = self._tasks[task]
        t["done"] += advance
        t["fields"].update(fields)
        now = time.time()
        if now - self._last >= LOG_INTERVAL or (t["total"] and t["done"] >= t["total"]):
            self._last = now
            extra = " ".join(str(v) for v in t["fields"].values() if v)
            print(f"{t['description']}: {t['done']:g}/{t['total']} ({now - t['start']:.0f} s) {extra}",
                  file=sys.stderr, flush=True)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """A ``rich.progress.Progress`` (with an ``acc`` text field) on a terminal, a periodic
    logger when stderr is not a terminal, or a no-op when disabled."""
    if not enabled:
        yield _NullBar()
        return
    if not sys.stderr.isatty():
        yield _LogBar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    )

    columns = (
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[acc]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        original = bar.add_task

        def add_task(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("acc", "")
            return original(*args, **kwargs)

        bar.add_task = add_task  # type: ignore[method-assign]
        yield bar
