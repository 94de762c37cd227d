"""Galerkin coarse operators ``A_c = R A P`` by probing with coloured vectors.

``R A P`` of a 9-point (or 5-point) stencil with the interpolation of
:mod:`._transfer` couples each coarse point only to its 3 x 3 coarse
neighbours. Colour the coarse points by ``(I mod 3, J mod 3)``: no point
sees two of the same colour, so one product ``R A P e_c`` with ``e_c`` the
indicator of colour ``c`` reads off, at every point, its coupling to the one
neighbour of colour ``c``. Nine products give the whole coarse stencil,
batched over systems and without forming a sparse matrix (Curtis, Powell
and Reid, IMA J. Appl. Math. 13 (1974), the colouring idea for sparse
Jacobians).
"""

from __future__ import annotations

import torch

from pdeforge.solvers.multigrid._layout import SplitStencil
from pdeforge.solvers.multigrid._stencil import Stencil, box_offsets
from pdeforge.solvers.multigrid._transfer import Interpolation

__all__ = ["galerkin"]


def galerkin(A: SplitStencil, interpolation: Interpolation) -> Stencil:
    """The 9-point coarse operator ``P^T A P`` of every system of the batch."""
    my, mx = interpolation.shape
    batch, dtype, device = A.stencil.batch, A.stencil.dtype, A.stencil.device
    probes = torch.zeros((9, my, mx), dtype=dtype, device=device)
    for c in range(9):
        probes[c, c // 3::3, c % 3::3] = 1
    # All nine colours at once along an extra axis: [batch, 9, ...].
    fine = A.layout.zeros((batch, 9), probes)
    interpolation.prolong_add(fine, probes.expand(batch, 9, my, mx))
    product = interpolation.restrict(A.apply(fine))
    offsets = box_offsets(2)
    rows = torch.arange(my, device=device)[:, None]
    cols = torch.arange(mx, device=device)[None, :]
    colour = torch.stack([((rows + dy) % 3) * 3 + (cols + dx) % 3 for dy, dx in offsets])  # [9, my, mx]
    coeffs = product.gather(1, colour.expand(batch, 9, my, mx))
    return Stencil(coeffs, offsets)
