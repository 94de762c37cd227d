"""Galerkin coarse operators ``A_c = P^T A P`` by stencil algebra.

With the interpolation of :mod:`._transfer`, ``P^T A P`` of a 5- or
9-point stencil couples each coarse node to its 3 x 3 coarse neighbours
(the fine support of a coarse basis function is 3 x 3, that of ``A P`` is
5 x 5). Both products are formed term by term in the split layout, where
every nonzero of ``A`` and ``P`` is a weight array and a unit-stride
window:

1. ``A P``: for each fine sublattice ``s`` and each coarse position
   relative to it, the sum over the terms of ``A`` on ``s`` of
   ``a(s) * p(source)[window]``;
2. ``P^T (A P)``: for each nonzero of ``P`` on ``s`` and each entry of
   ``A P`` on ``s``, the product accumulates into the coarse coefficient of
   their relative offset, at the coarse node that the ``P`` entry reads.

Only the five offsets of one half-plane are summed; the others follow from
symmetry, ``A_c[-k](c) = A_c[k](c - k)`` (Trottenberg, Oosterlee and
Schueller, *Multigrid*, 2001, sec. A.3.3, and Dendy 1982 for the use of
Galerkin operators with operator-dependent interpolation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pdeforge.solvers.multigrid._layout import SplitStencil
from pdeforge.solvers.multigrid._stencil import Stencil, box_offsets
from pdeforge.solvers.multigrid._transfer import Interpolation

__all__ = ["galerkin"]

_UPPER = ((0, 0), (0, 1), (1, -1), (1, 0), (1, 1))


def _start(window: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(w.start for w in window)


def galerkin(A: SplitStencil, interpolation: Interpolation) -> Stencil:
    """The 9-point coarse operator ``P^T A P`` of every system of the batch (``A`` symmetric)."""
    ey, ex = A.layout.half
    my, mx = interpolation.shape
    # Step 1: A P, keyed by (fine sublattice, start of the coarse window it reads).
    ringed = {s: [(F.pad(w, (1, 1, 1, 1)), _start(win)) for w, win in terms]
              for s, terms in interpolation.terms.items()}
    ap: dict[tuple[int, tuple[int, int]], torch.Tensor] = {}
    for s in range(4):
        for _, a, source, window in A.terms[s]:
            shift = tuple(w.start - 1 for w in window)
            for p, start in ringed[source]:
                key = (s, (start[0] + shift[0], start[1] + shift[1]))
                p_at = p[(Ellipsis, *window)]
                if key in ap:
                    ap[key].addcmul_(a, p_at)
                else:
                    ap[key] = a * p_at
    # Step 2: P^T (A P), accumulated in zero-ringed coarse arrays, one per offset.
    acc = {k: A.coeffs.new_zeros((A.batch, ey + 2, ex + 2)) for k in _UPPER}
    for s, terms in interpolation.terms.items():
        for p, window in terms:
            start = _start(window)
            for (s2, start2), value in ap.items():
                k = (start2[0] - start[0], start2[1] - start[1])
                if s2 == s and k in acc:
                    acc[k][(Ellipsis, *window)].addcmul_(p, value)
    coeffs = A.coeffs.new_zeros((A.batch, 9, my, mx))
    offsets = box_offsets(2)
    for (dy, dx), value in acc.items():
        coeffs[:, offsets.index((dy, dx))] = value[:, 1:my + 1, 1:mx + 1]
        if (dy, dx) != (0, 0):
            # A_c[-k] at c is A_c[k] at c - k: read the ringed array one offset back.
            coeffs[:, offsets.index((-dy, -dx))] = value[:, 1 - dy:my + 1 - dy, 1 - dx:mx + 1 - dx]
    return Stencil(coeffs, offsets)
