"""Generation on ``dask.distributed``: one task per missing shard; the client verifies and records.

:func:`pdeforge.data.generate` plans the dataset, holds the directory lock
and alone writes the manifest; :func:`dask_shard_runner` only changes who
writes the shards. Each task carries a :class:`~pdeforge.data.ShardJob`
(plain data), rebuilds the problem on its worker and writes the shard
atomically into the shared dataset directory under a per-process temporary
name (``shard-00003.h5.<pid>.partial``). When a worker dies, the scheduler
reruns its task elsewhere (``distributed.scheduler.allowed-failures``, 3 by
default); the dead worker's temporary file is never read, never in the
retry's way (another pid, another name) and removed by the client at the
end. Samples depend only on ``(seed, index)``, so the shards are the bytes a
serial run writes.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pdeforge.data import Manifest, ShardJob, ShardRecord, ShardRunner, generate, write_shard
from pdeforge.errors import PdeforgeError
from pdeforge.problems import PROBLEMS, Problem

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["dashboard_message", "dask_shard_runner", "generate_on_dask"]

Outcome = tuple[ShardRecord | None, str | None]
"""What a shard task returns: the shard's record, or the one-line message of a user error."""


def _write_on_worker(job: ShardJob) -> Outcome:
    """The task: write one shard with as many torch threads as the worker has task threads.

    A :class:`PdeforgeError` (a sample that did not converge, a full disk)
    is returned as its message, not raised: it is the user's to fix, not a
    task failure for the worker's log.
    """
    import torch
    from distributed import get_worker

    torch.set_num_threads(max(1, get_worker().state.nthreads))
    try:
        return write_shard(job), None
    except PdeforgeError as exc:
        return None, str(exc)


def dask_shard_runner(client: Client) -> ShardRunner:
    """A shard runner (``generate(..., run_shards=...)``) that writes every shard as a task on ``client``'s cluster.

    Every worker must see the dataset directory at the same path (a shared
    filesystem) and solves on the job's device (``--device``; on a GPU
    cluster, one GPU per worker is the cluster's setup). Records are yielded
    as tasks complete, in any order, and ``progress`` advances by each
    completed shard's samples. A user error in a task ends the run with its
    one-line :class:`PdeforgeError`; a shard whose workers kept dying ends
    it with one too. Closing the iterator early cancels the tasks not yet run.
    ``progress`` advances once the caller asks for the next record, that is,
    after it recorded the previous one: the bar counts recorded samples.

    Parameters
    ----------
    client
        A connected ``distributed.Client``.

    Returns
    -------
    ShardRunner
        The runner.
    """

    def run(jobs: list[ShardJob], progress: Callable[[int], None] | None) -> Iterator[ShardRecord]:
        from distributed import as_completed

        if not jobs:
            return
        token = uuid.uuid4().hex[:12]  # a resumed run never reuses the results of an earlier one
        keys = [f"pdeforge-shard-{job.number:05d}-{token}" for job in jobs]
        futures = client.map(_write_on_worker, jobs, key=keys, pure=False)
        names = {future.key: job.path.name for future, job in zip(futures, jobs, strict=True)}
        try:
            for future in as_completed(futures):
                record, error = _result(future, names[future.key])
                if error is not None:
                    raise PdeforgeError(error)
                assert record is not None  # a task returns one of the two
                yield record
                if progress is not None:  # resumed once the caller has recorded the shard
                    progress(record.count)
        finally:
            client.cancel(futures)

    return run


def _result(future: Future, shard: str) -> Outcome:
    """A finished task's outcome; a shard whose workers died too often is a one-line error."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        raise PdeforgeError(
            f"{shard}: the {exc.allowed_failures + 1} worker(s) that ran its task all died (the last: "
            f"{exc.last_worker.address}); check the workers' memory and logs, then rerun with --resume") from None


def generate_on_dask(problem: Problem, client: Client, *, n: int, seed: int, out: Path, **options) -> Manifest:
    """:func:`pdeforge.data.generate` with every shard written by a task on ``client``'s cluster.

    Parameters
    ----------
    problem
        One of ``pdeforge.problems.PROBLEMS`` (workers rebuild it from its name and config).
    client
        A connected ``distributed.Client``.
    n, seed, out
        As for :func:`pdeforge.data.generate`.
    **options
        ``shard_size``, ``batch_size``, ``mode``, ``progress``: as for :func:`pdeforge.data.generate`.

    Returns
    -------
    Manifest
        The completed manifest, identical (apart from timings) to a serial run's.
    """
    if PROBLEMS.get(problem.name) is not type(problem):
        raise PdeforgeError(f"{type(problem).__name__} is not a registered problem; a worker could not rebuild it")
    return generate(problem, n=n, seed=seed, out=out, run_shards=dask_shard_runner(client), **options)


def dashboard_message(client: Client, *, embedded: bool) -> str:
    """The line to print about the Dask dashboard: its link, or why an embedded cluster has none.

    The dashboard needs bokeh in the scheduler's environment; for an
    embedded cluster that is this one, so its absence is said plainly. An
    external scheduler's environment is unknown here: its link is printed.

    Parameters
    ----------
    client
        The connected client.
    embedded
        Whether the scheduler runs in this process (``--workers``).

    Returns
    -------
    str
        ``Dask dashboard: <link>`` or ``Dask dashboard unavailable (...)``.
    """
    if embedded and importlib.util.find_spec("bokeh") is None:
        return "Dask dashboard unavailable (install bokeh>=3.1 for it)"
    try:
        link = client.dashboard_link
    except KeyError:  # the scheduler runs no dashboard service
        link = None
    return f"Dask dashboard: {link}" if link else "Dask dashboard unavailable (the scheduler serves none)"
