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

from pdeforge.solvers.multigrid._layout import SplitStencil
from pdeforge.solvers.multigrid._stencil import lift

__all__ = ["Interpolation"]

_DIAGONALS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


F_, Y_, X_, C_ = 0, 1, 2, 3  # sublattices of (row, column) parity (0, 0), (0, 1), (1, 0), (1, 1)


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, zero where ``den`` is (the slots beyond the grid)."""
    return torch.where(den != 0, num / torch.where(den != 0, den, torch.ones_like(den)), torch.zeros_like(num))


class Interpolation:
    """Prolongation ``P`` and restriction ``R = P^T`` built from a 2-D stencil.

    Parameters
    ----------
    A
        The fine operator in the split layout, any 2-D stencil (5- or
        9-point), SPD or mildly indefinite.

    Fine vectors are split-layout ``[batch, ..., 4, ey + 2, ex + 2]``, coarse
    vectors natural ``[batch, ..., my, mx]`` (extra axes broadcast against
    the per-system weights). ``terms[s]`` lists the nonzeros of ``P`` on
    fine sublattice ``s`` as ``(weight [batch, ey, ex], window)``: the fine
    node at ``(a, b)`` takes ``weight * c[window]`` from the coarse values
    ``c`` held in a zero-ringed ``[ey + 2, ex + 2]`` array (coarse node
    ``(I, J)`` at ``(I + 1, J + 1)``).
    """

    def __init__(self, A: SplitStencil) -> None:
        if A.layout.ndim != 2:
            raise ValueError("operator-dependent interpolation is implemented for 2-D stencils")
        ny, nx = A.shape
        self.layout = A.layout
        self.shape = (ny // 2, nx // 2)
        ey, ex = A.layout.half
        zero = torch.zeros((A.batch, ey, ex), dtype=A.dtype, device=A.device)

        def a(s, offset):
            c = A.coefficient(s, offset)
            return zero if c is None else c

        def ringed(w):
            return F.pad(w, (1, 1, 1, 1))

        # X points: collapse the stencil along y (sum each column) and solve the 1-D equation.
        col = {dx: sum(a(X_, (dy, dx)) for dy in (-1, 0, 1)) for dx in (-1, 0, 1)}
        x_w = {-1: _safe_ratio(-col[-1], col[0]), 1: _safe_ratio(-col[1], col[0])}
        # Y points: collapse along x (sum each row).
        row = {dy: sum(a(Y_, (dy, dx)) for dx in (-1, 0, 1)) for dy in (-1, 0, 1)}
        y_w = {-1: _safe_ratio(-row[-1], row[0]), 1: _safe_ratio(-row[1], row[0])}
        # F points: their own equation, with the X and Y neighbours already interpolated.
        f_w = {}
        for dy, dx in _DIAGONALS:
            _, y_window = A.layout.neighbour((0, 0), (0, dx))
            _, x_window = A.layout.neighbour((0, 0), (dy, 0))
            total = a(F_, (dy, dx)) + a(F_, (0, dx)) * ringed(y_w[dy])[(Ellipsis, *y_window)] \
                + a(F_, (dy, 0)) * ringed(x_w[dx])[(Ellipsis, *x_window)]
            f_w[dy, dx] = _safe_ratio(-total, a(F_, (0, 0)))
        # C points: injection (zero in the slots beyond the grid).
        my, mx = self.shape
        one = torch.zeros_like(zero)
        one[:, :my, :mx] = 1

        inner = (slice(1, ey + 1), slice(1, ex + 1))
        self.terms = {
            C_: [(one, inner)],
            X_: [(x_w[-1], (slice(1, ey + 1), slice(0, ex))), (x_w[1], inner)],
            Y_: [(y_w[-1], (slice(0, ey), slice(1, ex + 1))), (y_w[1], inner)],
            F_: [(f_w[dy, dx], (slice((dy + 1) // 2, (dy + 1) // 2 + ey), slice((dx + 1) // 2, (dx + 1) // 2 + ex)))
                 for dy, dx in _DIAGONALS],
        }

    def _ringed(self, vc: torch.Tensor) -> torch.Tensor:
        ey, ex = self.layout.half
        return F.pad(vc, (1, ex + 1 - vc.shape[-1], 1, ey + 1 - vc.shape[-2]))

    def prolong_add(self, xp: torch.Tensor, vc: torch.Tensor) -> None:
        """``x += P v`` with ``x`` split-layout and ``v`` natural coarse."""
        cp = self._ringed(vc)
        inner = self.layout.interior[1:]
        for s, terms in self.terms.items():
            target = xp[(Ellipsis, s, *inner)]
            for weight, window in terms:
                if s == C_:
                    target.add_(cp[(Ellipsis, *window)])
                else:
                    target.addcmul_(lift(weight, target), cp[(Ellipsis, *window)])

    def restrict(self, r: dict[int, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """``P^T r`` to natural coarse ``[batch, ..., my, mx]``.

        ``r`` is a split-layout vector, or ``{sublattice: [batch, ..., ey, ex]}``
        listing only the sublattices where it is nonzero.
        """
        if isinstance(r, torch.Tensor):
            inner = self.layout.interior[1:]
            r = {s: r[(Ellipsis, s, *inner)] for s in range(4)}
        ey, ex = self.layout.half
        my, mx = self.shape
        some = next(iter(r.values()))
        out = some.new_zeros((*some.shape[:-2], ey + 2, ex + 2))
        for s, source in r.items():
            for weight, window in self.terms[s]:
                target = out[(Ellipsis, *window)]
                if s == C_:
                    target.add_(source)
                else:
                    target.addcmul_(lift(weight, source), source)
        return out[..., 1:my + 1, 1:mx + 1]

    def prolong(self, vc: torch.Tensor) -> torch.Tensor:
        """``P v`` in the natural layout (for tests and inspection)."""
        xp = self.layout.zeros(vc.shape[:-2], vc)
        self.prolong_add(xp, vc)
        return self.layout.merge(xp)
