"""What GMRES and GCRO-DR share: a restarted, right-preconditioned solve and its cycles.

Both methods solve ``A M^{-1} z = b`` (right preconditioning, Saad 2003,
sec. 9.3.2) in cycles: each cycle runs an :class:`ArnoldiCycle` from the
current residual, moves ``x += M^{-1} z`` and recomputes the true residual
``b - A x``, which alone decides convergence.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pdeforge.solvers.krylov._arnoldi import ArnoldiCycle
from pdeforge.solvers.krylov._history import History
from pdeforge.solvers.krylov._operator import Callback, KrylovProblem, batch_norm, per_system

__all__ = ["RestartedSolve", "krylov_update", "run_cycle"]

# A cycle's minimal-residual update ``z`` (the solve moves by ``x += M^{-1} z``), flattened.
Correction = Callable[[ArnoldiCycle], torch.Tensor]


class RestartedSolve(KrylovProblem):
    """State of a restarted, right-preconditioned solve: ``A``, ``M``, ``b``, ``x`` and the counts.

    Vectors handed to and returned by its methods are flattened to ``[batch, n]``;
    ``A`` and ``M`` see the caller's layout ``[batch, *n]``.
    """

    def M(self, z: torch.Tensor) -> torch.Tensor:
        """``M^{-1} z`` on flattened vectors ``[batch, n]``."""
        return z if self.precond is None else self.precond(z.reshape(self.shape)).reshape(z.shape)

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """``A M^{-1} z`` on flattened vectors: the right-preconditioned operator."""
        self.matvecs += 1
        return self.op.matvec(self.M(z).reshape(self.shape)).reshape(z.shape)

    def initial_flat_residual(self) -> torch.Tensor:
        """The initial guess's residual, flattened ``[batch, n]``."""
        return self.initial_residual().reshape(self.b.shape[0], -1)

    def residual(self) -> torch.Tensor:
        """True residual ``b - A x``, flattened ``[batch, n]``."""
        return self.true_residual().reshape(self.b.shape[0], -1)

    def correct(self, z: torch.Tensor, active: torch.Tensor) -> None:
        """``x += M^{-1} z`` for the active systems (``z`` flattened)."""
        step = self.M(z).reshape(self.shape)
        self.x = torch.where(per_system(active, self.x), self.x + step, self.x)

    def budget(self, active: torch.Tensor, size: int | torch.Tensor) -> torch.Tensor:
        """Steps each active system may take in a cycle of ``size`` (respecting ``maxiter``)."""
        left = torch.rsub(self.iterations, self.maxiter).clamp_min(0)  # maxiter - iterations
        cap = torch.minimum(left, torch.as_tensor(size, device=left.device))
        return torch.where(active, cap, torch.zeros_like(left))

    def run(
        self,
        r: torch.Tensor,
        start: Callable[[torch.Tensor, torch.Tensor], tuple[ArnoldiCycle, Correction]],
        callback: Callback | None,
        finish: Callable[[ArnoldiCycle], None] | None = None,
    ) -> History:
        """The restart loop: cycle from the flattened residual ``r`` until every system is done.

        ``start(r, active)`` builds the next cycle from the current residual
        (with :meth:`budget` steps for the ``active`` systems) and the
        correction it makes; after the cycle, ``x += M^{-1} z`` and the true
        residual, which alone decides convergence, restarts the next one;
        ``finish(cycle)`` then sees the finished cycle (GCRO-DR keeps its
        harmonic Ritz vectors). Returns the per-system history.
        """
        rel = batch_norm(r) / self.scale
        history = History(rel)
        active = (rel > self.rtol) & (self.iterations < self.maxiter)
        while bool(active.any()):
            cycle, correction = start(r, active)
            trace = run_cycle(cycle, self, correction, callback, self.iterations)
            self.correct(correction(cycle), cycle.steps > 0)
            self.iterations += cycle.steps
            r = self.residual()
            rel = torch.where(cycle.steps > 0, batch_norm(r) / self.scale, rel)
            history.add_cycle(trace, cycle.steps, rel)
            if finish is not None:
                finish(cycle)
            active = (rel > self.rtol) & (self.iterations < self.maxiter)
        return history


def run_cycle(
    cycle: ArnoldiCycle,
    problem: RestartedSolve,
    correction: Correction,
    callback: Callback | None,
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
