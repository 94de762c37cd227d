"""The Dask client of a distributed command: an embedded LocalCluster, an existing scheduler, or none."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pdeforge.errors import PdeforgeError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["cluster_client"]


@contextlib.contextmanager
def cluster_client(workers: int | None = None, scheduler: str | None = None, *,
                   threads_per_worker: int = 1) -> Iterator[Client | None]:
    """A ``distributed.Client`` for ``--workers N`` or ``--scheduler ADDRESS``; ``None`` for neither.

    ``workers`` starts an embedded ``LocalCluster`` of that many worker
    processes (``threads_per_worker`` threads each, one by default so that
    worker processes do not oversubscribe the cores), closed on exit;
    ``scheduler`` connects to a cluster the user runs (for example with
    dask-jobqueue on Slurm or PBS), left running on exit.

    Parameters
    ----------
    workers
        Number of local worker processes, at least 1.
    scheduler
        Address of an existing scheduler, e.g. ``tcp://10.0.0.5:8786``.
    threads_per_worker
        Threads of each embedded worker.

    Yields
    ------
    Client or None
        The connected client, or ``None`` to run in-process.
    """
    if workers is not None and scheduler is not None:
        raise PdeforgeError("--workers and --scheduler exclude each other (an existing cluster has its own workers)")
    if workers is not None and workers < 1:
        raise PdeforgeError(f"--workers must be at least 1, got {workers}")
    if workers is None and scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise PdeforgeError(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
