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

from pdeforge.problems import StencilOperator
from pdeforge.solvers.multigrid._stencil import Offset, Stencil, compact_offsets

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
        """Position of the sublattice of index parities ``parity`` on the sublattice axis.

        The parities read as a binary number, the first axis most
        significant: in 2-D ``(0, 0), (0, 1), (1, 0), (1, 1)`` are ``0, 1, 2, 3``.
        """
        return sum(p << (self.ndim - 1 - d) for d, p in enumerate(parity))

    def neighbour(self, parity: tuple[int, ...], offset: Offset) -> tuple[int, tuple[slice, ...]]:
        """Sublattice holding the neighbour at ``offset`` and the window of it (padded coordinates)."""
        target = tuple((p + o) % 2 for p, o in zip(parity, offset, strict=True))
        shifts = [(p + o - t) // 2 for p, o, t in zip(parity, offset, target, strict=True)]
        return self.index(target), tuple(slice(1 + s, 1 + s + h) for s, h in zip(shifts, self.half, strict=True))

    def scatter(self, u: torch.Tensor, out: torch.Tensor, axis: int) -> torch.Tensor:
        """Copy ``u`` ``[..., *n]`` into the ringed split array ``out``, whose sublattice axis is ``axis``.

        ``out`` must hold zeros outside the grid (ring and spare slots);
        one strided copy per sublattice, no temporaries.
        """
        for parity in self.parities:
            index: list[slice | int] = [slice(None)] * out.dim()
            index[axis] = self.index(parity)
            for d, (p, n) in enumerate(zip(parity, self.shape, strict=True)):
                index[out.dim() - self.ndim + d] = slice(1, 1 + (n - p + 1) // 2)
            source = u[(Ellipsis, *(slice(p, None, 2) for p in parity))]
            out[tuple(index)].copy_(source)
        return out

    def split(self, u: torch.Tensor) -> torch.Tensor:
        """``[..., *n]`` to the ringed split layout ``[..., 2^d, *(h + 2)]``."""
        out = u.new_zeros((*u.shape[:-self.ndim], 2**self.ndim, *(h + 2 for h in self.half)))
        return self.scatter(u, out, out.dim() - self.ndim - 1)

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
        """A zero split-layout array ``[*lead, 2^d, *(h + 2)]`` with the dtype and device of ``like``."""
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

    Notes
    -----
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
        self._plan = [((slice(None), s, *inner), [(w, (slice(None), src, *window)) for _, w, src, window in row])
                      for s, row in enumerate(self.terms)]
        self.centre_offset = centre

    @classmethod
    def from_stencil(cls, A: Stencil, layout: Sublattices | None = None) -> SplitStencil:
        """Split a symmetric natural-layout stencil (only its upper half is read)."""
        layout = layout or Sublattices(A.shape)
        half = upper(A.offsets)
        out = A.coeffs.new_zeros((len(half), 2**layout.ndim, A.batch, *(h + 2 for h in layout.half)))
        for k, offset in enumerate(half):
            layout.scatter(A.coeffs[:, A.offsets.index(offset)], out[k], 0)
        return cls(out, half, layout)

    @classmethod
    def from_operator(cls, op: StencilOperator, dtype: torch.dtype | None = None) -> SplitStencil:
        """The compact stencil of a face-coefficient operator, split straight from its faces.

        Only the upper half is stored: the centre and the ``+e_d`` couplings.
        The centre is ``shift`` plus the two face weights ``a / h_d^2`` of
        every axis; the coupling to the next node along ``d`` is minus the
        shared face weight, and zero for the last node (its neighbour is the
        Dirichlet boundary). Equal to ``from_stencil(Stencil.from_operator(op))``
        without forming the natural-layout stencil.

        Parameters
        ----------
        op
            A :class:`~pdeforge.problems.StencilOperator` (any dimension).
        dtype
            Dtype of the coefficients (that of ``op`` by default).

        Returns
        -------
        SplitStencil
            The stencil in the split layout of ``op.shape``.
        """
        dtype = dtype or op.dtype
        layout = Sublattices(op.shape)
        half = upper(compact_offsets(op.ndim))
        centre = half.index((0,) * op.ndim)
        out = torch.zeros((len(half), 2**op.ndim, op.batch, *(h + 2 for h in layout.half)),
                          dtype=dtype, device=op.device)
        shift = torch.as_tensor(op.shift, dtype=dtype, device=op.device).expand(op.batch, *op.shape)
        # Each sublattice is written straight from strided views of the faces: no natural-layout
        # temporaries, whose fresh pages would cost more than the arithmetic.
        for parity in layout.parities:
            s = layout.index(parity)
            nodes = [slice(p, n, 2) for p, n in zip(parity, op.shape, strict=True)]
            slots = [slice(1, 1 + (n - p + 1) // 2) for p, n in zip(parity, op.shape, strict=True)]
            diagonal = out[(centre, s, slice(None), *slots)]
            diagonal.copy_(shift[(slice(None), *nodes)])
            for d, (faces, h) in enumerate(zip(op.faces, op.spacing, strict=True)):
                scale, n, p = 1.0 / (h * h), op.shape[d], parity[d]
                left = [slice(None), *nodes]  # node i sits between faces i and i + 1 along d
                right = list(left)
                right[1 + d] = slice(p + 1, n + 1, 2)
                diagonal.add_(faces[tuple(left)], alpha=scale).add_(faces[tuple(right)], alpha=scale)
                # The coupling to the next node along d, minus the shared face weight; none for
                # the last node (its neighbour is the boundary), whose slot keeps its zero.
                m = (n - p) // 2
                coupling = list(slots)
                coupling[d] = slice(1, 1 + m)
                target = out[(half.index(tuple(1 if i == d else 0 for i in range(op.ndim))), s, slice(None), *coupling)]
                torch.mul(faces[tuple(right)].narrow(1 + d, 0, m), -scale, out=target)
        return cls(out, half, layout)

    def to(self, dtype: torch.dtype) -> SplitStencil:
        """The same stencil with its coefficients cast to ``dtype``."""
        return SplitStencil(self.coeffs.to(dtype), self.offsets, self.layout)

    def full_offsets(self) -> tuple[Offset, ...]:
        """Every offset of the full stencil, the stored upper half and its mirror images, sorted."""
        return tuple(sorted({o for row in self.terms for o, _, _, _ in row}))

    def to_stencil(self) -> Stencil:
        """The same operator, all offsets, in the natural layout."""
        offsets = self.full_offsets()
        parts = torch.stack([
            torch.stack([self._lookup[s, o] for s in range(len(self.terms))], dim=1) for o in offsets
        ], dim=1)  # [batch, m, 2^d, *h]
        return Stencil(self.layout.merge(F.pad(parts, (1, 1) * self.layout.ndim)), offsets)

    def coefficient(self, s: int, offset: Offset) -> torch.Tensor | None:
        """Coefficient ``[batch, *h]`` of ``offset`` on sublattice ``s`` (``None`` if absent)."""
        return self._lookup.get((s, tuple(offset)))

    def couples(self, s: int) -> set[int]:
        """Sublattices that sublattice ``s`` reads (besides itself)."""
        return {src for o, _, src, _ in self.terms[s] if o != self.centre_offset}

    def apply(self, xp: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``A x`` for split-layout ``x`` ``[batch, 2^d, *(h + 2)]`` (zero ring kept).

        ``out``, if given, receives the product (a split-layout array other
        than ``xp`` whose ring holds zeros, as every product of this method
        does): a caller that multiplies every iteration reuses one buffer
        instead of faulting in the pages of a new one each time.
        """
        if out is None:
            out = torch.zeros_like(xp)
        for target, terms in self._plan:  # indices built once: views cost as much as small kernels
            target = out[target]
            (weight, index), *rest = terms
            torch.mul(weight, xp[index], out=target)  # the first term overwrites: no pass to zero ``out``
            for weight, index in rest:
                target.addcmul_(weight, xp[index])
        return out

    __call__ = matvec = apply
