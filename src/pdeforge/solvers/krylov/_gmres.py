"""Restarted GMRES(m), batched over independent systems, right preconditioned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pdeforge.errors import PdeforgeError
from pdeforge.solvers._result import KrylovResult
from pdeforge.solvers.krylov._arnoldi import ArnoldiCycle
from pdeforge.solvers.krylov._history import History
from pdeforge.solvers.krylov._operator import as_operator, as_preconditioner, batch_norm, default_maxiter

__all__ = ["gmres"]


class _Problem:
    """What every cycle of GMRES and GCRO-DR shares: ``A``, ``M``, ``b`` and the bookkeeping."""

    def __init__(self, A: Any, b: torch.Tensor, x0: torch.Tensor | None, rtol: float, maxiter: int | None, M: Any):
        self.op = as_operator(A, b)
        self.precond = as_preconditioner(M)
        self.b, self.shape, self.rtol = b, b.shape, rtol
        self.maxiter = default_maxiter(b, maxiter)
        self.x = torch.zeros_like(b) if x0 is None else x0.clone()
        b_norm = batch_norm(b)
        self.scale = torch.where(b_norm > 0, b_norm, torch.ones_like(b_norm))
        self.iterations = torch.zeros(b.shape[0], dtype=torch.int64, device=b.device)
        self.matvecs = 0

    def M(self, z: torch.Tensor) -> torch.Tensor:
        """``M^{-1} z`` on flattened vectors ``[batch, n]``."""
        return z if self.precond is None else self.precond(z.reshape(self.shape)).reshape(z.shape)

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """``A M^{-1} z`` on flattened vectors: the right-preconditioned operator."""
        self.matvecs += 1
        return self.op.matvec(self.M(z).reshape(self.shape)).reshape(z.shape)

    def residual(self) -> torch.Tensor:
        """True residual ``b - A x``, flattened ``[batch, n]``."""
        self.matvecs += 1
        return (self.b - self.op.matvec(self.x)).reshape(self.b.shape[0], -1)

    def correct(self, z: torch.Tensor, active: torch.Tensor) -> None:
        """``x += M^{-1} z`` for the active systems (``z`` flattened)."""
        step = self.M(z).reshape(self.shape)
        self.x = torch.where(active.reshape(-1, *([1] * (self.x.dim() - 1))), self.x + step, self.x)

    def budget(self, active: torch.Tensor, size: int | torch.Tensor) -> torch.Tensor:
        """Steps each active system may take in a cycle of ``size`` (respecting ``maxiter``)."""
        left = (self.maxiter - self.iterations).clamp_min(0)
        return torch.where(active, torch.minimum(left, torch.as_tensor(size, device=left.device)), torch.zeros_like(left))

    def result(self, history: History, extra: dict | None = None) -> KrylovResult:
        hist = history.tensor()
        final = hist[self.iterations, torch.arange(self.b.shape[0], device=self.b.device)]
        extra = {"matvecs": self.matvecs, **(extra or {})}
        return KrylovResult(x=self.x, iterations=self.iterations, history=hist, converged=final <= self.rtol, extra=extra)


def run_cycle(cycle: ArnoldiCycle, problem: _Problem, correction, callback, done: torch.Tensor) -> list[torch.Tensor]:
    """Run ``cycle``; returns each step's relative residual estimates ``[batch]``.

    ``correction(cycle)`` gives the flattened update ``z`` (``x += M^{-1} z``)
    the cycle would make now; it is formed after a step only when a
    ``callback`` wants the iterate.
    """
    trace = []

    def on_step(c: ArnoldiCycle, took: torch.Tensor) -> None:
        rel = c.estimate / problem.scale
        trace.append(rel)
        if callback is not None:
            x_now = problem.x + problem.M(correction(c)).reshape(problem.shape)
            callback(int((done + c.steps).max()), x_now, rel)

    cycle.run(on_step)
    return trace


def krylov_update(cycle: ArnoldiCycle) -> torch.Tensor:
    """``V y``: the minimal-residual combination of a cycle's Krylov vectors, flattened."""
    return torch.bmm(cycle.solve().unsqueeze(1), cycle.vectors[:, : cycle.j]).squeeze(1)


def gmres(
    A: Any,
    b: torch.Tensor,
    x0: torch.Tensor | None = None,
    *,
    rtol: float = 1e-8,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    restart: int = 40,
) -> KrylovResult:
    """Solve ``A x = b`` by restarted GMRES(m) with right preconditioning, one system per batch entry.

    Each cycle runs up to ``restart`` Arnoldi steps on ``A M^{-1}`` from the
    current residual, minimises the residual over that space, updates
    ``x += M^{-1} V y`` and recomputes the true residual ``b - A x``. A system
    leaves the batch's work once its true residual meets ``rtol``.

    Parameters
    ----------
    A, b, x0, rtol, M, callback
        As for every Krylov method in :mod:`pdeforge.solvers.krylov`.
        ``callback(k, x, rel_residuals)`` is called after every inner step
        with the current iterate (formed only when a callback is given).
    maxiter
        Maximum inner iterations (Arnoldi steps, i.e. products with ``A``)
        per system (default ``10 n``).
    restart
        Cycle length ``m``.

    Returns
    -------
    KrylovResult
        ``iterations`` counts inner steps; ``history`` holds the relative
        residual estimates of every step, the true residual at the end of each
        cycle; ``extra["matvecs"]`` counts products with ``A`` for the batch.

    References
    ----------
    Y. Saad and M. H. Schultz, "GMRES: a generalized minimal residual algorithm
    for solving nonsymmetric linear systems", SIAM J. Sci. Stat. Comput. 7
    (1986) 856-869; Y. Saad, *Iterative Methods for Sparse Linear Systems*,
    2nd ed., SIAM 2003, Algorithms 6.10 (GMRES) and 9.5 (right preconditioning).

    Examples
    --------
    >>> A = torch.tensor([[3.0, 1.0], [-1.0, 2.0]], dtype=torch.float64)
    >>> gmres(A, torch.tensor([[1.0, 0.0]], dtype=torch.float64)).x
    tensor([[0.2857, 0.1429]], dtype=torch.float64)
    """
    if restart < 1:
        raise PdeforgeError(f"GMRES needs restart >= 1, got {restart}")
    problem = _Problem(A, b, x0, rtol, maxiter, M)
    r = problem.residual() if x0 is not None else b.reshape(b.shape[0], -1).clone()
    rel = batch_norm(r) / problem.scale
    history = History(rel)
    active = (rel > rtol) & (problem.iterations < problem.maxiter)
    while bool(active.any()):
        # One cycle: Arnoldi from r, least squares, x += M^{-1} V y (Saad Alg. 6.10 steps 1-5).
        cycle = ArnoldiCycle(problem.apply, r, problem.budget(active, restart), rtol * problem.scale)
        trace = run_cycle(cycle, problem, krylov_update, callback, problem.iterations)
        problem.correct(krylov_update(cycle), cycle.steps > 0)
        problem.iterations += cycle.steps
        # Restart from the true residual, which decides convergence.
        r = problem.residual()
        rel = torch.where(cycle.steps > 0, batch_norm(r) / problem.scale, rel)
        history.add_cycle(trace, cycle.steps, rel)
        active = (rel > rtol) & (problem.iterations < problem.maxiter)
    return problem.result(history)
