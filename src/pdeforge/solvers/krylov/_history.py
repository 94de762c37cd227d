"""Per-system residual histories for methods whose systems take different numbers of steps per cycle."""

from __future__ import annotations

import torch

__all__ = ["History"]


class History:
    """Collects each system's relative residual after each of its own iterations.

    A restarted method runs the batch in lockstep cycles, but inside a cycle a
    system may stop early; row ``t`` of :meth:`tensor` is always the residual
    of a system after *its* ``t``-th iteration, padded with its final value.

    Parameters
    ----------
    initial
        Relative residuals of the initial guesses ``[batch]``.
    """

    def __init__(self, initial: torch.Tensor) -> None:
        self.initial = initial
        self.pieces: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add_cycle(self, estimates: list[torch.Tensor], steps: torch.Tensor, final: torch.Tensor) -> None:
        """Record a cycle: per-step relative estimates, steps taken ``[batch]``, true final residual ``[batch]``.

        The estimate of a system's last step is replaced by its true residual
        after the update, so the history ends where the solution really is.
        """
        if not estimates:
            return
        rows = torch.stack(estimates, dim=0)
        idx = torch.arange(rows.shape[0], device=rows.device)[:, None]
        rows = torch.where(idx == (steps - 1)[None, :], final[None, :], rows)
        self.pieces.append((rows, steps.clone()))

    def tensor(self) -> torch.Tensor:
        """``[max_iterations + 1, batch]``: row 0 the initial residual, then one row per iteration."""
        batch = self.initial.shape[0]
        device = self.initial.device
        total = sum((steps for _, steps in self.pieces), torch.zeros(batch, dtype=torch.int64, device=device))
        hist = self.initial[None].repeat(int(total.max()) + 1 if batch else 1, 1)
        offset = torch.zeros(batch, dtype=torch.int64, device=device)
        cols = torch.arange(batch, device=device)[None, :].expand_as
        for rows, steps in self.pieces:
            t = torch.arange(rows.shape[0], device=device)[:, None]
            keep = t < steps[None, :]
            target = (offset[None, :] + 1 + t)[keep]
            hist[target, cols(keep)[keep]] = rows[keep]
            offset = offset + steps
        # After its last iteration a system keeps its final value.
        t = torch.arange(hist.shape[0], device=device)[:, None]
        final = hist[total, torch.arange(batch, device=device)]
        return torch.where(t > total[None, :], final[None, :], hist)
