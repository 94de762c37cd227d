"""Progress for long work (generation, training, evaluation): a bar on a terminal, plain lines elsewhere.

On a terminal the bar's columns are sized to the console's width, so the
``done/total`` counter and the rate stay whole in 80 columns (the bar and
the status field give way). When stderr is not a terminal (CI logs,
``nohup``, a notebook) a bar cannot redraw, so a plain line with the phase,
``done/total``, the rate and the ETA is printed at a fixed interval (30 s by
default) from a background thread, also while the work reports nothing, and
once more at the end.
"""

from __future__ import annotations

import threading
import time
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
from rich.table import Column
from rich.text import Text

__all__ = ["LazyProgress", "PlainProgress", "progress_bar", "stderr"]

stderr = Console(stderr=True)

PLAIN_INTERVAL = 30.0
"""Seconds between two plain progress lines when stderr is not a terminal."""


class RateColumn(ProgressColumn):
    """Items per second, with the item's name."""

    def __init__(self, unit: str) -> None:
        super().__init__(table_column=Column(no_wrap=True, min_width=len(unit) + 8))
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The task's speed in items per second, ``-`` before it is known (nothing for a task with ``rate=False``)."""
        if task.fields.get("rate") is False:
            return Text("")
        speed = task.finished_speed or task.speed
        return Text("-" if speed is None else f"{speed:,.1f} {self.unit}/s", style="progress.data.speed")


def progress_bar(unit: str = "samples", console: Console | None = None) -> Progress:
    """A bar: description, bar, done/total, rate in ``unit`` per second, ETA and a status field.

    Parameters
    ----------
    unit
        Name of the items, for the rate.
    console
        Where to draw (default: stderr). The bar's width is what the
        console's width leaves after the other columns (between 10 and 40
        characters); the counter, the rate and the ETA never wrap, the
        status field is cut with an ellipsis if it must give way.

    Returns
    -------
    rich.progress.Progress
    """
    console = console or stderr
    # description (at most 16), counter (11 for totals below 100000), rate, "ETA", h:mm:ss, six gaps
    fixed = 16 + 11 + len(f"99,999.9 {unit}/s") + 3 + 7 + 6
    bar = max(5, min(40, console.width - fixed - 27))
    status = max(8, console.width - fixed - bar - 1)
    return Progress(
        TextColumn("[progress.description]{task.description}",
                   table_column=Column(no_wrap=True, overflow="ellipsis", max_width=16)),
        BarColumn(bar_width=bar),
        MofNCompleteColumn(table_column=Column(no_wrap=True)),
        RateColumn(unit),
        TextColumn("ETA", table_column=Column(no_wrap=True)),
        TimeRemainingColumn(table_column=Column(no_wrap=True)),
        TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=status)),
        console=console,
        transient=False,
    )


def _clock(seconds: float) -> str:
    """``h:mm:ss`` of a duration."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class PlainProgress:
    """Progress as plain lines every ``interval`` seconds, for output that is not a terminal.

    Each line reads ``phase: done/total unit, rate unit/s, ETA h:mm:ss  status``
    (the total and ETA when the total is known, the rate once items are done).
    A background thread prints it, so a line appears even while the work is
    silent; :meth:`stop` prints the last one.

    Parameters
    ----------
    description
        The phase, shown first.
    total
        Number of items, if known.
    unit
        Name of the items.
    console
        Where to print.
    interval
        Seconds between two lines.
    """

    def __init__(self, description: str, total: int | None, unit: str, console: Console,
                 interval: float = PLAIN_INTERVAL) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.console, self.interval = console, interval
        self.completed = 0
        self.status = ""
        self._lock = threading.Lock()
        self._start_time = time.perf_counter()
        self._start_count = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Start printing a line every ``interval`` seconds."""
        self._start_time = time.perf_counter()
        self._thread.start()

    def update(self, advance: int = 0, *, total: int | None = None, completed: int | None = None,
               description: str | None = None, status: str | None = None) -> None:
        """Record progress: ``advance`` more items done, and any new total, count, phase or status."""
        with self._lock:
            if total is not None:
                self.total = total
            if completed is not None:
                # a resumed count is not work done now: the rate counts from here
                self._start_count += completed - self.completed
                self.completed = completed
            self.completed += advance
            if description is not None:
                self.description = description
            if status is not None:
                self.status = status

    def line(self) -> str:
        """The current progress as one line."""
        with self._lock:
            elapsed = time.perf_counter() - self._start_time
            done = self.completed - self._start_count
            rate = done / elapsed if elapsed > 0 and done > 0 else None
            text = f"{self.description}: {self.completed}"
            if self.total is not None:
                text += f"/{self.total}"
            text += f" {self.unit}, " + ("rate -" if rate is None else f"{rate:,.1f} {self.unit}/s")
            if self.total is not None:
                eta = "-" if rate is None else _clock(max(self.total - self.completed, 0) / rate)
                text += f", ETA {eta}"
            text += f", {_clock(elapsed)} elapsed"
            return f"{text}  {self.status}".rstrip()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.console.print(self.line(), highlight=False, markup=False, soft_wrap=True)

    def stop(self) -> None:
        """Stop the thread and print the final line."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
        self.console.print(self.line(), highlight=False, markup=False, soft_wrap=True)


class LazyProgress:
    """Progress that appears at the first update: a bar on a terminal, plain lines elsewhere.

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
    console
        Where progress goes (default: stderr).
    interval
        Seconds between two plain lines when the console is not a terminal
        (see :class:`PlainProgress`).
    """

    def __init__(self, description: str, total: int | None, unit: str = "samples", *,
                 console: Console | None = None, interval: float = PLAIN_INTERVAL) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.console, self.interval = console or stderr, interval
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._plain: PlainProgress | None = None

    def __call__(self, advance: int = 0, **fields: Any) -> None:
        """Record ``advance`` more finished items and update ``fields`` (``total``, ``status``, ...)."""
        if not self.console.is_terminal:
            if self._plain is None:
                self._plain = PlainProgress(self.description, self.total, self.unit, self.console, self.interval)
                self._plain.start()
            self._plain.update(advance, **fields)
            return
        if self._bar is None or self._task is None:
            self._bar = progress_bar(self.unit, self.console)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, status="")
        self._bar.update(self._task, advance=advance, **fields)

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self._plain is not None:
            self._plain.stop()
