"""Producers of online training: solver workers that keep solving new chunks of the training seed stream.

A producer hands the trainer *chunks*: ``(first, columns, seconds)``, the
samples ``[first, first + len)`` of the stream ``seed`` and their solve time
as :func:`pdeforge.data.solve_samples` returns them. Chunks arrive in index
order, starting at ``start`` and never repeating an index, until ``stop``
(exclusive, ``None``: endless). Two backends share this interface:

:class:`LocalProducers`
    ``producers`` worker processes (``spawn`` context, one torch thread
    each). Worker ``k`` solves chunks ``k, k + P, k + 2P, ...`` and puts them
    in its own queue of ``queue_size`` chunks; a full queue blocks it
    (backpressure), so at most ``producers * (queue_size + 1)`` chunks are
    solved ahead of the trainer. Reading the queues round-robin restores the
    index order.
:class:`DaskProducers`
    Tasks on a ``distributed.Client``: at most ``in_flight`` chunks are
    submitted or done but not taken; a new one is submitted each time the
    trainer takes one.

Both are context managers; leaving the context (normally, on an error or on
Ctrl-C) stops every worker: local processes are joined (terminated if they
do not stop within a few seconds), Dask futures are cancelled.
"""

from __future__ import annotations

import functools
import json
import multiprocessing as mp
import os
import queue
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from pdeforge.errors import PdeforgeError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["Chunk", "DaskProducers", "LocalProducers", "default_producers", "solve_chunk"]

Chunk = tuple[int, dict[str, np.ndarray], float]
"""``(first index, columns, seconds)`` of solved samples."""

_POLL = 0.1  # seconds between two checks of the stop flag by a blocked worker


def default_producers() -> int:
    """Local producer processes by default: one per core but the trainer's, at least one.

    Returns
    -------
    int
        ``max(1, cores - 1)``.
    """
    return max(1, (os.cpu_count() or 1) - 1)


@functools.lru_cache(maxsize=4)
def _problem(name: str, config: str):
    from pdeforge.problems import PROBLEMS

    cls = PROBLEMS[name]
    return cls(cls.Config.model_validate(json.loads(config)), device="cpu")


def solve_chunk(name: str, config: str, seed: int, first: int, count: int) -> Chunk:
    """Solve samples ``[first, first + count)`` of problem ``name`` (config as JSON) on one torch thread.

    Runs in a worker (process or Dask task); the problem is built once per
    process and configuration.

    Parameters
    ----------
    name, config
        The problem's name and its configuration as a JSON string.
    seed, first, count
        The stream's seed, the first index and the number of samples.

    Returns
    -------
    Chunk
        ``(first, columns, seconds)``.
    """
    import torch

    from pdeforge.data import solve_samples

    torch.set_num_threads(1)
    columns, seconds = solve_samples(_problem(name, config), seed=seed, start=first, stop=first + count)
    return first, columns, seconds


def _chunk_starts(start: int, stop: int | None, chunk: int, worker: int, stride: int):
    """The first indices of the chunks worker ``worker`` of ``stride`` solves."""
    first = start + worker * chunk
    while stop is None or first < stop:
        yield first, chunk if stop is None else min(chunk, stop - first)
        first += stride * chunk


def _produce(name: str, config: str, seed: int, start: int, stop: int | None, chunk: int, worker: int, stride: int,
             out: Any, halt: Any, solved: Any) -> None:
    """A local producer process: solve this worker's chunks and queue them until ``halt`` is set."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Ctrl-C reaches the whole process group: the trainer stops its producers itself (through ``halt``).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for first, count in _chunk_starts(start, stop, chunk, worker, stride):
            if halt.is_set():
                return
            item = solve_chunk(name, config, seed, first, count)
            with solved.get_lock():
                solved.value += count
            while not halt.is_set():
                try:
                    out.put(("chunk", item), timeout=_POLL)
                    break
                except queue.Full:
                    continue
    except PdeforgeError as exc:
        out.put(("error", str(exc)))
    except Exception as exc:  # reported to the trainer as one line, not lost with the process
        out.put(("error", f"a producer failed: {type(exc).__name__}: {exc}"))


class _ChunkStream:
    """What both producer backends share: the stream's position and end, and closing on exit."""

    next_index: int
    stop: int | None
    chunk: int

    def close(self) -> None:
        """Stop producing and release the workers (each backend its own way)."""
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exhausted(self) -> bool:
        """Whether every chunk up to ``stop`` has been taken."""
        return self.stop is not None and self.next_index >= self.stop


