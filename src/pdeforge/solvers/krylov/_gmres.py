"""Restarted GMRES(m), batched over independent systems, right preconditioned."""

from __future__ import annotations

from typing import Any

import torch

from pdeforge._typing import Systems
from pdeforge.errors import PdeforgeError
from pdeforge.solvers._result import SolveResult
from pdeforge.solvers.krylov._arnoldi import ArnoldiCycle
from pdeforge.solvers.krylov._operator import Callback
from pdeforge.solvers.krylov._restarted import Correction, RestartedSolve, krylov_update

__all__ = ["gmres"]


def gmres(
    A: Any,
    b: Systems,
    x0: Systems | None = None,
    *,
    rtol: float = 1e-8,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callback | None = None,
    restart: int = 40,
) -> SolveResult:
    """Solve ``A x = b`` by restarted GMRES(m) with right preconditioning, one system per batch entry.

    Each cycle runs up to ``restart`` Arnoldi steps on ``A M^{-1}`` from the
    current residual, minimises the residual over that space, updates
    ``x += M^{-1} V y`` and recomputes the true residual ``b - A x``. A system
    leaves the batch's work once its true residual meets ``rtol``.

    Parameters
    ----------
    A, b, x0, rtol
        As for every Krylov method in :mod:`pdeforge.solvers.krylov`.
    maxiter
        Maximum inner iterations (Arnoldi steps, i.e. products with ``A``)
        per system (default ``10 n``).
    M, callback
        As for every Krylov method in :mod:`pdeforge.solvers.krylov`.
        ``callback(k, x, rel_residuals)`` is called after every inner step
        with the current iterate (formed only when a callback is given).
    restart
        Cycle length ``m``.

    Returns
    -------
    SolveResult
        ``iterations`` counts inner steps; ``history`` holds the relative
        residual estimates of every step, the true residual at the end of each
        cycle; ``extra["matvecs"]`` counts products with ``A`` for the batch.

    References
    ----------
    Y. Saad and M. H. Schultz, "GMRES: a generalized minimal residual algorithm
    for solving nonsymmetric linear systems", SIAM J. Sci. Stat. Comput. 7
    (1986) 856-869; Y. Saad, *Iterative Methods for Sparse Linear Systems*,
    2nd ed., SIAM 2003, sec. 6.5 (GMRES) and sec. 9.3.2 (right preconditioning).

    Examples
    --------
    >>> A = torch.tensor([[3.0, 1.0], [-1.0, 2.0]], dtype=torch.float64)
    >>> gmres(A, torch.tensor([[1.0, 0.0]], dtype=torch.float64)).x
    tensor([[0.2857, 0.1429]], dtype=torch.float64)
    """
    if restart < 1:
        raise PdeforgeError(f"GMRES needs restart >= 1, got {restart}")
    problem = RestartedSolve(A, b, x0, rtol, maxiter, M)

    def start(r: torch.Tensor, active: torch.Tensor) -> tuple[ArnoldiCycle, Correction]:
        # One cycle: Arnoldi from r, least squares, x += M^{-1} V y.
        return ArnoldiCycle(problem.apply, r, problem.budget(active, restart), rtol * problem.scale), krylov_update

    history = problem.run(problem.initial_flat_residual(), start, callback)
    return problem.result(history.tensor())
