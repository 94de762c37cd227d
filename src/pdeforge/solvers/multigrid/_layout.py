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

    def blocks(self, u: torch.Tensor, *, lead_last: int = 0) -> torch.Tensor:
        """``[..., *n]`` as a view ``[..., 2^d, *h]`` of (a zero-extended copy of) ``u``.

        ``lead_last`` moves that many of the leading axes (from the front)
        to just after the sublattice axis: ``[b, m, *n]`` with
        ``lead_last=1`` gives ``[m, 2^d, b, *h]``.
        """
        d, lead = self.ndim, u.shape[:-self.ndim]
        pad = []
        for n, h in zip(reversed(self.shape), reversed(self.half)):
            pad += [0, 2 * h - n]
        if any(pad):
            u = F.pad(u, pad)
        u = u.reshape(*lead, *itertools.chain.from_iterable((h, 2) for h in self.half))
        k = len(lead)
        moved, kept = list(range(lead_last)), list(range(lead_last, k))
        order = [*kept, *(k + 2 * i + 1 for i in range(d)), *moved, *(k + 2 * i for i in range(d))]
        u = u.permute(order)
        return u.reshape(*u.shape[:k - lead_last], 2**d, *u.shape[k - lead_last + d:])

    def split(self, u: torch.Tensor, *, ring: bool = True) -> torch.Tensor:
        """``[..., *n]`` to ``[..., 2^d, *(h + 2)]`` (``ring=False``: ``[..., 2^d, *h]``)."""
        u = self.blocks(u)
        return F.pad(u, (1, 1) * self.ndim) if ring else u.contiguous()

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


def upper(offsets: tuple[Offset, ...]) -> tuple[Offset, ...]:
    """The centre and the offsets whose first nonzero component is positive (half of a symmetric stencil)."""
    return tuple(o for o in offsets if not any(o) or next(v for v in o if v) > 0)


class SplitStencil:
    """A batched symmetric stencil acting on split-layout vectors.

    Only half of the stencil is stored: the coupling of a node ``p`` to
    ``p - o`` is that of ``p - o`` to ``p`` (``A`` is symmetric), read from
    the neighbouring sublattice through the same window as the unknown it
    multiplies. This halves the coefficients a sweep streams through.

    Parameters
    ----------
    coeffs
        ``[m, 2^d, batch, *(h + 2)]``: the coefficient of the ``k``-th stored
        offset at the nodes of sublattice ``s``, with a zero ring (and zeros
        in slots beyond the grid).
    offsets
        The ``m`` stored offsets (:func:`upper` of the full stencil).
    layout
        The split layout of the grid.

    For each sublattice, ``terms[s]`` lists ``(offset, coefficient [batch,
    *h], source sublattice, window)``: ``(A x)_s = sum coefficient * x[source][window]``.
    """

    def __init__(self, coeffs: torch.Tensor, offsets: tuple[Offset, ...], layout: Sublattices) -> None:
        self.layout = layout
        self.offsets = tuple(offsets)
        self.coeffs = coeffs
        self.shape = layout.shape
        self.batch = coeffs.shape[2]
        self.dtype, self.device = coeffs.dtype, coeffs.device
        centre = (0,) * layout.ndim
        inner = layout.interior[1:]
        self.terms = []
        for parity in layout.parities:
            s = layout.index(parity)
            row = []
            for k, offset in enumerate(self.offsets):
                row.append((offset, coeffs[(k, s, slice(None), *inner)], *layout.neighbour(parity, offset)))
                if offset != centre:
                    mirror = tuple(-v for v in offset)
                    source, window = layout.neighbour(parity, mirror)
                    row.append((mirror, coeffs[(k, source, slice(None), *window)], source, window))
            self.terms.append(row)
        self._lookup = {(s, o): w for s, row in enumerate(self.terms) for o, w, _, _ in row}
        self.centre_offset = centre

    @classmethod
    def from_stencil(cls, A: Stencil, layout: Sublattices | None = None) -> "SplitStencil":
        """Split a symmetric natural-layout stencil (only its upper half is read)."""
        layout = layout or Sublattices(A.shape)
        half = upper(A.offsets)
        coeffs = A.coeffs[:, [A.offsets.index(o) for o in half]]
        blocks = layout.blocks(coeffs, lead_last=1)  # [m, 2^d, batch, *h]
        return cls(F.pad(blocks, (1, 1) * layout.ndim), half, layout)

    def to(self, dtype: torch.dtype) -> "SplitStencil":
        return SplitStencil(self.coeffs.to(dtype), self.offsets, self.layout)

    def full_offsets(self) -> tuple[Offset, ...]:
        return tuple(sorted({o for row in self.terms for o, _, _, _ in row}))

    def to_stencil(self) -> Stencil:
        """The same operator, all offsets, in the natural layout."""
        offsets = self.full_offsets()
        parts = torch.stack([
            torch.stack([self.coefficient(s, o) for s in range(len(self.terms))], dim=1) for o in offsets
        ], dim=1)  # [batch, m, 2^d, *h]
        return Stencil(self.layout.merge(F.pad(parts, (1, 1) * self.layout.ndim)), offsets)

    def coefficient(self, s: int, offset: Offset) -> torch.Tensor | None:
        """Coefficient ``[batch, *h]`` of ``offset`` on sublattice ``s`` (``None`` if absent)."""
        return self._lookup.get((s, tuple(offset)))

    def couples(self, s: int) -> set[int]:
        """Sublattices that sublattice ``s`` reads (besides itself)."""
        return {src for o, _, src, _ in self.terms[s] if o != self.centre_offset}

    def _rows(self, s: int, xp: torch.Tensor, target: torch.Tensor, sign: int) -> None:
        for _, weight, source, window in self.terms[s]:
            target.addcmul_(lift(weight, target), xp[(Ellipsis, source, *window)], value=sign)

    def apply(self, xp: torch.Tensor) -> torch.Tensor:
        """``A x`` for split-layout ``x`` ``[batch, ..., 2^d, *(h + 2)]`` (zero ring kept)."""
        out = torch.zeros_like(xp)
        inner = self.layout.interior[1:]
        for s in range(len(self.terms)):
            self._rows(s, xp, out[(Ellipsis, s, *inner)], 1)
        return out

    __call__ = matvec = apply

    def residual(self, b: torch.Tensor, xp: torch.Tensor, sublattices) -> dict[int, torch.Tensor]:
        """``b - A x`` on the listed sublattices, as ``{s: [batch, ..., *h]}``."""
        inner = self.layout.interior[1:]
        out = {}
        for s in sublattices:
            out[s] = b[(Ellipsis, s, *inner)].clone()
            self._rows(s, xp, out[s], -1)
        return out
