"""The parity-split layout in which the cycle runs, and stencils acting on it.

A grid of ``n`` nodes per axis splits into ``2^d`` sublattices by the parity
of each index (in 2-D: ``(even, even)``, ``(even, odd)``, ``(odd, even)``,
``(odd, odd)``). Stored as ``[batch, ..., 2^d, *(h + 2)]`` with
``h = ceil(n / 2)`` and a ring of zeros, every sublattice is a contiguous
array and every stencil neighbour of a sublattice is a unit-stride window of
another one. Gauss-Seidel by colours and the transfers between levels then
touch each value once, at full vector speed, where strided views of the
natural layout would run several times slower. Slots beyond the grid (odd
``n``) hold zeros with zero coefficients, so they stay zero.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from pdeforge.solvers.multigrid._stencil import Offset, Stencil, lift

__all__ = ["Sublattices", "SplitStencil"]


class Sublattices:
    """Conversions between the natural layout ``[..., *n]`` and the split layout."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)
        self.ndim = len(shape)
        self.half = tuple((n + 1) // 2 for n in shape)
        self.parities = tuple(itertools.product((0, 1), repeat=self.ndim))
        self.interior = (Ellipsis, *(slice(1, h + 1) for h in self.half))

    def index(self, parity: tuple[int, ...]) -> int:
        return sum(p << (self.ndim - 1 - d) for d, p in enumerate(parity))

    def neighbour(self, parity: tuple[int, ...], offset: Offset) -> tuple[int, tuple[slice, ...]]:
        """Sublattice holding the neighbour at ``offset`` and the window of it (padded coordinates)."""
        target = tuple((p + o) % 2 for p, o in zip(parity, offset))
        shifts = [(p + o - t) // 2 for p, o, t in zip(parity, offset, target)]
        return self.index(target), tuple(slice(1 + s, 1 + s + h) for s, h in zip(shifts, self.half))

    def split(self, u: torch.Tensor, *, ring: bool = True) -> torch.Tensor:
        """``[..., *n]`` to ``[..., 2^d, *(h + 2)]`` (``ring=False``: ``[..., 2^d, *h]``)."""
        d, lead = self.ndim, u.shape[:-self.ndim]
        pad = []
        for n, h in zip(reversed(self.shape), reversed(self.half)):
            pad += [0, 2 * h - n]
        u = F.pad(u, pad).reshape(*lead, *itertools.chain.from_iterable((h, 2) for h in self.half))
        k = len(lead)
        order = [*range(k), *(k + 2 * i + 1 for i in range(d)), *(k + 2 * i for i in range(d))]
        u = u.permute(order).reshape(*lead, 2**d, *self.half)
        return F.pad(u, (1, 1) * d) if ring else u.contiguous()

    def merge(self, v: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split` (with the ring)."""
        d = self.ndim
        v = v[self.interior]
        lead = v.shape[:-d - 1]
        k = len(lead)
        v = v.reshape(*lead, *([2] * d), *self.half)
        order = [*range(k), *itertools.chain.from_iterable((k + d + i, k + i) for i in range(d))]
        v = v.permute(order).reshape(*lead, *(2 * h for h in self.half))
        return v[(Ellipsis, *(slice(0, n) for n in self.shape))]

    def zeros(self, lead: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros((*lead, 2**self.ndim, *(h + 2 for h in self.half)))


class SplitStencil:
    """A :class:`Stencil` acting on split-layout vectors.

    For each sublattice it keeps the list of ``(coefficient [batch, *h],
    source sublattice, window)`` terms of ``A``.
    """

    def __init__(self, A: Stencil, layout: Sublattices | None = None) -> None:
        self.layout = layout or Sublattices(A.shape)
        self.stencil = A
        coeffs = self.layout.split(A.coeffs, ring=False)  # [batch, m, 2^d, *h]
        self.terms = []
        for parity in self.layout.parities:
            s = self.layout.index(parity)
            row = []
            for k, offset in enumerate(A.offsets):
                source, window = self.layout.neighbour(parity, offset)
                row.append((k, coeffs[:, k, s].contiguous(), source, window))
            self.terms.append(row)
        self.centre = A.centre

    def couples(self, s: int) -> set[int]:
        """Sublattices that sublattice ``s`` reads (besides itself)."""
        return {src for k, _, src, _ in self.terms[s] if k != self.centre}

    def apply(self, xp: torch.Tensor, *, subtract_from: torch.Tensor | None = None,
              sublattices=None) -> torch.Tensor:
        """``A x``, or ``b - A x`` when ``subtract_from=b``, on the given sublattices (others zero)."""
        out = torch.zeros_like(xp)
        for s in range(len(self.terms)) if sublattices is None else sublattices:
            target = out[(Ellipsis, s, *self.layout.interior[1:])]
            if subtract_from is not None:
                target.copy_(subtract_from[(Ellipsis, s, *self.layout.interior[1:])])
            sign = -1 if subtract_from is not None else 1
            for _, weight, source, window in self.terms[s]:
                target.addcmul_(lift(weight, target), xp[(Ellipsis, source, *window)], value=sign)
        return out