class LocalProducers(_ChunkStream):
    """Producer processes on this machine (see the module docstring).

    Parameters
    ----------
    name, config
        The problem's name and its configuration as a JSON string.
    seed
        The training seed stream.
    start, stop
        The first index to produce and one past the last (``None``: no end).
    chunk
        Samples per chunk (one solver batch).
    producers
        Worker processes.
    queue_size
        Chunks each worker may hold solved before it blocks.
    """

    def __init__(self, name: str, config: str, seed: int, *, start: int, stop: int | None, chunk: int,
                 producers: int = 1, queue_size: int = 1) -> None:
        if producers < 1 or chunk < 1 or queue_size < 1:
            raise PdeforgeError("producers, chunk and queue size must be at least 1")
        self.next_index, self.stop, self.chunk = start, stop, chunk
        context = mp.get_context("spawn")
        self._halt = context.Event()
        self.solved = context.Value("q", 0)  # samples solved by the workers (a shared counter)
        self._queues = [context.Queue(maxsize=queue_size) for _ in range(producers)]
        self._procs = [context.Process(target=_produce, daemon=True, name=f"pdeforge-producer-{k}",
                                       args=(name, config, seed, start, stop, chunk, k, producers, q, self._halt,
                                             self.solved))
                       for k, q in enumerate(self._queues)]
        self._turn = 0
        self.bound = producers * (queue_size + 1) * chunk
        """Samples that can be solved but not yet taken by the trainer, at most."""

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for tests and diagnostics)."""
        return [p.pid for p in self._procs if p.pid is not None]

    def __enter__(self) -> LocalProducers:
        # Workers start with SIGINT blocked (the mask survives exec) so that a Ctrl-C while they import
        # does not print their tracebacks; they then ignore it and the trainer stops them.
        blocking = hasattr(signal, "pthread_sigmask")
        if blocking:
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for p in self._procs:
                p.start()
        except BaseException:
            self.close()
            raise
        finally:
            if blocking:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        return self

    def take(self, block: bool) -> Chunk | None:
        """The next chunk in index order; ``None`` if none is ready (``block=False``) or the stream is exhausted.

        Raises
        ------
        PdeforgeError
            When a worker failed (for example a sample whose solver did not converge).
        """
        if self.exhausted():
            return None
        q = self._queues[self._turn]
        while True:
            try:
                kind, item = q.get(timeout=_POLL) if block else q.get_nowait()
                break
            except queue.Empty:
                if not block:
                    return None
                worker = self._procs[self._turn]
                if not worker.is_alive() and q.empty():
                    raise PdeforgeError(f"producer process {worker.pid} ended unexpectedly "
                                        f"(exit code {worker.exitcode})") from None
        if kind == "error":
            raise PdeforgeError(item)
        first, columns, seconds = item
        assert first == self.next_index, (first, self.next_index)
        self.next_index += len(columns["diagnostics/seed"])
        self._turn = (self._turn + 1) % len(self._queues)
        return first, columns, seconds

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers and wait for them (terminate those that do not stop within ``timeout`` seconds)."""
        self._halt.set()
        deadline = time.monotonic() + timeout
        for p, q in zip(self._procs, self._queues, strict=True):
            if p.pid is None:
                continue
            while p.is_alive() and time.monotonic() < deadline:
                _drain(q)
                p.join(_POLL)
            if p.is_alive():
                p.terminate()
                p.join(timeout)
        for q in self._queues:
            _drain(q)
            q.close()
            q.join_thread()


def _drain(q: Any) -> None:
    try:
        while True:
            q.get_nowait()
    except (queue.Empty, OSError, ValueError):
        return


class DaskProducers(_ChunkStream):
    """Producer tasks on a Dask cluster (see the module docstring).

    Parameters
    ----------
    client
        A connected ``distributed.Client``.
    name, config, seed, start, stop, chunk
        As for :class:`LocalProducers`.
    in_flight
        Chunks submitted (running, queued or done) but not yet taken, at most.
    """

    def __init__(self, client: Client, name: str, config: str, seed: int, *, start: int, stop: int | None,
                 chunk: int, in_flight: int = 2) -> None:
        if chunk < 1 or in_flight < 1:
            raise PdeforgeError("chunk and in-flight tasks must be at least 1")
        self.client, self.args = client, (name, config, seed)
        self.next_index, self.stop, self.chunk, self.in_flight = start, stop, chunk, in_flight
        self._submitted = start  # one past the last index submitted
        self._futures: deque = deque()
        self.bound = in_flight * chunk
        """Samples that can be solved but not yet taken by the trainer, at most."""

    def _fill(self) -> None:
        while len(self._futures) < self.in_flight and (self.stop is None or self._submitted < self.stop):
            count = self.chunk if self.stop is None else min(self.chunk, self.stop - self._submitted)
            self._futures.append(self.client.submit(solve_chunk, *self.args, self._submitted, count, pure=False))
            self._submitted += count

    def __enter__(self) -> DaskProducers:
        self._fill()
        return self

    def take(self, block: bool) -> Chunk | None:
        """The next chunk in index order; ``None`` if none is ready (``block=False``) or the stream is exhausted."""
        if not self._futures or (not block and not self._futures[0].done()):
            return None
        future = self._futures.popleft()
        try:
            first, columns, seconds = future.result()
        except PdeforgeError:
            raise
        except Exception as exc:
            raise PdeforgeError(f"a Dask producer task failed: {type(exc).__name__}: {exc}") from None
        assert first == self.next_index, (first, self.next_index)
        self.next_index += len(columns["diagnostics/seed"])
        self._fill()
        return first, columns, seconds

    def close(self) -> None:
        """Cancel every task not yet taken."""
        futures, self._futures = list(self._futures), deque()
        if futures:
            self.client.cancel(futures)
