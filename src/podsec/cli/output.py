"""Rendering: JSON for machines, rich tables and progress for people, messages on stderr.

rich is imported lazily: monitoring plugins must start in well under 0.3 s.
"""

from __future__ import annotations

import dataclasses
import json as _json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from podsec.progress import NULL_PROGRESS, Progress


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON: result objects through their ``as_dict()``, other dataclasses
    field by field, anything else JSON cannot hold (paths, dates) as text."""
    click.echo(_json.dumps(data, indent=2, ensure_ascii=False, default=_plain))


def _plain(obj: Any) -> Any:
    as_dict = getattr(obj, "as_dict", None)
    if callable(as_dict):
        return as_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)


def info(message: str) -> None:
    click.echo(message, err=True)


def result(message: str) -> None:
    click.echo(message)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(soft_wrap=True).print(t)


class _RichProgress:
    def __init__(self, progress: Any):
        self._p = progress
        self._tasks: dict[str, Any] = {}

    def start(self, task: str, total: float | None = None, unit: str = "") -> None:
        self._tasks[task] = self._p.add_task(task, total=total, unit=unit)

    def advance(self, task: str, amount: float = 1) -> None:
        if task in self._tasks:
            self._p.advance(self._tasks[task], amount)

    def finish(self, task: str, note: str = "") -> None:
        if task in self._tasks:
            tid = self._tasks[task]
            total = self._p.tasks[tid].total if tid < len(self._p.tasks) else None
            self._p.update(tid, completed=total if total is not None else 1, total=total or 1)
            if note:
                self._p.update(tid, description=f"{task} — {note}")


@contextmanager
def progress(enabled: bool = True) -> Iterator[Progress]:
    """A rich progress display on stderr when it is a terminal (or forced), else nothing."""
    if not enabled or not sys.stderr.isatty():
        yield NULL_PROGRESS
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class _AmountColumn(ProgressColumn):
        """Bytes for byte-counted tasks ("12.3/40.0 MB"), plain counts ("3/6") otherwise."""

        def __init__(self) -> None:
            super().__init__()
            self._download = DownloadColumn()

        def render(self, task: Any) -> Any:
            if task.fields.get("unit") == "B":
                return self._download.render(task)
            total = "?" if task.total is None else f"{task.total:g}"
            return Text(f"{task.completed:g}/{total}")

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        _AmountColumn(),
        TimeElapsedColumn(),
    )
    with RichProgress(*columns, console=Console(stderr=True), transient=False) as p:
        yield _RichProgress(p)
