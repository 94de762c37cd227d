"""The deep conjugate direction method (Kaneda et al., ICML 2023, Alg. 1).

For symmetric positive definite ``A``, DCDM builds search directions from a
map ``M`` of the normalised residual (a CNN trained to approximate
``A^{-1}``), makes each one A-conjugate to the previous two, and steps with
an exact line search:

    d_k   = M(r_k / ||r_k||)
    d_k  <- d_k - sum_{j in {k-1, k-2}} (d_j^T A d_k / d_j^T A d_j) d_j
    alpha = d_k^T r_k / d_k^T A d_k,   x_{k+1} = x_k + alpha d_k,   r_{k+1} = r_k - alpha A d_k.

With ``M`` the identity the first orthogonalisation is CG's (``r_k`` is
already A-conjugate to ``d_{k-2}`` in exact arithmetic), so DCDM reproduces
CG's iterates; a nonlinear ``M`` has no such three-term structure, which is
why the paper keeps two previous directions rather than one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator
from pdeforge.solvers import SolveResult
from pdeforge.solvers.krylov._operator import per_system as _per_system

__all__ = ["a_orthogonalize", "dcdm"]


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (u * v).flatten(1).sum(1)


def a_orthogonalize(d: torch.Tensor, previous: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Remove from ``d`` its A-components along earlier directions (modified Gram-Schmidt).

    ``previous`` holds pairs ``(p_j, A p_j)``; since ``A`` is symmetric,
    ``p_j^T A d = (A p_j)^T d``, so no product with ``A`` is needed.
    """
    for p, ap in previous:
        coef = _dot(ap, d) / _dot(p, ap).clamp_min(torch.finfo(d.dtype).tiny)
        d = d - _per_system(coef, d) * p
    return d


def _identity(r: torch.Tensor) -> torch.Tensor:
    return r


def dcdm(operator: StencilOperator, b: torch.Tensor, x0: torch.Tensor | None = None, *, rtol: float = 1e-6,
         maxiter: int = 1000, M: Callable[[torch.Tensor], torch.Tensor] = _identity, memory: int = 2,
         fallback: float = 0.0,
         callback: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None) -> SolveResult:
    """Solve SPD systems ``A x = b`` by deep conjugate directions, batched.

    Parameters
    ----------
    operator
        The batched SPD operator.
    b
        Right-hand sides ``[batch, *n]``.
    x0
        Initial guess (zero by default).
    rtol
        Stop a system when ``||b - A x_k|| <= rtol ||b||``.
    maxiter
        Iteration cap.
    M
        Direction map applied to the normalised residual ``[batch, *n]``
        (a trained network; the identity gives CG).
    memory
        Number of previous directions each new one is made A-conjugate to
        (the paper: 2). A longer memory (a truncated flexible-CG
        orthogonalisation) keeps more of the conjugacy a nonlinear ``M``
        loses, at ``memory`` extra dot products and vector updates per step.
    fallback
        Safeguard not in the paper: where the cosine between ``M(r)`` and
        ``r`` is below ``fallback`` the residual itself is used as the raw
        direction. A nonlinear ``M`` can stall DCDM at residuals it maps
        (nearly) orthogonally to themselves, since the line search then
        cannot make progress; ``0`` (default) is the paper's method.
    callback
        Called as ``callback(k, x, r, d)`` after every step with the
        (A-orthogonalised) direction ``d`` of that step.

    Examples
    --------
    >>> from pdeforge.learned_solvers import shifted_laplacian
    >>> op = shifted_laplacian(torch.zeros(1, dtype=torch.float64), 6)
    >>> res = dcdm(op, torch.ones(1, 6, 6, dtype=torch.float64), rtol=1e-10)
    >>> bool(res.converged[0]) and int(res.iterations[0]) <= 36
    True
    """
    if tuple(b.shape) != (operator.batch, *operator.shape):
        raise PdeforgeError(f"right-hand side of shape {tuple(b.shape)} does not match the operator")
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - operator.matvec(x) if x0 is not None else b.clone()
    bnorm = torch.linalg.vector_norm(b.flatten(1), dim=1).clamp_min(torch.finfo(b.dtype).tiny)
    rel = torch.linalg.vector_norm(r.flatten(1), dim=1) / bnorm
    done = rel <= rtol
    iterations = torch.zeros(operator.batch, dtype=torch.int64, device=b.device)
    history = [rel]
    previous: list[tuple[torch.Tensor, torch.Tensor]] = []
    for k in range(1, maxiter + 1):
        if bool(done.all()):
            break
        rn = torch.linalg.vector_norm(r.flatten(1), dim=1).clamp_min(torch.finfo(b.dtype).tiny)
        unit = r / _per_system(rn, r)
        d = M(unit).to(b.dtype)
        if fallback > 0:
            cos = _dot(d, unit) / torch.linalg.vector_norm(d.flatten(1), dim=1).clamp_min(torch.finfo(b.dtype).tiny)
            d = torch.where(_per_system(cos < fallback, d), unit, d)
        d = a_orthogonalize(d, previous[-memory:] if memory else [])
        ad = operator.matvec(d)
        curvature = _dot(d, ad)
        step = _dot(d, r) / curvature.clamp_min(torch.finfo(b.dtype).tiny)
        alpha = torch.where(done | (curvature <= 0), torch.zeros_like(curvature), step)
        x = x + _per_system(alpha, x) * d
        r = r - _per_system(alpha, r) * ad
        previous = (previous + [(d, ad)])[-max(memory, 1):]
        rel = torch.where(done, rel, torch.linalg.vector_norm(r.flatten(1), dim=1) / bnorm)
        iterations = torch.where(done, iterations, torch.full_like(iterations, k))
        done = done | (rel <= rtol)
        history.append(rel)
        if callback is not None:
            callback(k, x, r, d)
    return SolveResult(x=x, iterations=iterations, history=torch.stack(history), converged=done)
