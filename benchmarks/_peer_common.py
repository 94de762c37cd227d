"""Shared pieces of the peer cross-check scripts (``peer_*.py``): threads, timing, errors, equal-error ratios.

Not a benchmark itself. The peers (jax, jax-cfd, exponax) are imported only
inside the scripts, after :func:`configure_threads` has set XLA's thread
flags, which must happen before jax is first imported.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def configure_threads(threads: int) -> None:
    """Give torch and XLA the same number of intra-op threads (call before importing jax).

    XLA's CPU client runs Eigen on its own pool, one thread per core unless
    told otherwise; with ``threads == 1`` both sides are made single-threaded.
    """
    import torch

    torch.set_num_threads(threads)
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()


def enable_jax_float64() -> None:
    """Run jax in float64, as pdeforge solves (its solvers work in float64 on CPU)."""
    import jax

    jax.config.update("jax_enable_x64", True)


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``repeats`` calls of ``run`` (the caller warms it up first)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def relative_l2(u: np.ndarray, ref: np.ndarray) -> float:
    """Mean over samples (axis 0) of ``||u - ref|| / ||ref||`` over every other axis."""
    u = np.asarray(u, dtype=np.float64).reshape(u.shape[0], -1)
    ref = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1)
    per = np.linalg.norm(u - ref, axis=1) / np.linalg.norm(ref, axis=1)
    return float(np.mean(per)) if np.all(np.isfinite(per)) else float("inf")


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The ``(error, cost)`` points no other point beats in both, sorted by error (finite, positive only)."""
    good = sorted((e, c) for e, c in points if np.isfinite(e) and e > 0 and np.isfinite(c))
    front: list[tuple[float, float]] = []
    for e, c in good:
        if not front or c < front[-1][1]:
            front.append((e, c))
    return front


def cost_at_error(points: Sequence[tuple[float, float]], error: float) -> float | None:
    """The cost of reaching ``error``: log-log interpolation on the Pareto front of ``(error, cost)`` points.

    Past the front's largest error (up to the largest error measured) the
    cheapest run already reaches ``error``, so its cost is returned. ``None``
    below the smallest error measured or above the largest (no extrapolation).
    """
    front = pareto(points)
    if not front or error < front[0][0] or error > _largest_error(points):
        return None
    if error >= front[-1][0]:
        return front[-1][1]
    log_e = np.log([e for e, _ in front])
    log_c = np.log([c for _, c in front])
    return float(np.exp(np.interp(np.log(error), log_e, log_c)))


def _largest_error(points: Sequence[tuple[float, float]]) -> float:
    finite = [e for e, c in points if np.isfinite(e) and e > 0 and np.isfinite(c)]
    return max(finite) if finite else 0.0


def equal_error_levels(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]],
                       count: int = 3, floor: float = 0.0) -> list[float]:
    """``count`` log-spaced error levels that both point sets cover (see :func:`cost_at_error`), above ``floor``."""
    fa, fb = pareto(a), pareto(b)
    if not fa or not fb:
        return []
    low = max(fa[0][0], fb[0][0], floor)
    high = min(_largest_error(a), _largest_error(b))
    if low > high:
        return []
    if count == 1 or low == high:
        return [float(np.sqrt(low * high))]
    return [float(v) for v in np.geomspace(low, high, count)]


def environment() -> dict[str, str]:
    """Versions of the libraries a result depends on (those that import)."""
    versions = {"python": platform.python_version(), "machine": platform.machine()}
    for name in ("torch", "numpy", "jax", "jaxlib", "jax_cfd", "exponax", "equinox", "warp", "physicsnemo"):
        try:
            module = __import__(name)
        except Exception:  # noqa: BLE001 - a peer that is absent or broken is simply not listed
            continue
        versions[name] = str(getattr(module, "__version__", "?"))
    versions["load_average"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return versions


def write_json(name: str, payload: dict) -> Path:
    """Write ``payload`` to ``benchmarks/results/<name>.json`` and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
