"""What every linear solver returns: one type for direct, transform and iterative methods."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pdeforge._typing import Flags, IterationCounts, PerSystem, Systems

__all__ = ["SolveResult"]


@dataclass
class SolveResult:
    """The outcome of a batched solve of ``A x = b`` (iterative, direct or by transforms).

    It satisfies the problem layer's
    :class:`~pdeforge.problems.LinearSolveResult` protocol, so every solver
    a problem is handed returns this one type.

    Attributes
    ----------
    x
        Solutions ``[batch, *n]``.
    iterations
        Iterations each system took ``[batch]`` (a system stops being
        updated once it has converged; ``1`` for a direct solve, ``0`` for
        the exact sine-transform solve).
    history
        Relative residual norms ``||b - A x_k|| / ||b||`` per iteration,
        ``[iterations + 1, batch]`` (row 0 is the initial guess).
    converged
        ``[batch]`` whether each system reached ``rtol``.
    extra
        Method-specific state (e.g. GCRO-DR's recycled subspace).
    residual
        Final relative residual per system ``[batch]``; read off
        ``history`` at each system's last iteration when not given.
    """

    x: Systems
    iterations: IterationCounts
    history: torch.Tensor
    converged: Flags
    extra: dict = field(default_factory=dict)
    residual: PerSystem = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.residual is None:
            last = self.iterations.clamp_max(self.history.shape[0] - 1)
            self.residual = self.history.gather(0, last[None].to(self.history.device))[0]

    @classmethod
    def one_shot(cls, x: Systems, residual: PerSystem, rtol: float, iterations: int) -> SolveResult:
        """The result of a non-iterative solve whose final relative ``residual`` was measured."""
        batch = residual.shape[0]
        return cls(
            x=x,
            iterations=torch.full((batch,), iterations, dtype=torch.int64, device=residual.device),
            history=torch.stack([torch.ones_like(residual), residual]),
            converged=residual <= rtol,
            residual=residual,
        )
