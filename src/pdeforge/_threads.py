"""Thread settings that survive a shared machine: no more intra-op threads than idle cores.

torch starts one OpenMP thread per core. When another CPU-bound process
runs, every parallel kernel ends in a barrier that waits for a thread the
operating system has descheduled in favour of that process, and the
waiting threads spin meanwhile. Measured on 2 cores with one competing
busy process (``benchmarks/contention.py``, ``benchmarks/README.md``), the
demo's training epoch ran 3x slower with torch's defaults. Of the remedies
measured there:

* sleeping waiters (``OMP_WAIT_POLICY=PASSIVE``) cost 3.7x on a *quiet*
  machine (every small kernel pays a futex wake-up), so it is not used;
* shorter spinning (``GOMP_SPINCOUNT=10000``) made the loaded case worse;
* **one thread fewer per busy core** keeps the quiet speed and bounds the
  loaded one (1.1-1.5x): :func:`adapt_threads` counts the cores other
  processes keep busy (from ``/proc/stat`` over a short interval in which
  this process sleeps) and gives torch the rest, at least one. The verbs
  (``generate``, ``train``, ``evaluate``, in the Python API as on the
  command line) call it when they start and between shards and epochs, so
  a competitor that starts later is seen at the next shard or epoch.

A user's own choice always wins: with ``OMP_NUM_THREADS`` set, or
``PDEFORGE_THREADS`` set to a number (that many threads) or to ``torch``
(leave torch's settings alone), nothing is adapted.
"""

from __future__ import annotations

import os
import time

__all__ = ["adapt_threads", "busy_cores", "choose_threads"]

_SAMPLE_SECONDS = 0.1
_RECHECK_SECONDS = 5.0
"""Between two calls of :func:`adapt_threads` closer than this, the second keeps the first's choice."""
_last_check = -float("inf")


def _cpu_times() -> tuple[float, float] | None:
    """``(busy, total)`` jiffies of all cores since boot, or ``None`` where ``/proc/stat`` is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [float(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def busy_cores(interval: float = _SAMPLE_SECONDS) -> float | None:
    """How many cores other processes kept busy over the next ``interval`` seconds.

    This process sleeps meanwhile; what little CPU time it still used (other
    threads of its own) is subtracted. ``None`` where the operating system
    does not say (no ``/proc/stat``).

    Parameters
    ----------
    interval
        Seconds to sample over.

    Returns
    -------
    float or None
        Busy cores, between 0 and the number of cores.
    """
    start, own = _cpu_times(), _own_cpu_seconds()
    if start is None:
        return None
    time.sleep(interval)
    end, own_end = _cpu_times(), _own_cpu_seconds()
    if end is None or end[1] <= start[1]:
        return None
    cores = os.cpu_count() or 1
    fraction = (end[0] - start[0]) / (end[1] - start[1])
    elapsed = max(interval, 1e-9)
    return max(0.0, min(cores, fraction * cores - (own_end - own) / elapsed))


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def choose_threads() -> int | None:
    """The intra-op thread count for now: the user's choice, else the idle cores (at least one).

    Returns
    -------
    int or None
        The count, or ``None`` when the user asked pdeforge to leave torch's settings alone.
    """
    chosen = os.environ.get("PDEFORGE_THREADS", "").strip().lower()
    if chosen == "torch" or (not chosen and os.environ.get("OMP_NUM_THREADS")):
        return None
    if chosen:
        try:
            return max(1, int(chosen))
        except ValueError:
            return None
    cores = _available_cores()
    busy = busy_cores()
    if busy is None:
        return cores
    # A core counts as taken when other processes keep it more than half busy.
    return max(1, min(cores, cores - int(busy + 0.5)))


def adapt_threads(*, force: bool = False) -> int:
    """Set torch's intra-op threads to :func:`choose_threads` and return the count torch now uses.

    Cheap enough to call between epochs and shards: it samples ``/proc/stat``
    (about 0.1 s) at most once every few seconds, and changes torch's setting
    only when the choice changes.

    Parameters
    ----------
    force
        Sample now even if the last sample is recent.

    Returns
    -------
    int
        torch's intra-op thread count after the call.
    """
    import torch

    global _last_check
    now = time.monotonic()
    if force or now - _last_check >= _RECHECK_SECONDS:
        threads = choose_threads()
        _last_check = time.monotonic()
        if threads is not None and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
    return torch.get_num_threads()
