"""What GMRES and GCRO-DR share: a restarted, right-preconditioned solve and its cycles.

Both methods solve ``A M^{-1} z = b`` (right preconditioning, Saad 2003,
sec. 9.3.2) in cycles: each cycle runs an :class:`ArnoldiCycle` from the
current residual, moves ``x += M^{-1} z`` and recomputes the true residual
``b - A x``, which alone decides convergence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from pdeforge.solvers._result import KrylovResult
from pdeforge.solvers.krylov._arnoldi import ArnoldiCycle
from pdeforge.solvers.krylov._history import History
from pdeforge.solvers.krylov._operator import as_operator, as_preconditioner, batch_norm, default_maxiter

__all__ = ["RestartedSolve", "krylov_update", "run_cycle"]


class RestartedSolve:
    """State of a restarted, right-preconditioned solve: ``A``, ``M``, ``b``, ``x`` and the counts.

    Vectors handed to and returned by its methods are flattened to ``[batch, n]``;
    ``A`` and ``M`` see the caller's layout ``[batch, *n]``.
    """

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


def run_cycle(
    cycle: ArnoldiCycle,
    problem: RestartedSolve,
    correction: Callable[[ArnoldiCycle], torch.Tensor],
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None,
    done: torch.Tensor,
) -> list[torch.Tensor]:
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
