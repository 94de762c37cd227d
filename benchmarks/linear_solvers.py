"""Batched Darcy solves: pdeforge's default solver against scipy spsolve and pyamg SA-CG.

FNO-style Darcy flow (piecewise coefficient 12 / 3 from a thresholded GRF,
f = 1, u = 0 on the boundary) at 255^2 and 421^2 unknowns (R = 257 and
R = 423 nodes per side in pdeforge's convention), relative residual 1e-8.
pdeforge's default solver (``solver = auto``) solves a whole batch; the
peers solve a subset of the same systems one by one (they have no batch
mode): ``scipy.sparse.linalg.spsolve`` on the assembled CSC matrix, and
``pyamg.smoothed_aggregation_solver(A).solve(b, tol=1e-8, accel="cg")``
(setup + solve). Operator assembly is not timed for anyone. The repeats
interleave pdeforge and the peers so that all see the same machine load.

Run with the benchmark venv (pyamg lives only there)::

    .bench-venv/bin/python benchmarks/linear_solvers.py
"""

from __future__ import annotations

import os

# The peers are fastest with single-threaded OpenBLAS here: pyamg's many small
# BLAS calls with two OpenBLAS threads run ~20x slower on a busy machine.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402
import torch  # noqa: E402

from pdeforge.problems import Darcy, DarcyConfig  # noqa: E402
from pdeforge.problems.darcy import darcy_operator  # noqa: E402
from pdeforge.solvers import method_for  # noqa: E402


def darcy_systems(resolution: int, count: int, seed: int = 0):
    problem = Darcy(DarcyConfig(resolution=resolution))
    a = problem.sample_inputs(seed, range(count))["coefficient"]
    op = darcy_operator(a, problem.grid)
    b = torch.ones(count, *op.shape, dtype=torch.float64)
    return problem, op, b


def time_pdeforge(problem, op, b) -> tuple[float, torch.Tensor, torch.Tensor]:
    method = method_for(problem)
    start = time.perf_counter()
    result = method(op, b, rtol=problem.config.rtol)
    elapsed = time.perf_counter() - start
    return elapsed / op.batch, op.residual_norm(result.x, b), result.iterations


def time_peers(op, b, indices, pyamg) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"spsolve": [], "pyamg": []}
    for i in indices:
        A = op.to_scipy(i).tocsr()
        Acsc = A.tocsc()
        rhs = b[i].numpy().ravel()
        start = time.perf_counter()
        x = spla.spsolve(Acsc, rhs)
        out["spsolve"].append(time.perf_counter() - start)
        assert np.linalg.norm(rhs - A @ x) <= 1e-8 * np.linalg.norm(rhs)
        if pyamg is not None:
            start = time.perf_counter()
            x = pyamg.smoothed_aggregation_solver(A).solve(rhs, tol=1e-8, accel="cg")
            out["pyamg"].append(time.perf_counter() - start)
            assert np.linalg.norm(rhs - A @ x) <= 1.01e-8 * np.linalg.norm(rhs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[257, 423])
    parser.add_argument("--samples", type=int, default=100, help="batch solved by pdeforge")
    parser.add_argument("--peer-samples", type=int, default=5, help="systems solved by each peer per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="append a markdown section here")
    args = parser.parse_args()
    try:
        import pyamg
    except ImportError:
        pyamg = None
        print("pyamg is not installed: comparing with spsolve only")

    load = os.getloadavg()
    lines = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.samples} systems per pdeforge batch, {args.peer_samples} per peer and repeat, "
        f"{args.repeats} repeats, load average at start {load[0]:.1f}",
        "",
        "| unknowns | pdeforge auto (ms/system) | CG iterations | max residual | spsolve (ms) | pyamg SA-CG (ms) "
        "| speed-up vs spsolve | vs pyamg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for resolution in args.resolutions:
        problem, op, b = darcy_systems(resolution, args.samples)
        ours, peers = [], {"spsolve": [], "pyamg": []}
        for rep in range(args.repeats):
            per_system, residual, iterations = time_pdeforge(problem, op, b)
            ours.append(per_system)
            assert float(residual.max()) <= problem.config.rtol
            subset = range(rep * args.peer_samples, (rep + 1) * args.peer_samples)
            for name, values in time_peers(op, b, [i % args.samples for i in subset], pyamg).items():
                peers[name] += values
            print(f"R={resolution} repeat {rep}: pdeforge {per_system * 1e3:.1f} ms/system, "
                  f"spsolve {statistics.median(peers['spsolve']) * 1e3:.0f} ms, "
                  f"pyamg {statistics.median(peers['pyamg']) * 1e3 if peers['pyamg'] else float('nan'):.0f} ms",
                  flush=True)
        n = resolution - 2
        t_ours = statistics.median(ours)
        t_sp = statistics.median(peers["spsolve"])
        t_amg = statistics.median(peers["pyamg"]) if peers["pyamg"] else float("nan")
        lines.append(
            f"| {n}^2 = {n * n:,} | {t_ours * 1e3:.1f} | {int(iterations.min())}-{int(iterations.max())} "
            f"| {float(residual.max()):.1e} | {t_sp * 1e3:.0f} | {t_amg * 1e3:.0f} "
            f"| {t_sp / t_ours:.1f}x | {t_amg / t_ours:.1f}x |"
        )
    lines.append("")
    lines.append(f"load average at end {os.getloadavg()[0]:.1f}")
    report = "\n".join(lines)
    print(report)
    if args.out is not None:
        with open(args.out, "a") as fh:
            fh.write(report + "\n\n")


if __name__ == "__main__":
    main()
