"""Conjugate gradients, batched over independent symmetric positive definite systems."""

from __future__ import annotations

from typing import Any

import torch

from pdeforge._typing import Systems
from pdeforge.solvers._result import SolveResult
from pdeforge.solvers.krylov._operator import Callback, KrylovProblem, batch_dot, batch_norm, per_system

__all__ = ["cg"]


def cg(
    A: Any,
    b: Systems,
    x0: Systems | None = None,
    *,
    rtol: float = 1e-8,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callback | None = None,
) -> SolveResult:
    """Solve ``A x = b`` by (preconditioned) conjugate gradients, one system per batch entry.

    Each system has its own step lengths ``alpha`` and ``beta``; a system
    that has converged is frozen (its iterate no longer changes), so its
    result is the one it would get if solved alone. Convergence is declared
    on the recursively updated residual and then confirmed on the true
    residual ``b - A x``; if the two disagree the system restarts from the
    true residual, so a converged system really meets ``rtol``.

    Parameters
    ----------
    A
        ``[batch, *n] -> [batch, *n]`` symmetric positive definite operator:
        anything :func:`~pdeforge.solvers.krylov.as_operator` accepts.
    b
        Right-hand sides ``[batch, *n]``.
    x0
        Initial guesses (default zero).
    rtol
        Stop a system when ``||b - A x|| <= rtol ||b||``.
    maxiter
        Maximum iterations per system (default ``10 n``).
    M
        Preconditioner ``r -> M^{-1} r`` on ``[batch, *n]``, symmetric
        positive definite (default identity). If it takes an ``out=``
        keyword, as :meth:`Multigrid.cycle <pdeforge.solvers.multigrid.Multigrid.cycle>`
        does, each call writes into the previous call's result, which CG
        no longer needs; likewise a ``matvec(x, out=)`` of ``A``.
    callback
        Called as ``callback(k, x, rel_residuals)`` after iteration ``k``.

    Returns
    -------
    SolveResult
        ``history`` holds the relative (recursive) residual norms;
        ``extra["matvecs"]`` counts products with ``A`` for the batch.

    References
    ----------
    M. R. Hestenes and E. Stiefel, "Methods of conjugate gradients for solving
    linear systems", J. Res. Nat. Bur. Standards 49 (1952); Y. Saad, *Iterative
    Methods for Sparse Linear Systems*, 2nd ed., SIAM 2003, sec. 6.7 (CG) and sec. 9.2 (PCG).

    Examples
    --------
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> result = cg(A, torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    >>> result.x, int(result.iterations[0])
    (tensor([[0.0909, 0.6364]], dtype=torch.float64), 2)
    """
    problem = KrylovProblem(A, b, x0, rtol, maxiter, M)
    x, scale, iterations = problem.x, problem.scale, problem.iterations

    r = problem.initial_residual()
    rel = batch_norm(r) / scale
    active = rel > rtol
    history = [rel]
    z = problem.precondition(r, None)
    p = z.clone()
    rz = batch_dot(r, z)
    Ap = None

    for k in range(1, problem.maxiter + 1):
        if not bool(active.any()):
            break
        stepping = active
        Ap = problem.product(p, Ap)  # each iteration reuses the buffers of A p and z (no new pages)
        pAp = batch_dot(p, Ap)
        # alpha = (r, z) / (A p, p), per system; zero for frozen systems.
        alpha = torch.where(active, rz / torch.where(active, pAp, torch.ones_like(pAp)), torch.zeros_like(rz))
        step = per_system(alpha, x)
        x.addcmul_(step, p)  # in place: x, r and p are owned by this solve
        r.addcmul_(step, Ap, value=-1.0)
        iterations += active.to(torch.int64)
        rel = batch_norm(r) / scale

        # A system whose recursive residual reached rtol is checked on its true residual.
        claimed = active & (rel <= rtol)
        restart = torch.zeros_like(active)
        if bool(claimed.any()):
            r_true = problem.true_residual(Ap)  # A p is spent: its buffer takes b - A x
            rel_true = batch_norm(r_true) / scale
            restart = claimed & (rel_true > rtol)
            torch.where(per_system(restart, x), r_true, r, out=r)
            rel = torch.where(claimed, rel_true, rel)
            active = active & ~(claimed & ~restart)
        active = active & (iterations < problem.maxiter)
        rel = torch.where(stepping, rel, history[-1])  # a frozen system keeps its final residual
        history.append(rel)
        if callback is not None:
            callback(k, x, rel)

        # Lines 5-6: new search direction; restarted systems begin a fresh Krylov space.
        z = problem.precondition(r, z if z is not r else None)
        rz_new = batch_dot(r, z)
        safe_rz = torch.where(rz != 0, rz, torch.ones_like(rz))
        beta = torch.where(active & ~restart, rz_new / safe_rz, torch.zeros_like(rz))
        torch.addcmul(z, p, per_system(beta, x), out=p)  # p <- z + beta p, one pass
        rz = rz_new

    return problem.result(torch.stack(history))
