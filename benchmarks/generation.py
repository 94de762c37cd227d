"""Generation throughput of every problem at two resolutions, and the elliptic ones vs scipy's direct solver.

Run:  .venv/bin/python benchmarks/generation.py [--repeats 3]

For each generator, times ``pdeforge.data.generate`` end to end (sampling,
solving, writing checksummed shards) and prints samples/s (median of the
repeats). For the elliptic problems it also times scipy on the very same
assembled systems in the same run, per sample (solve only): Darcy's matrix
changes with every sample, so ``spsolve`` each; Poisson's and Helmholtz's
matrix is shared by all samples, so scipy gets its best case, one ``splu``
factorisation reused for every right-hand side (the factorisation time is
spread over the samples). Last, solve only, the same Poisson systems:
pdeforge's ``dst`` and ``pcg-mg`` against SuperLU, factorisation and
triangular solves timed apart (``--solves-only`` prints just this part).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla
import torch

from pdeforge.data import generate
from pdeforge.problems import (
    Burgers,
    BurgersConfig,
    Darcy,
    DarcyConfig,
    Helmholtz,
    HelmholtzConfig,
    NavierStokes,
    NavierStokesConfig,
    Poisson,
    PoissonConfig,
)
from pdeforge.problems.darcy import darcy_operator
from pdeforge.solvers import choose_method, dst_solve, pcg_mg

CASES = [
    ("darcy", Darcy, DarcyConfig, {"resolution": 64}, 64),
    ("darcy", Darcy, DarcyConfig, {"resolution": 257}, 16),
    ("poisson", Poisson, PoissonConfig, {"resolution": 64}, 64),
    ("poisson", Poisson, PoissonConfig, {"resolution": 257}, 16),
    ("helmholtz", Helmholtz, HelmholtzConfig, {"resolution": 64, "wavenumber": 10.0}, 64),
    ("helmholtz", Helmholtz, HelmholtzConfig, {"resolution": 257, "wavenumber": 10.0}, 16),
    ("burgers", Burgers, BurgersConfig, {"resolution": 256}, 32),
    ("burgers", Burgers, BurgersConfig, {"resolution": 1024}, 32),
    # ic_scale: the amplitude the recorded results were measured with (the default became 686 in issue 12).
    ("navier-stokes", NavierStokes, NavierStokesConfig,
     {"resolution": 64, "t_final": 10.0, "n_times": 10, "ic_scale": 7.0**1.5}, 16),
    ("navier-stokes", NavierStokes, NavierStokesConfig,
     {"resolution": 128, "t_final": 10.0, "n_times": 10, "ic_scale": 7.0**1.5}, 8),
]


def time_generate(problem, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(problem, n=n, seed=0, out=Path(tmp) / "ds")
        return time.perf_counter() - t0


def time_scipy(problem, n: int) -> tuple[float, str]:
    """scipy's per-sample seconds on the problem's own systems, and what was timed."""
    inputs = problem.sample_inputs(0, range(n))
    if isinstance(problem, Darcy):
        op = darcy_operator(inputs["coefficient"].to(torch.float64), problem.grid)
        b = np.full(op.unknowns, problem.config.forcing)
        matrices = [op.to_scipy(i).tocsc() for i in range(n)]
        t0 = time.perf_counter()
        for A in matrices:
            spla.spsolve(A, b)
        return (time.perf_counter() - t0) / n, "spsolve"
    f = inputs["source"].to(torch.float64)[:, 1:-1, 1:-1].flatten(1).numpy()
    A = problem.operator(1).to_scipy(0).tocsc()
    t0 = time.perf_counter()
    lu = spla.splu(A)
    for rhs in f:
        lu.solve(rhs)
    return (time.perf_counter() - t0) / n, "splu once"


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def constant_coefficient_solves(repeats: int) -> None:
    """Solve-only milliseconds per Poisson system: sine transforms, multigrid-CG, SuperLU."""
    print(f"\n{'unknowns':>9s} {'n':>3s} {'dst':>8s} {'pcg-mg':>8s} {'splu factorise':>15s} "
          f"{'splu solve/rhs':>15s}  (ms)")
    for resolution, n in ((64, 64), (257, 16), (513, 8)):
        problem = Poisson(PoissonConfig(resolution=resolution))
        f = problem.sample_inputs(0, range(n))["source"].to(torch.float64)[:, 1:-1, 1:-1].contiguous()
        op = problem.operator(n)
        # functools.partial binds this iteration's operator, sources and factors before they are timed.
        dst = median_seconds(functools.partial(dst_solve, op, f, rtol=1e-8), repeats) / n
        mg = median_seconds(functools.partial(pcg_mg, op, f, rtol=1e-8), repeats) / n
        A, rhs = op.to_scipy(0).tocsc(), f.flatten(1).numpy().T.copy()
        factorise = median_seconds(functools.partial(spla.splu, A), repeats)
        lu = spla.splu(A)
        solve = median_seconds(functools.partial(lu.solve, rhs), repeats) / n
        print(f"{op.shape[0]:>6d}^2 {n:>3d} {1e3 * dst:>8.2f} {1e3 * mg:>8.2f} {1e3 * factorise:>15.1f} "
              f"{1e3 * solve:>15.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--solves-only", action="store_true", help="only the solve-only table of constant coefficients")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.solves_only:
        constant_coefficient_solves(args.repeats)
        return
    print(f"{'problem':14s} {'resolution':>10s} {'n':>4s} {'samples/s':>10s} {'ms/sample':>10s}  solver")
    for name, cls, config_cls, options, n in CASES:
        problem = cls(config_cls(**options))
        seconds = statistics.median(time_generate(problem, n) for _ in range(args.repeats))
        print(f"{name:14s} {options['resolution']:>10d} {n:>4d} {n / seconds:>10.2f} {1e3 * seconds / n:>10.1f}  "
              f"{choose_method(problem).name}")
        if name in ("darcy", "poisson", "helmholtz"):
            runs = [time_scipy(problem, n) for _ in range(args.repeats)]
            per, what = statistics.median(r[0] for r in runs), runs[0][1]
            print(f"{'  scipy ' + what:14s} {options['resolution']:>10d} {n:>4d} {1 / per:>10.2f} {1e3 * per:>10.1f}"
                  f"  (pdeforge end-to-end is {per / (seconds / n):.2f}x scipy's solve alone)")
    constant_coefficient_solves(args.repeats)


if __name__ == "__main__":
    main()
