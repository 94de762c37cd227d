"""SKR on Darcy flow: GCRO-DR(40, 20), unsorted and sorted, against GMRES(40) (Wang et al., ICLR 2024).

Run:  .bench-venv/bin/python benchmarks/skr.py [--systems 24] [--repeats 3]

The paper's Darcy setting, as in the authors' data scripts (repository
wanghong1700/NO-DataGen-SKR, ``code_dracy/exp_generate_mpi_82_sort.py``):
``-div(a grad u) = 1`` with zero Dirichlet data, ``a = exp(g)``, ``g`` a
Gaussian random field with ``alpha = 2.5, tau = 7``; 6400 unknowns (80 x 80
interior); GMRES restart 40 against GCRO-DR with 20 recycled vectors
(PETSc/HPDDM ``-ksp_gmres_restart 40 -ksp_hpddm_recycle 20``), rtol 1e-8, no
preconditioner, greedy nearest-neighbour order by Frobenius distance of the
coefficient fields, 100 systems. An "iteration" is one Arnoldi step (one
product with A), as PETSc counts it.

Deviations (printed with the table): fewer systems (``--systems``) to fit a
few minutes on two busy cores; the log-coefficient field is pdeforge's
Neumann-cosine GRF with its variance matched to the authors' periodic one
(std(log a) ~ 0.19) instead of their FFT field; ``--operator flux`` (default)
is pdeforge's symmetric flux-form stencil, ``--operator authors`` their
non-symmetric ``-Lap(a u)`` matrix (``4 a_ij - a_neighbours`` rows).

In the same run, as peers on the very same assembled matrices: scipy's
``gmres(restart=40)`` and scipy's recycling solver ``gcrotmk`` (GCROT(m, k)
of de Sturler / Hicken & Zingg, ``m = k = 20`` so that both hold a 40-vector
space, sharing its recycled ``CU`` across the sequence). Timings are medians
over ``--repeats`` of the whole sequence; torch runs on one thread (OpenMP
threads oversubscribed by other jobs slow small kernels by up to 100x).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdeforge.problems import Darcy, DarcyConfig, StencilOperator
from pdeforge.problems.darcy import darcy_operator
from pdeforge.solvers.recycling import greedy_order, path_length, solve_sequence

ALPHA, TAU = 2.5, 7.0
NEUMANN_SCALE = 130.0  # Neumann-GRF covariance multiplier giving std(log a) ~ 0.19, the authors' value


class MinusLaplacianOfProduct:
    """The authors' matrix: ``(A u)_p = 4 a_p u_p - sum_q a_q u_q`` over the 4 neighbours q (unscaled)."""

    def __init__(self, a_interior: torch.Tensor) -> None:
        n = a_interior.shape[-1]
        ones = [torch.ones(1, n + 1, n, dtype=a_interior.dtype), torch.ones(1, n, n + 1, dtype=a_interior.dtype)]
        self.laplacian = StencilOperator(ones, (1.0, 1.0))
        self.a = a_interior

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        return self.laplacian.matvec(self.a * u)

    def to_scipy(self, index: int = 0) -> sp.csr_matrix:
        return (self.laplacian.to_scipy(0) @ sp.diags(self.a[index].numpy().ravel())).tocsr()


def build(resolution: int, systems: int, operator: str, coefficient: str):
    if coefficient == "lognormal":
        config = DarcyConfig(resolution=resolution, coefficient="lognormal", coeff_alpha=ALPHA, coeff_tau=TAU,
                             coeff_scale=NEUMANN_SCALE)
    else:  # FNO's thresholded field, a = 12 or 3: a harder, higher-contrast variant
        config = DarcyConfig(resolution=resolution)
    problem = Darcy(config)
    a = problem.sample_inputs(0, range(systems))["coefficient"]
    n = resolution - 2
    if operator == "flux":
        ops = [darcy_operator(a[i : i + 1], problem.grid) for i in range(systems)]
        b = torch.ones(1, n, n, dtype=torch.float64)
    else:
        ops = [MinusLaplacianOfProduct(a[i : i + 1, 1:-1, 1:-1]) for i in range(systems)]
        b = torch.full((1, n, n), 1.0 / (resolution - 1) ** 2, dtype=torch.float64)  # h^2 f, as the authors
    return a, ops, b


def run_pdeforge(ops, b, a, rtol, m, k, method, sort, repeats):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = solve_sequence(ops, b, a, method=method, m=m, k=k, rtol=rtol, sort=sort, maxiter=20000)
        times.append(time.perf_counter() - t0)
    assert bool(result.converged.all()), "a system missed rtol"
    return {"iterations": result.iterations.numpy(), "matvecs": result.matvecs.numpy(),
            "seconds": statistics.median(times), "residual": float(result.residual.max()), "order": result.order}


