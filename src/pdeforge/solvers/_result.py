"""What every iterative linear solver returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["KrylovResult"]


@dataclass
class KrylovResult:
    """The outcome of a batched iterative solve of ``A x = b``.

    Attributes
    ----------
    x
        Solutions ``[batch, *n]``.
    iterations
        Iterations each system took ``[batch]`` (a system stops being
        updated once it has converged).
    history
        Relative residual norms ``||b - A x_k|| / ||b||`` per iteration,
        ``[iterations + 1, batch]`` (row 0 is the initial guess).
    converged
        ``[batch]`` whether each system reached ``rtol``.
    extra
        Method-specific state (e.g. GCRO-DR's recycled subspace).
    """

    x: torch.Tensor
    iterations: torch.Tensor
    history: torch.Tensor
    converged: torch.Tensor
    extra: dict = field(default_factory=dict)

    @property
    def residual(self) -> torch.Tensor:
        """Final relative residual per system ``[batch]``."""
        last = self.iterations.clamp_max(self.history.shape[0] - 1)
        return self.history.gather(0, last[None].to(self.history.device))[0]
