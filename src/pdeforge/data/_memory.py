"""Memory before work: what one sample's solve needs, what the machine has, and the batch that fits.

Estimated from the problem's grid without allocating anything, so that a
resolution no machine can hold is refused in one line before ``generate``
creates its output directory (and ``evaluate`` before it generates
super-resolution data).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from pdeforge.errors import PdeforgeError

if TYPE_CHECKING:
    from pdeforge.problems import Problem

__all__ = ["MEMORY_SHARE", "available_memory", "default_batch", "fit_batch", "memory_size", "sample_bytes"]

LINEAR_BYTES_PER_POINT = 320
"""Peak working memory of a linear solve per grid point and sample (measured: Darcy, multigrid-CG, 1024^2: ~300 B)."""
INTEGRATOR_BYTES_PER_POINT = 4096
"""Peak working memory of a pseudo-spectral integration per solver grid point and sample, trajectory excluded
(measured: Navier-Stokes, ETDRK4, 256^2: ~3.9 kB)."""
MEMORY_SHARE = 0.5
"""Share of the available memory one batch may use."""
BATCH_POINTS_TIME_DEPENDENT = 2**14
"""Solver grid points per batch of a time-dependent problem, so that a batch takes seconds and progress moves.

Measured (one thread, default configs): Burgers 1024 points, 16 per batch ~3 s;
Navier-Stokes 64^2, 4 per batch ~3 s. Larger batches are not faster per sample:
a batch steps until its slowest sample (the smallest CFL step) is done.
"""


def available_memory() -> int:
    """Bytes of memory available to a new allocation: ``MemAvailable`` of ``/proc/meminfo``, else ``os.sysconf``."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: do not refuse


def _solver_points(problem: Problem) -> int:
    """Grid points of one sample's solve (the solver's grid where it is finer than the stored one)."""
    fine = getattr(problem, "fine_grid", None)
    if fine is not None:
        return int(fine.size)
    return int(max(math.prod(shape) for shape in problem.field_shapes().values()))


def sample_bytes(problem: Problem) -> int:
    """Estimated peak memory of solving one sample of ``problem``, in bytes (computed without allocating).

    Linear problems: :data:`LINEAR_BYTES_PER_POINT` per grid point;
    time-dependent ones: :data:`INTEGRATOR_BYTES_PER_POINT` per solver grid
    point plus the trajectory on the solver's grid in float64.
    """
    points = _solver_points(problem)
    if problem.method_kind == "integrator":
        n_times = int(getattr(problem.config, "n_times", 1))
        return points * (INTEGRATOR_BYTES_PER_POINT + 8 * n_times)
    return points * LINEAR_BYTES_PER_POINT


def memory_size(n: float) -> str:
    """Bytes as a short human-readable size (``80.0 GB``)."""
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 2**10:.0f} kB"


def fit_batch(problem: Problem, batch_size: int | None) -> int:
    """The batch size to solve with: ``batch_size`` checked against the memory, or the default that fits.

    Raises a one-line :class:`PdeforgeError` when ``batch_size`` is not
    positive or when one sample (or the requested batch) needs more than
    :data:`MEMORY_SHARE` of the available memory.
    """
    if batch_size is not None and batch_size <= 0:
        raise PdeforgeError(f"--batch-size must be positive, got {batch_size}")
    per_sample = sample_bytes(problem)
    budget = available_memory() * MEMORY_SHARE
    where = f"{problem.name} at resolution {problem.config.resolution}"
    # A lone sample is solved beside a copy of itself (see _solve_batch): a batch costs at least two samples.
    if 2 * per_sample > budget:
        raise PdeforgeError(f"{where} needs about {memory_size(2 * per_sample)} of memory to solve one sample "
                            f"(estimate); {memory_size(available_memory())} is available: lower --resolution")
    fits = int(budget // per_sample)
    if batch_size is not None:
        if batch_size > fits:
            raise PdeforgeError(f"{where} needs about {memory_size(batch_size * per_sample)} for --batch-size "
                                f"{batch_size} (estimate); {memory_size(available_memory())} is available: "
                                f"use --batch-size {fits} or less")
        return batch_size
    return max(1, min(default_batch(problem), fits))


def default_batch(problem: Problem) -> int:
    """Samples per batch: up to 2^21 solver grid points (:data:`BATCH_POINTS_TIME_DEPENDENT` if time-dependent).

    A time-dependent batch is solved in one sweep of time steps, so a small
    batch keeps the progress bar moving; batching never changes the stored
    bits (see ``pdeforge.data._generate._solve_batch``).
    """
    cap = BATCH_POINTS_TIME_DEPENDENT if problem.method_kind == "integrator" else 2**21
    return int(max(1, min(256, cap // _solver_points(problem))))
