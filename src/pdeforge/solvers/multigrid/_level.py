"""One level of the V-cycle, planned once: persistent buffers and every view its kernels touch.

A V-cycle issues some four hundred small tensor operations; creating a view
(``x[:, s, 1:-1, 0:-2]``) costs a few microseconds of Python, as much as the
operation itself on the coarse levels. So each level owns its right-hand
side, iterate and residual buffers for the whole life of the hierarchy, and
the windows of every smoothing, residual and transfer term into them are
created once, at setup. A cycle is then a fixed list of in-place kernels.

The list also leaves out work whose result is lost. Exact Gauss-Seidel
gives a colour a value computed from its neighbours alone, so a colour that
the post-smoothing relaxes before any neighbour reads it needs no coarse
correction (with the 5-point fine stencil and ``rbr``, the red half of the
grid: 5 of the 9 prolongation terms), and only the colours that the
pre-smoothing reads before writing them are zeroed at the start of a cycle
(none on the fine grid). The cycle is bit for bit the one without these
shortcuts (``tests/test_multigrid.py``).
"""

from __future__ import annotations

import torch

from pdeforge.solvers.multigrid._layout import SplitStencil
from pdeforge.solvers.multigrid._smoothers import ColouredGaussSeidel, subtract_terms
from pdeforge.solvers.multigrid._transfer import C_, Interpolation

__all__ = ["Level"]


def _windows(buffer: torch.Tensor, s: int, window: tuple[slice, ...]) -> torch.Tensor:
    return buffer[(slice(None), s, *window)]


def _accumulate(terms: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]) -> None:
    """``target += weight * source`` for each planned term (weight ``None``: injection, a plain add)."""
    for target, weight, source in terms:
        if weight is None:
            target.add_(source)
        else:
            target.addcmul_(weight, source)


def _copy(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    for target, source in pairs:
        target.copy_(source)


class Level:
    """Buffers and planned kernels of one level (fixed batch, dtype and device).

    Parameters
    ----------
    A
        The level's operator in the split layout.
    smoother
        Its coloured Gauss-Seidel smoother.
    interpolation
        Transfers to and from the next coarser level.
    pre
        Colours relaxed before the coarse correction (their reverse after it).
    """

    def __init__(self, A: SplitStencil, smoother: ColouredGaussSeidel, interpolation: Interpolation,
                 pre: list[int]) -> None:
        self.A, self.smoother, self.interpolation, self.pre = A, smoother, interpolation, pre
        self.live = smoother.live_after(pre)
        layout, batch = A.layout, A.batch
        self.b = layout.zeros((batch,), A.coeffs)
        self.x = torch.zeros_like(self.b)
        inner = layout.interior[1:]
        self._relax = smoother.plan(self.x, self.b)
        # Residual on the colours the pre-smoothing leaves nonzero.
        self.r = {s: torch.empty_like(self.b[:, s, 1:-1, 1:-1]) for s in self.live}
        self._residual = [
            (self.r[s], _windows(self.b, s, inner),
             [(w, _windows(self.x, src, window)) for _, w, src, window in A.terms[s]])
            for s in self.live
        ]
        # Transfers: coarse values in zero-ringed arrays shaped like one sublattice.
        my, mx = interpolation.shape
        self.restricted = torch.zeros_like(self.b[:, 0])
        self.correction = torch.zeros_like(self.b[:, 0])
        # Injection at the coarse points themselves (weight None): a plain add.
        self._restrict = [
            (self.restricted[(slice(None), *window)], None if s == C_ else weight, self.r[s])
            for s, terms in interpolation.terms.items() if s in self.r for weight, window in terms
        ]
        # Colours the post-smoothing overwrites before reading get no correction (it would be lost),
        # and only colours the pre-smoothing reads before writing them are zeroed at the start.
        self.skipped = smoother.overwritten(pre[::-1])
        self._prolong = [
            (_windows(self.x, s, inner), None if s == C_ else weight, self.correction[(slice(None), *window)])
            for s, terms in interpolation.terms.items() if s not in self.skipped for weight, window in terms
        ]
        self._stale = [self.x[:, s] for s in sorted(smoother.stale_reads(pre, zero_start=True))]
        self.coarse_rhs = self.restricted[:, 1:my + 1, 1:mx + 1]
        self.coarse_solution = self.correction[:, 1:my + 1, 1:mx + 1]
        self._down: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._up: list[tuple[torch.Tensor, torch.Tensor]] = []

    def link(self, coarser: Level) -> None:
        """Plan the copies between this level's coarse arrays and the split buffers of ``coarser``."""
        layout = coarser.A.layout
        for parity in layout.parities:
            s = layout.index(parity)
            rows, cols = ((n - p + 1) // 2 for p, n in zip(parity, layout.shape, strict=True))
            natural = (slice(None), slice(1 + parity[0], 1 + layout.shape[0], 2),
                       slice(1 + parity[1], 1 + layout.shape[1], 2))
            split = (slice(None), s, slice(1, 1 + rows), slice(1, 1 + cols))
            self._down.append((coarser.b[split], self.restricted[natural]))
            self._up.append((self.correction[natural], coarser.x[split]))

    def relax(self, colours: list[int], *, zero_start: bool = False) -> None:
        """Relax ``colours`` in order on this level's ``x`` (``zero_start``: ``x`` is zero)."""
        self.smoother.relax(self._relax, colours, zero_start=zero_start)

    def restrict_residual(self) -> None:
        """``restricted <- P^T (b - A x)`` (the residual computed only where it is nonzero)."""
        for r, rhs, terms in self._residual:
            subtract_terms(rhs, terms, out=r)
        self.restricted.zero_()
        _accumulate(self._restrict)

    def send_down(self) -> None:
        """Copy the restricted residual into the right-hand side of the coarser level."""
        _copy(self._down)

    def fetch_up(self) -> None:
        """Copy the coarser level's solution into this level's coarse correction."""
        _copy(self._up)

    def prolong_correction(self) -> None:
        """``x += P correction`` on every colour but those the post-smoothing overwrites first (``skipped``)."""
        _accumulate(self._prolong)

    def clear(self) -> None:
        """Zero the colours of ``x`` that pre-smoothing from zero reads before it writes them."""
        for part in self._stale:
            part.zero_()