class Counted(spla.LinearOperator):
    def __init__(self, matrix):
        super().__init__(matrix.dtype, matrix.shape)
        self.matrix, self.count = matrix, 0

    def _matvec(self, x):
        self.count += 1
        return self.matrix @ x


def run_scipy(matrices, rhs, rtol, m, k, order, recycle, repeats):
    times, counts, worst = [], [], 0.0
    for _ in range(repeats):
        counts, worst, CU = [], 0.0, []
        t0 = time.perf_counter()
        for i in order:
            A = Counted(matrices[i])
            if recycle:
                x, info = spla.gcrotmk(A, rhs, rtol=rtol, atol=0.0, m=m - k, k=k, CU=CU, discard_C=True, maxiter=2000)
            else:
                x, info = spla.gmres(A, rhs, rtol=rtol, atol=0.0, restart=m, maxiter=2000)
            counts.append(A.count)
            worst = max(worst, float(np.linalg.norm(rhs - matrices[i] @ x) / np.linalg.norm(rhs)))
        times.append(time.perf_counter() - t0)
    return {"matvecs": np.array(counts), "seconds": statistics.median(times), "residual": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolution", type=int, default=82,
                        help="grid nodes per axis incl. boundary (82 -> 6400 unknowns)")
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--m", type=int, default=40)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--operator", choices=["flux", "authors"], default="flux")
    parser.add_argument("--coefficient", choices=["lognormal", "piecewise"], default="lognormal")
    parser.add_argument("--no-scipy", action="store_true", help="skip the scipy peers")
    args = parser.parse_args()
    torch.set_num_threads(1)

    a, ops, b = build(args.resolution, args.systems, args.operator, args.coefficient)
    n = ops[0].matvec(b).numel()
    log_std = float(torch.log(a).std())
    print(f"Darcy, {args.coefficient} coefficient, {args.operator} operator, n = {n} unknowns, "
          f"{args.systems} systems, std(log a) = {log_std:.3f}, "
          f"rtol = {args.rtol:g}, GMRES({args.m}) vs GCRO-DR({args.m},{args.k}), repeats = {args.repeats}")
    identity = torch.arange(args.systems)
    greedy = greedy_order(a)
    print(f"parameter path length: original order {path_length(a, identity):.1f}, greedy {path_length(a, greedy):.1f}")

    rows = {}
    common = dict(rtol=args.rtol, m=args.m, k=args.k, repeats=args.repeats)
    rows["GMRES(40)"] = run_pdeforge(ops, b, a, method="gmres", sort=False, **common)
    rows["GCRO-DR, original order"] = run_pdeforge(ops, b, a, method="gcrodr", sort=False, **common)
    rows["GCRO-DR, greedy order (SKR)"] = run_pdeforge(ops, b, a, method="gcrodr", sort="greedy", **common)
    peers = {}
    if not args.no_scipy:
        matrices = [op.to_scipy(0) for op in ops]
        rhs = b[0].numpy().ravel()
        peers["scipy gmres(restart=40)"] = run_scipy(matrices, rhs, args.rtol, args.m, args.k, identity.tolist(),
                                                     False, args.repeats)
        peers["scipy gcrotmk(20, 20), greedy order"] = run_scipy(matrices, rhs, args.rtol, args.m, args.k,
                                                                 greedy.tolist(), True, args.repeats)

    base = rows["GMRES(40)"]
    print()
    print("| solver | total iterations | mean iterations / system | mean after 1st system | matvecs | time (s) | "
          "iteration ratio vs GMRES | time ratio vs GMRES | max true rel. residual |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows.items():
        its = r["iterations"]
        later = its[r["order"][1:].numpy()]
        print(f"| pdeforge {name} | {its.sum()} | {its.mean():.1f} | {later.mean():.1f} | {r['matvecs'].sum()} | "
              f"{r['seconds']:.2f} | {base['iterations'].sum() / its.sum():.2f}x | "
              f"{base['seconds'] / r['seconds']:.2f}x | {r['residual']:.2e} |")
    for name, r in peers.items():
        print(f"| {name} | - | - | - | {r['matvecs'].sum()} | {r['seconds']:.2f} | "
              f"{base['matvecs'].sum() / r['matvecs'].sum():.2f}x (matvecs) | "
              f"{base['seconds'] / r['seconds']:.2f}x | {r['residual']:.2e} |")
    unsorted = rows["GCRO-DR, original order"]["iterations"].sum()
    skr = rows["GCRO-DR, greedy order (SKR)"]["iterations"].sum()
    print()
    print(f"sorting ablation: greedy order saves {100 * (unsorted - skr) / unsorted:.1f}% of GCRO-DR iterations "
          f"({unsorted} -> {skr}; paper: about 9%)")


if __name__ == "__main__":
    main()
