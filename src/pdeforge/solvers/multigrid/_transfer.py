"""Operator-dependent interpolation between a 2-D grid and its coarsening.

The coarse points are the fine nodes with odd indices in both axes, which
works for every interior size ``n`` (``n // 2`` coarse points per axis; an
even index ``2j`` lies between coarse points ``j - 1`` and ``j``, either of
which may be the zero boundary). The fine nodes fall into four sublattices:

    C  (odd, odd)    coarse points, copied;
    X  (odd, even)   between two coarse points along x;
    Y  (even, odd)   between two coarse points along y;
    F  (even, even)  cell centres, between four coarse points.

The weights follow the matrix, not the geometry (Alcouffe, Brandt, Dendy and
Painter, SIAM J. Sci. Stat. Comput. 2 (1981); Dendy, J. Comput. Phys. 48
(1982), "black box multigrid"): an X point collapses its stencil along y and
solves the resulting 1-D equation, ``w = -colsum(+-1) / colsum(0)``; an F
point solves its own equation with its X and Y neighbours already
interpolated. Across a jump of the coefficient this keeps the flux
continuous where bilinear interpolation would not, which is what keeps the
iteration count flat at contrast 1e4. Restriction is the transpose, so
``R A P`` is symmetric when ``A`` is.

In the split layout of :mod:`._layout` the four kinds are the four
sublattices (F = 0, Y = 1, X = 2, C = 3), and the coarse values, held in a
zero-ringed array shaped like one sublattice, reach every fine point
through unit-stride windows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pdeforge.solvers.multigrid._layout import Sublattices
from pdeforge.solvers.multigrid._stencil import Stencil, lift

__all__ = ["Interpolation"]

_DIAGONALS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


class Interpolation:
    """Prolongation ``P`` and restriction ``R = P^T`` built from a 2-D stencil.

    Parameters
    ----------
    A
        The fine operator, any 2-D stencil (5- or 9-point), SPD or mildly indefinite.

    Fine vectors are split-layout ``[batch, ..., 4, ey + 2, ex + 2]``, coarse
    vectors natural ``[batch, ..., my, mx]`` (extra axes broadcast against
    the per-system weights).
    """

    def __init__(self, A: Stencil) -> None:
        if A.ndim != 2:
            raise ValueError("operator-dependent interpolation is implemented for 2-D stencils")
        ny, nx = A.shape
        self.layout = Sublattices(A.shape)
        self.shape = (ny // 2, nx // 2)
        my, mx = self.shape
        ey, ex = self.layout.half

        def at(offset, rows, cols):
            return A.coefficient(offset)[:, rows, cols]

        def fit(w):  # a sublattice's weights zero-padded to the common [ey, ex]
            return F.pad(w, (0, ex - w.shape[-1], 0, ey - w.shape[-2])).contiguous()

        odd, even = slice(1, None, 2), slice(0, None, 2)
        # X points: collapse the stencil along y (sum each column).
        col = {dx: sum(at((dy, dx), odd, even) for dy in (-1, 0, 1)) for dx in (-1, 0, 1)}
        x_lo, x_hi = -col[-1] / col[0], -col[1] / col[0]
        # Y points: collapse along x (sum each row).
        row = {dy: sum(at((dy, dx), even, odd) for dx in (-1, 0, 1)) for dy in (-1, 0, 1)}
        y_lo, y_hi = -row[-1] / row[0], -row[1] / row[0]
        # F points: their own equation, with the X and Y neighbours interpolated.
        y_pad = {-1: F.pad(y_lo, (1, 1)), 1: F.pad(y_hi, (1, 1))}            # [ey, mx + 2]
        x_pad = {-1: F.pad(x_lo, (0, 0, 1, 1)), 1: F.pad(x_hi, (0, 0, 1, 1))}  # [my + 2, ex]
        centre = at((0, 0), even, even)
        self.f = {}
        for dy, dx in _DIAGONALS:
            sy, sx = (dy + 1) // 2, (dx + 1) // 2
            via_y = at((0, dx), even, even) * y_pad[dy][:, :, sx:sx + ex]
            via_x = at((dy, 0), even, even) * x_pad[dx][:, sy:sy + ey, :]
            self.f[dy, dx] = fit(-(at((dy, dx), even, even) + via_y + via_x) / centre)
        self.x_lo, self.x_hi, self.y_lo, self.y_hi = fit(x_lo), fit(x_hi), fit(y_lo), fit(y_hi)

    def _windows(self):
        """``(fine sublattice, weight, window of the ringed coarse array)`` of every nonzero of ``P``."""
        ey, ex = self.layout.half
        both = (slice(1, ey + 1), slice(1, ex + 1))
        yield 3, None, both
        yield 2, self.x_lo, (slice(1, ey + 1), slice(0, ex))
        yield 2, self.x_hi, both
        yield 1, self.y_lo, (slice(0, ey), slice(1, ex + 1))
        yield 1, self.y_hi, both
        for dy, dx in _DIAGONALS:
            sy, sx = (dy + 1) // 2, (dx + 1) // 2
            yield 0, self.f[dy, dx], (slice(sy, sy + ey), slice(sx, sx + ex))

    def _ringed(self, vc: torch.Tensor) -> torch.Tensor:
        ey, ex = self.layout.half
        return F.pad(vc, (1, ex + 1 - vc.shape[-1], 1, ey + 1 - vc.shape[-2]))

    def prolong_add(self, xp: torch.Tensor, vc: torch.Tensor) -> None:
        """``x += P v`` with ``x`` split-layout and ``v`` natural coarse."""
        cp = self._ringed(vc)
        inner = self.layout.interior[1:]
        for s, weight, window in self._windows():
            target = xp[(Ellipsis, s, *inner)]
            source = cp[(Ellipsis, *window)]
            if weight is None:
                target.add_(source)
            else:
                target.addcmul_(lift(weight, source), source)

    def restrict(self, rp: torch.Tensor, sublattices: set[int] | None = None) -> torch.Tensor:
        """``P^T r`` for split-layout ``r``; ``sublattices`` lists where ``r`` may be nonzero."""
        ey, ex = self.layout.half
        my, mx = self.shape
        out = rp.new_zeros((*rp.shape[:-3], ey + 2, ex + 2))
        inner = self.layout.interior[1:]
        for s, weight, window in self._windows():
            if sublattices is not None and s not in sublattices:
                continue
            source = rp[(Ellipsis, s, *inner)]
            target = out[(Ellipsis, *window)]
            if weight is None:
                target.add_(source)
            else:
                target.addcmul_(lift(weight, source), source)
        return out[..., 1:my + 1, 1:mx + 1]

    def prolong(self, vc: torch.Tensor) -> torch.Tensor:
        """``P v`` in the natural layout (for tests and inspection)."""
        xp = self.layout.zeros(vc.shape[:-2], vc)
        self.prolong_add(xp, vc)
        return self.layout.merge(xp)
