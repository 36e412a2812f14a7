"""Progress reporting from core code without printing.

Core functions that take long accept a :class:`Progress`; the CLI passes one that draws rich
progress bars, tests and library callers get :data:`NULL_PROGRESS`.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, task: str, total: float | None = None, unit: str = "") -> None:
        """Begin a task (a step, a file, an image); ``total`` None means indeterminate."""

    def advance(self, task: str, amount: float = 1) -> None:
        """Record ``amount`` more units of work on ``task``."""

    def finish(self, task: str, note: str = "") -> None:
        """Mark ``task`` as done."""


class _NullProgress:
    def start(self, task: str, total: float | None = None, unit: str = "") -> None:
        pass

    def advance(self, task: str, amount: float = 1) -> None:
        pass

    def finish(self, task: str, note: str = "") -> None:
        pass


NULL_PROGRESS: Progress = _NullProgress()
