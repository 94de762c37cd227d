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
    Colours are ordered red (even index sum) before black. ``omega != 1``
    over- or under-relaxes (SOR; a forward and a backward sweep from zero
    apply the SSOR preconditioner).
    """

    def __init__(self, A: SplitStencil, omega: float = 1.0) -> None:
        if not 0 < omega < 2:
            raise ValueError(f"relaxation factor omega={omega} must lie in (0, 2)")
        self.omega = float(omega)
        layout = A.layout
        self.interior = layout.interior[1:]
        parities = sorted(layout.parities, key=lambda p: (sum(p) % 2, p))
        self.order = [layout.index(p) for p in parities]
        self.steps = {}
        for s in self.order:
            centre = A.coefficient(s, A.centre_offset)
            inv_diag = torch.where(centre != 0, self.omega / centre, torch.zeros_like(centre))
            # x_s <- (1 - omega) x_s + omega D^{-1} (b_s - sum_k A_k x_(source k))
            couplings = [(w, src, window) for o, w, src, window in A.terms[s] if o != A.centre_offset]
            self.steps[s] = (inv_diag, couplings)
        self.couples = {s: A.couples(s) for s in self.order}
        # After a forward sweep from zero, a colour that no later colour feeds has zero residual.
        self.live_after_forward = [
            s for i, s in enumerate(self.order) if self.couples[s] & set(self.order[i + 1:]) or self.omega != 1.0
        ]

    def _relax(self, s: int, xp: torch.Tensor, b: torch.Tensor, *, zero_neighbours: bool = False) -> None:
        inv_diag, couplings = self.steps[s]
        target = xp[(Ellipsis, s, *self.interior)]
        rhs = b[(Ellipsis, s, *self.interior)]
        if zero_neighbours:  # x is zero here and on every neighbour
            torch.mul(rhs, inv_diag, out=target)
            return
        (w, source, window), *rest = couplings
        t = torch.addcmul(rhs, w, xp[(Ellipsis, source, *window)], value=-1)
        for w, source, window in rest:
            t.addcmul_(w, xp[(Ellipsis, source, *window)], value=-1)
        if self.omega == 1.0:
            torch.mul(t, inv_diag, out=target)
        else:
            target.mul_(1.0 - self.omega).addcmul_(t, inv_diag)

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
