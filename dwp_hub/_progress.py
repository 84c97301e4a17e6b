"""Rich progress bars that stay quiet when disabled or when output is not a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _NullBar:
    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """A ``rich.progress.Progress`` with an ``acc`` field, or a no-op stand-in."""
    if not enabled:
        yield _NullBar()
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[acc]}"),
    )
    with Progress(*columns, transient=False) as bar:
        original = bar.add_task

        def add_task(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("acc", "")
            return original(*args, **kwargs)

        bar.add_task = add_task  # type: ignore[method-assign]
        yield bar
