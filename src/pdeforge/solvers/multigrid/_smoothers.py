"""Multicolour Gauss-Seidel on sublattices: the symmetric smoother of the V-cycle.

The nodes split into ``2^d`` colours by the parity of each index (the
sublattices of :mod:`._layout`). A stencil with offsets in ``{-1, 0, 1}^d``
never couples two nodes of one colour, so all nodes of a colour relax at
once and a sweep is exact Gauss-Seidel in the colour ordering: red-black
for the 5-point operator, four colours for the 9-point coarse operators
(Trottenberg, Oosterlee and Schueller, *Multigrid*, 2001, sec. 4.1 and
5.4). Sweeping the colours forwards before the coarse correction and
backwards after it makes the V-cycle a symmetric operator, as
preconditioned CG needs.
"""

from __future__ import annotations

import torch

from pdeforge.solvers.multigrid._layout import SplitStencil

__all__ = ["ColouredGaussSeidel"]


class ColouredGaussSeidel:
    """Gauss-Seidel sweeps over the parity colours of a split stencil.

    Vectors are split-layout ``[batch, 2^d, *(h + 2)]``, updated in place.
    Colours are ordered red (even index sum) before black.
    """

    def __init__(self, A: SplitStencil) -> None:
        layout = A.layout
        self.interior = layout.interior[1:]
        parities = sorted(layout.parities, key=lambda p: (sum(p) % 2, p))
        self.order = [layout.index(p) for p in parities]
        self.steps = {}
        for s in self.order:
            centre = next(w for k, w, _, _ in A.terms[s] if k == A.centre)
            inv_diag = torch.where(centre != 0, 1.0 / centre, torch.zeros_like(centre))
            # x_s = D^{-1} b_s + sum_k (-A_k / D) x_(source k)
            weights = [(-(w * inv_diag), src, window) for k, w, src, window in A.terms[s] if k != A.centre]
            self.steps[s] = (inv_diag, weights)
        self.couples = {s: A.couples(s) for s in self.order}
        # After a forward sweep from zero, a colour that no later colour feeds has zero residual.
        self.live_after_forward = [
            s for i, s in enumerate(self.order) if self.couples[s] & set(self.order[i + 1:])
        ]

    def _relax(self, s: int, xp: torch.Tensor, b: torch.Tensor, *, zero_neighbours: bool = False) -> None:
        inv_diag, weights = self.steps[s]
        target = xp[(Ellipsis, s, *self.interior)]
        torch.mul(inv_diag, b[(Ellipsis, s, *self.interior)], out=target)
        if zero_neighbours:
            return
        for weight, source, window in weights:
            target.addcmul_(weight, xp[(Ellipsis, source, *window)])

    def forward(self, xp: torch.Tensor, b: torch.Tensor, *, zero_start: bool = False) -> None:
        """One sweep, colours in order; ``zero_start`` when ``xp`` is zero (skips dead work)."""
        done: set[int] = set()
        for s in self.order:
            self._relax(s, xp, b, zero_neighbours=zero_start and not (self.couples[s] & done))
            done.add(s)

    def backward(self, xp: torch.Tensor, b: torch.Tensor) -> None:
        """One sweep, colours in reverse order (the adjoint of :meth:`forward`)."""
        for s in reversed(self.order):
            self._relax(s, xp, b)
