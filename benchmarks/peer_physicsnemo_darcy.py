"""PhysicsNeMo's on-the-fly ``Darcy2D`` datapipe (warp, CPU) against pdeforge's ``darcy`` on the same coefficients.

Run:  .bench-venv/bin/python benchmarks/peer_physicsnemo_darcy.py [--resolution 256] [--batch 4] [--batches 2]

What is compared. ``physicsnemo.datapipes.benchmarks.darcy.Darcy2D`` at its
default settings (``resolution = 256``, 4 "multigrid" levels, Jacobi with
``max_iterations = 30000``, ``convergence_threshold = 1e-6``, float32) draws
``--batches`` batches; for each sample its own permeability (a thresholded
random Fourier series, values 0.5 / 2.0) is handed to pdeforge's Darcy solver.

The two discretisations of ``-div(k grad p) = 1``, ``p = 0`` outside:

* PhysicsNeMo: ``(R + 1)^2`` nodes at spacing ``h = 1 / (R + 1)`` with zero
  ghost values one node beyond every side (so the square has side
  ``(R + 2) h``), ``k`` clamped at the edges, and the non-conservative
  expansion ``k Lap p + grad k . grad p`` with central differences, in the
  kernel's literal form: the product term is divided by ``2 h`` where
  ``grad k . grad p`` needs ``4 h^2``. Solved by Jacobi sweeps on the full
  grid after coarse-level Jacobi on strided subgrids (nested iteration, no
  restriction or V-cycle), stopped when one sweep's largest change drops
  below ``1e-6 * factor``; the datapipe yields the first ``R x R`` nodes.
* pdeforge: ``Darcy`` on ``(R + 3)^2`` nodes of the unit square (boundary
  included, so the same ``(R + 1)^2`` unknowns), conservative fluxes with
  harmonic face averages, multigrid-preconditioned CG to ``rtol = 1e-8``,
  float64. Its coefficient is PhysicsNeMo's, edge-replicated onto the
  boundary nodes; its solution is rescaled by ``((R + 2) / (R + 1))^2`` to
  PhysicsNeMo's square (``p(x) = L^2 u(x / L)``).

Reported per sample: how many distinct values the sample's random Fourier
coefficients take (100 expected: 4 x 5 x 5), non-finite or huge (``|p| > 1e20``) outputs (PhysicsNeMo
issue #1958, coarse-level reads past the array), PhysicsNeMo's relative
residual ``||f - A p|| / ||f||`` in its own discretisation and in pdeforge's,
its distance to its own discretisation's exact solution (scipy ``spsolve``,
float64), the relative L2 difference from pdeforge's solution (and that of
the exact solution with the consistent ``4 h^2``, to separate the kernel's
scaling from the conservative-vs-expanded difference), and samples/s
of both (PhysicsNeMo: a whole ``next(iter(datapipe))``; pdeforge:
``problem.solve`` of the same batch).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_common import configure_threads, environment, table, write_json  # noqa: E402 - helpers beside this script

HUGE = 1e20
"""An output magnitude no Darcy solution with ``f = 1`` and ``k >= 0.5`` on the unit square can reach."""


def load_darcy2d():
    """Import PhysicsNeMo's ``Darcy2D`` without running ``physicsnemo/__init__`` and ``datapipes/__init__``.

    Those import ``physicsnemo.nn``, hence timm, hence torchvision, whose only
    registry wheel for torch 2.13 is built against the CUDA torch and fails to
    load beside the CPU build (``operator torchvision::nms does not exist``).
    The Darcy datapipe itself needs only warp, numpy and torch, so its parent
    packages are registered as bare namespaces pointing at the installed files.
    """
    spec = importlib.util.find_spec("warp")
    if spec is None or spec.origin is None:
        raise SystemExit("warp-lang is not installed: run bash benchmarks/setup.sh")
    site = Path(spec.origin).parent.parent
    for name in ("physicsnemo", "physicsnemo.datapipes"):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(site / name.replace(".", "/"))]
            sys.modules[name] = module
    from physicsnemo.datapipes.benchmarks import darcy

    return darcy


class _CountingWarp:
    """Stands in for the ``warp`` module inside the datapipe to count its Jacobi sweeps (delegates the rest)."""

    def __init__(self, wp, kernel_name: str) -> None:
        self._wp, self._kernel_name, self.sweeps = wp, kernel_name, 0

    def launch(self, kernel, *args, **kwargs):
        if getattr(kernel, "key", "") == self._kernel_name:
            self.sweeps += 1
        return self._wp.launch(kernel, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._wp, name)


def physicsnemo_operator(k: np.ndarray, h: float, product_denominator: float | None = None) -> sp.csr_matrix:
    """The linear system the datapipe's Jacobi iteration converges to, assembled in float64.

    Row of node ``(i, j)`` (``k`` clamped, ``p`` zero beyond the edges):
    ``4 k / h^2 p - k / h^2 sum(neighbours) - [(kE - kW)(pE - pW) + (kN - kS)(pN - pS)] / D = 1``
    with the kernel's ``D = 2 h`` (default), or ``D = 4 h^2`` for the consistent
    central-difference ``grad k . grad p``.
    """
    denominator = 2 * h if product_denominator is None else product_denominator
    n = k.shape[0]
    kp = np.pad(k, 1, mode="edge")
    kc = kp[1:-1, 1:-1]
    ids = np.arange(n * n).reshape(n, n)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    rows, cols, vals = [ids.ravel()], [ids.ravel()], [(4 * kc / h**2).ravel()]
    for di, dj in ((1, 0), (0, 1)):
        # (k_forward - k_backward) / D along this axis, with k clamped beyond the edges
        dk = (kp[1 + di:n + 1 + di, 1 + dj:n + 1 + dj] - kp[1 - di:n + 1 - di, 1 - dj:n + 1 - dj]) / denominator
        for sign in (1, -1):
            ni, nj = i + sign * di, j + sign * dj
            inside = (ni >= 0) & (ni < n) & (nj >= 0) & (nj < n)  # zero ghost values drop out
            rows.append(ids[inside])
            cols.append(ids[ni[inside], nj[inside]])
            vals.append((-kc / h**2 - sign * dk)[inside])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n))


def relative(a: np.ndarray, b: np.ndarray) -> float:
    """``||a - b|| / ||b||``."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=256, help="Darcy2D's resolution parameter R")
    parser.add_argument("--batch", type=int, default=4, help="Darcy2D batch size (its default 64 takes minutes)")
    parser.add_argument("--batches", type=int, default=2, help="batches drawn from the datapipe")
    parser.add_argument("--multigrids", type=int, default=4, help="Darcy2D's nr_multigrids (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0, help="numpy seed (Darcy2D draws its seeds from numpy)")
    parser.add_argument("--out", default="peer_physicsnemo_darcy", help="name of the json under benchmarks/results/")
    args = parser.parse_args(argv)
    configure_threads(args.threads)

    import torch

    from pdeforge.problems import Darcy, DarcyConfig
    from pdeforge.problems.darcy import darcy_operator
    from pdeforge.solvers import method_for

    darcy = load_darcy2d()
    counter = _CountingWarp(darcy.wp, "darcy_mgrid_jacobi_iterative_batched_2d")
    darcy.wp = counter
    r = args.resolution
    np.random.seed(args.seed)
    try:
        datapipe = darcy.Darcy2D(resolution=r, batch_size=args.batch, nr_multigrids=args.multigrids, device="cpu")
    except ValueError as err:
        raise SystemExit(f"Darcy2D(resolution={r}, nr_multigrids={args.multigrids}) refused: {err}") from err
    n = r + 1
    h = datapipe.dx
    scale = ((r + 2) / (r + 1)) ** 2
    problem = Darcy(DarcyConfig(resolution=r + 3, forcing=1.0))
    method = method_for(problem)
    print(f"Darcy2D resolution {r}: {n}^2 unknowns, h = 1/{r + 1}; pdeforge darcy resolution {r + 3}, "
          f"method {problem.method_name}", flush=True)

    # Compile warp's kernels outside the timings (a batch of the same size, discarded).
    iterator = iter(datapipe)
    next(iterator)
    rows, nemo_seconds, ours_seconds, sweeps, fields = [], [], [], [], []
    for _ in range(args.batches):
        counter.sweeps = 0
        t0 = time.perf_counter()
        next(iterator)
        nemo_seconds.append(time.perf_counter() - t0)
        sweeps.append(counter.sweeps)
        k = darcy.wp.to_torch(datapipe.permeability).to(torch.float64).numpy().copy()
        p = darcy.wp.to_torch(datapipe.darcy0).to(torch.float64).numpy().copy()
        fourier = datapipe.rand_fourier.numpy()
        fields += [k[i] for i in range(k.shape[0])]

        coefficient = torch.nn.functional.pad(torch.from_numpy(k)[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
        t0 = time.perf_counter()
        solution = problem.solve({"coefficient": coefficient}, method)
        ours_seconds.append(time.perf_counter() - t0)
        ours = solution.outputs["solution"].numpy()[:, 1:-1, 1:-1] * scale
        op = darcy_operator(coefficient, problem.grid)
        ones = torch.ones(coefficient.shape[0], n, n, dtype=torch.float64)
        residual_ours = op.residual_norm(torch.from_numpy(p / scale), ones).numpy()
        for i in range(k.shape[0]):
            finite = bool(np.isfinite(p[i]).all())
            huge = finite and float(np.abs(p[i]).max()) > HUGE
            row = dict(distinct_fourier_coefficients=int(np.unique(fourier[:, i]).size), nan=not finite,
                        huge=huge, max_abs=float(np.nanmax(np.abs(p[i]))) if finite else math.nan,
                       pdeforge_residual=float(solution.diagnostics["residual"][i]))
            if finite and not huge:
                a = physicsnemo_operator(k[i], h)
                f = np.ones(n * n)
                exact = spla.spsolve(a.tocsc(), f).reshape(n, n)
                consistent = spla.spsolve(physicsnemo_operator(k[i], h, 4 * h * h).tocsc(), f).reshape(n, n)
                row.update(residual_own=float(np.linalg.norm(f - a @ p[i].ravel()) / np.linalg.norm(f)),
                           residual_pdeforge_discretisation=float(residual_ours[i]),
                           error_vs_own_exact=relative(p[i], exact),
                           difference_vs_pdeforge=relative(p[i], ours[i]),
                           own_exact_vs_pdeforge=relative(exact, ours[i]),
                           consistent_exact_vs_pdeforge=relative(consistent, ours[i]))
            rows.append(row)
            print({key: (f"{v:.3e}" if isinstance(v, float) else v) for key, v in row.items()}, flush=True)

    samples = args.batch * args.batches
    nemo_rate = samples / sum(nemo_seconds)
    ours_rate = samples / sum(ours_seconds)
    good = [row for row in rows if "residual_own" in row]

    def median(key: str) -> float:
        return float(np.median([row[key] for row in good])) if good else math.nan

    summary = dict(
        samples=samples, distinct_permeabilities=len({field.tobytes() for field in fields}),
        nan=sum(row["nan"] for row in rows), huge=sum(row["huge"] for row in rows),
        jacobi_sweeps_per_batch=sweeps,
        residual_own_median=median("residual_own"),
        residual_pdeforge_discretisation_median=median("residual_pdeforge_discretisation"),
        error_vs_own_exact_median=median("error_vs_own_exact"),
        difference_vs_pdeforge_median=median("difference_vs_pdeforge"),
        own_exact_vs_pdeforge_median=median("own_exact_vs_pdeforge"),
        consistent_exact_vs_pdeforge_median=median("consistent_exact_vs_pdeforge"),
        pdeforge_residual_max=max(row["pdeforge_residual"] for row in rows),
        physicsnemo_samples_per_s=nemo_rate, pdeforge_samples_per_s=ours_rate, speedup=ours_rate / nemo_rate)
    print(table([(key, f"{value:.3g}" if isinstance(value, float) else value) for key, value in summary.items()],
                ["quantity", "value"]))
    path = write_json(args.out, dict(args=vars(args), environment=environment(), summary=summary, rows=rows))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
