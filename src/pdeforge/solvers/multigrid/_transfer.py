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

__all__ = ["Interpolation"]

_DIAGONALS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


F_, Y_, X_, C_ = 0, 1, 2, 3  # sublattices of (row, column) parity (0, 0), (0, 1), (1, 0), (1, 1)


def _total(terms: list[torch.Tensor | None]) -> torch.Tensor | None:
    """Sum of the coefficients a stencil has (``None`` if it has none of them)."""
    present = [t for t in terms if t is not None]
    if not present:
        return None
    out = present[0].clone()
    for t in present[1:]:
        out += t
    return out


class Interpolation:
    """Prolongation ``P`` and restriction ``R = P^T`` built from a 2-D stencil.

    Parameters
    ----------
    A
        The fine operator in the split layout, any 2-D stencil (5- or
        9-point), SPD or mildly indefinite.

    Notes
    -----
    The object is the weights, as data: :func:`~._galerkin.galerkin` forms
    ``P^T A P`` from them and :class:`~._level.Level` applies ``P`` and
    ``P^T`` in the V-cycle. ``terms[s]`` lists the nonzeros of ``P`` on
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
        # 1 in the slots beyond the grid (where every coefficient is 0), per sublattice:
        # adding it to a denominator makes the weights there 0 / 1 instead of 0 / 0.
        spare = {}
        for parity in A.layout.parities:
            rows, cols = ((n - p + 1) // 2 for p, n in zip(parity, A.shape, strict=True))
            mask = torch.ones((1, ey, ex), dtype=A.dtype, device=A.device)
            mask[:, :rows, :cols] = 0
            spare[A.layout.index(parity)] = mask

        def a(s, offset):
            return A.coefficient(s, offset)

        def times(s, offset, w):  # a(s, offset) * w, None (no term) where the stencil lacks the offset
            c = A.coefficient(s, offset)
            return None if c is None else c * w

        def ratio(num, den, s):  # -num / den, the weight of one coarse neighbour
            if num is None:
                return torch.zeros_like(den)
            return num.div(den + spare[s]).neg_()

        def ringed(w):
            return F.pad(w, (1, 1, 1, 1))

        # X points: collapse the stencil along y (sum each column) and solve the 1-D equation.
        col = {dx: _total([a(X_, (dy, dx)) for dy in (-1, 0, 1)]) for dx in (-1, 0, 1)}
        x_w = {-1: ratio(col[-1], col[0], X_), 1: ratio(col[1], col[0], X_)}
        # Y points: collapse along x (sum each row).
        row = {dy: _total([a(Y_, (dy, dx)) for dx in (-1, 0, 1)]) for dy in (-1, 0, 1)}
        y_w = {-1: ratio(row[-1], row[0], Y_), 1: ratio(row[1], row[0], Y_)}
        # F points: their own equation, with the X and Y neighbours already interpolated.
        f_w = {}
        for dy, dx in _DIAGONALS:
            _, y_window = A.layout.neighbour((0, 0), (0, dx))
            _, x_window = A.layout.neighbour((0, 0), (dy, 0))
            total = _total([
                a(F_, (dy, dx)),
                times(F_, (0, dx), ringed(y_w[dy])[(Ellipsis, *y_window)]),
                times(F_, (dy, 0), ringed(x_w[dx])[(Ellipsis, *x_window)]),
            ])
            f_w[dy, dx] = ratio(total, a(F_, (0, 0)), F_)
        # C points: injection (zero in the slots beyond the grid).
        one = (1 - spare[C_]).expand(A.batch, ey, ex)

        inner = (slice(1, ey + 1), slice(1, ex + 1))
        self.terms = {
            C_: [(one, inner)],
            X_: [(x_w[-1], (slice(1, ey + 1), slice(0, ex))), (x_w[1], inner)],
            Y_: [(y_w[-1], (slice(0, ey), slice(1, ex + 1))), (y_w[1], inner)],
            F_: [(f_w[dy, dx], (slice((dy + 1) // 2, (dy + 1) // 2 + ey), slice((dx + 1) // 2, (dx + 1) // 2 + ex)))
                 for dy, dx in _DIAGONALS],
        }
