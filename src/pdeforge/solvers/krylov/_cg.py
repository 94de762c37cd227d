"""Conjugate gradients, batched over independent symmetric positive definite systems."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pdeforge.solvers._result import KrylovResult
from pdeforge.solvers.krylov._operator import as_operator, as_preconditioner, batch_dot, batch_norm, default_maxiter

__all__ = ["cg"]


def _per_system(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ``[batch]`` scalar shaped to broadcast against ``[batch, *n]``."""
    return s.reshape(-1, *([1] * (x.dim() - 1)))


def cg(
    A: Any,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    rtol: float = 1e-8,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> KrylovResult:
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
        positive definite (default identity).
    callback
        Called as ``callback(k, x, rel_residuals)`` after iteration ``k``.

    Returns
    -------
    KrylovResult
        ``history`` holds the relative (recursive) residual norms.

    References
    ----------
    M. R. Hestenes and E. Stiefel, "Methods of conjugate gradients for solving
    linear systems", J. Res. Nat. Bur. Standards 49 (1952); Y. Saad, *Iterative
    Methods for Sparse Linear Systems*, 2nd ed., SIAM 2003, Algorithm 9.1 (PCG).

    Examples
    --------
    >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> result = cg(A, torch.tensor([[1.0, 2.0]], dtype=torch.float64))
    >>> result.x, int(result.iterations[0])
    (tensor([[0.0909, 0.6364]], dtype=torch.float64), 2)
    """
    op = as_operator(A, b)
    precond = as_preconditioner(M) or (lambda r: r)
    maxiter = default_maxiter(b, maxiter)
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    b_norm = batch_norm(b)
    scale = torch.where(b_norm > 0, b_norm, torch.ones_like(b_norm))

    r = b - op.matvec(x) if x0 is not None else b.clone()
    rel = batch_norm(r) / scale
    active = rel > rtol
    iterations = torch.zeros(b.shape[0], dtype=torch.int64, device=b.device)
    history = [rel]
    z = precond(r)
    p = z.clone()
    rz = batch_dot(r, z)

    for k in range(1, maxiter + 1):
        if not bool(active.any()):
            break
        stepping = active
        Ap = op.matvec(p)
        pAp = batch_dot(p, Ap)
        # Saad Alg. 9.1 line 3: alpha = (r, z) / (A p, p); zero for frozen systems.
        alpha = torch.where(active, rz / torch.where(active, pAp, torch.ones_like(pAp)), torch.zeros_like(rz))
        x = x + _per_system(alpha, x) * p
        r = r - _per_system(alpha, x) * Ap
        iterations += active.to(torch.int64)
        rel = batch_norm(r) / scale

        # A system whose recursive residual reached rtol is checked on its true residual.
        claimed = active & (rel <= rtol)
        restart = torch.zeros_like(active)
        if bool(claimed.any()):
            r_true = b - op.matvec(x)
            rel_true = batch_norm(r_true) / scale
            restart = claimed & (rel_true > rtol)
            r = torch.where(_per_system(restart, x), r_true, r)
            rel = torch.where(claimed, rel_true, rel)
            active = active & ~(claimed & ~restart)
        active = active & (iterations < maxiter)
        rel = torch.where(stepping, rel, history[-1])  # a frozen system keeps its final residual
        history.append(rel)
        if callback is not None:
            callback(k, x, rel)

        # Lines 5-6: new search direction; restarted systems begin a fresh Krylov space.
        z = precond(r)
        rz_new = batch_dot(r, z)
        safe_rz = torch.where(rz != 0, rz, torch.ones_like(rz))
        beta = torch.where(active & ~restart, rz_new / safe_rz, torch.zeros_like(rz))
        p = z + _per_system(beta, x) * p
        rz = rz_new

    hist = torch.stack(history)
    converged = hist[iterations, torch.arange(b.shape[0], device=b.device)] <= rtol
    return KrylovResult(x=x, iterations=iterations, history=hist, converged=converged)
