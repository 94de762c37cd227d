"""Generation throughput of every problem at two resolutions, and Darcy vs scipy spsolve.

Run:  .venv/bin/python benchmarks/generation.py [--repeats 3]

For each generator, times ``pdeforge.data.generate`` end to end (sampling,
solving, writing checksummed shards) and prints samples/s (median of the
repeats). For Darcy it also times scipy's ``spsolve`` on the very same
assembled systems in the same run, per sample.
"""

from __future__ import annotations

import argparse
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
    NavierStokes,
    NavierStokesConfig,
)
from pdeforge.problems.darcy import darcy_operator

CASES = [
    ("darcy", Darcy, DarcyConfig, {"resolution": 64}, 64),
    ("darcy", Darcy, DarcyConfig, {"resolution": 257}, 16),
    ("burgers", Burgers, BurgersConfig, {"resolution": 256}, 32),
    ("burgers", Burgers, BurgersConfig, {"resolution": 1024}, 32),
    ("navier-stokes", NavierStokes, NavierStokesConfig, {"resolution": 64, "t_final": 10.0, "n_times": 10}, 16),
    ("navier-stokes", NavierStokes, NavierStokesConfig, {"resolution": 128, "t_final": 10.0, "n_times": 10}, 8),
]


def time_generate(problem, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate(problem, n=n, seed=0, out=Path(tmp) / "ds")
        return time.perf_counter() - t0


def time_spsolve(problem: Darcy, n: int) -> float:
    a = problem.sample_inputs(0, range(n))["coefficient"]
    op = darcy_operator(a, problem.grid)
    b = np.full(op.unknowns, problem.config.forcing)
    matrices = [op.to_scipy(i).tocsc() for i in range(n)]
    t0 = time.perf_counter()
    for A in matrices:
        spla.spsolve(A, b)
    return (time.perf_counter() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'problem':14s} {'resolution':>10s} {'n':>4s} {'samples/s':>10s} {'ms/sample':>10s}  solver")
    for name, cls, config_cls, options, n in CASES:
        problem = cls(config_cls(**options))
        seconds = statistics.median(time_generate(problem, n) for _ in range(args.repeats))
        print(f"{name:14s} {options['resolution']:>10d} {n:>4d} {n / seconds:>10.2f} {1e3 * seconds / n:>10.1f}  {problem.method_name}")
        if name == "darcy":
            per = statistics.median(time_spsolve(problem, n) for _ in range(args.repeats))
            ratio = per / (seconds / n)
            print(f"{'  scipy spsolve':14s} {options['resolution']:>10d} {n:>4d} {1 / per:>10.2f} {1e3 * per:>10.1f}"
                  f"  (pdeforge end-to-end is {ratio:.2f}x spsolve alone)")


if __name__ == "__main__":
    main()
