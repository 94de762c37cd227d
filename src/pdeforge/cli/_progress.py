"""Progress bars for long work (generation, training)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["LazyProgress", "progress_bar", "stderr"]

stderr = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second, with the item's name."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The task's speed in items per second, or ``-`` before it is known."""
        speed = task.finished_speed or task.speed
        return Text("-" if speed is None else f"{speed:,.1f} {self.unit}/s", style="progress.data.speed")


def progress_bar(unit: str = "samples") -> Progress:
    """A bar on stderr: description, bar, done/total, rate in ``unit`` per second, ETA and a status field."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=stderr,
        transient=False,
    )


class LazyProgress:
    """A progress bar that appears at the first update.

    Errors found before any work starts are thus not preceded by an empty bar.
    Use as a context manager; call it with the number of items just finished
    and any fields of :meth:`rich.progress.Progress.update` (``total``,
    ``completed``, ``description``, ``status``).

    Parameters
    ----------
    description
        Shown before the bar.
    total
        Number of items, if known.
    unit
        Name of the items, for the rate.
    """

    def __init__(self, description: str, total: int | None, unit: str = "samples") -> None:
        self.description, self.total, self.unit = description, total, unit
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, advance: int = 0, **fields: Any) -> None:
        if self._bar is None or self._task is None:
            self._bar = progress_bar(self.unit)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, status="")
        self._bar.update(self._task, advance=advance, **fields)

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
