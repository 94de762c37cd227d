"""Batched general stencils: the operator of every multigrid level.

A stencil operator acts on unknowns ``[batch, *n]`` (a box of interior
nodes with zero Dirichlet values outside) as

    (A u)[p] = sum_k  coeffs[k][p] * u[p + offsets[k]],

with ``offsets`` in ``{-1, 0, 1}^d``. The fine level of a 2-D problem has
the 5-point offsets of :class:`~pdeforge.problems.StencilOperator`; Galerkin
coarsening (``A_c = R A P``) fills in the corners, so coarse levels carry all
9 (``[batch, 9, ny, nx]``). Coefficients that would reach outside the box
are stored as zeros, so ``coeffs[k][p]`` is exactly the matrix entry
``A[p, p + offsets[k]]``.
"""

from __future__ import annotations

import itertools
from types import EllipsisType

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from pdeforge.problems import StencilOperator

__all__ = ["Stencil", "box_offsets", "compact_offsets"]

Offset = tuple[int, ...]


def lift(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-system values ``[batch, *n]`` broadcast against ``v`` ``[batch, extra..., *n]``."""
    if w.dim() == v.dim():
        return w
    return w.reshape(w.shape[0], *([1] * (v.dim() - w.dim())), *w.shape[1:])


def box_offsets(ndim: int) -> tuple[Offset, ...]:
    """All ``3^d`` offsets in row-major order (9 in 2-D, centre at index 4)."""
    return tuple(itertools.product((-1, 0, 1), repeat=ndim))


def compact_offsets(ndim: int) -> tuple[Offset, ...]:
    """The ``2d + 1`` offsets of a second-difference operator (5 in 2-D, 7 in 3-D)."""
    return tuple(o for o in box_offsets(ndim) if sum(map(abs, o)) <= 1)


def shifted(padded: torch.Tensor, offset: Offset) -> torch.Tensor:
    """View of a one-cell zero-padded field ``[..., n0 + 2, ...]`` moved by ``offset``."""
    index: list[EllipsisType | slice] = [Ellipsis]
    for o, n in zip(offset, padded.shape[-len(offset):], strict=True):
        index.append(slice(1 + o, n - 1 + o))
    return padded[tuple(index)]


class Stencil:
    """Batched matrix-free stencil operator with explicit coefficients.

    Parameters
    ----------
    coeffs
        ``[batch, len(offsets), *n]``: ``coeffs[:, k]`` couples every node to
        its neighbour at ``offsets[k]``.
    offsets
        Neighbour offsets in ``{-1, 0, 1}^d``; must contain the centre.
    """

    def __init__(self, coeffs: torch.Tensor, offsets: tuple[Offset, ...]) -> None:
        self.offsets = tuple(tuple(int(v) for v in o) for o in offsets)
        self.ndim = len(self.offsets[0])
        if coeffs.dim() != self.ndim + 2 or coeffs.shape[1] != len(self.offsets):
            raise ValueError(f"coefficients {tuple(coeffs.shape)} do not match {len(self.offsets)} offsets "
                             f"in {self.ndim}-D")
        self.coeffs = coeffs
        self.shape = tuple(coeffs.shape[2:])
        self.batch = coeffs.shape[0]
        self.dtype, self.device = coeffs.dtype, coeffs.device
        self.centre = self.offsets.index((0,) * self.ndim)

    @classmethod
    def from_operator(cls, op: StencilOperator, dtype: torch.dtype | None = None) -> Stencil:
        """The compact (``2d + 1``-point) stencil of a face-coefficient operator."""
        dtype = dtype or op.dtype
        offsets = compact_offsets(op.ndim)
        coeffs = torch.empty((op.batch, len(offsets), *op.shape), dtype=dtype, device=op.device)
        diagonal = coeffs[:, offsets.index((0,) * op.ndim)]
        diagonal.copy_(torch.as_tensor(op.shift, dtype=dtype, device=op.device).expand_as(diagonal))
        for d, (faces, h) in enumerate(zip(op.faces, op.spacing, strict=True)):
            w = faces.to(dtype) * (1.0 / (h * h))
            n = op.shape[d]
            for side, start, edge in ((-1, 0, 0), (1, 1, n - 1)):
                # Coupling to the neighbour across the face; none where that neighbour is a boundary node.
                face = w.narrow(1 + d, start, n)
                diagonal.add_(face)
                offset = tuple(side if i == d else 0 for i in range(op.ndim))
                coupling = coeffs[:, offsets.index(offset)]
                torch.neg(face, out=coupling)
                coupling.select(1 + d, edge).zero_()
        return cls(coeffs, offsets)

    def to(self, dtype: torch.dtype) -> Stencil:
        """The same stencil with its coefficients cast to ``dtype``."""
        return Stencil(self.coeffs.to(dtype), self.offsets)

    def coefficient(self, offset: Offset) -> torch.Tensor:
        """``[batch, *n]`` coupling towards ``offset`` (zeros if the stencil lacks it)."""
        offset = tuple(offset)
        if offset in self.offsets:
            return self.coeffs[:, self.offsets.index(offset)]
        return torch.zeros((self.batch, *self.shape), dtype=self.dtype, device=self.device)

    def diagonal(self) -> torch.Tensor:
        """The centre coefficients ``[batch, *n]``: the diagonal of every system's matrix."""
        return self.coeffs[:, self.centre]

    def apply_padded(self, padded: torch.Tensor) -> torch.Tensor:
        """``A u`` from ``u`` ``[batch, ..., *n]`` already padded with one layer of zeros."""
        out = lift(self.coeffs[:, self.centre], padded) * shifted(padded, (0,) * self.ndim)
        for k, o in enumerate(self.offsets):
            if k != self.centre:
                out.addcmul_(lift(self.coeffs[:, k], padded), shifted(padded, o))
        return out

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        """``A u`` for ``u`` of shape ``[batch, *n]``."""
        return self.apply_padded(F.pad(u, (1, 1) * self.ndim))

    __call__ = matvec

    def to_scipy(self, index: int) -> sp.csr_matrix:
        """The assembled matrix of system ``index`` (row-major unknown order)."""
        ids = np.arange(int(np.prod(self.shape))).reshape(self.shape)
        coeffs = self.coeffs[index].detach().cpu().double().numpy()
        rows, cols, vals = [], [], []
        for k, o in enumerate(self.offsets):
            inside = tuple(slice(max(0, -v), n - max(0, v)) for v, n in zip(o, self.shape, strict=True))
            target = tuple(slice(max(0, v), n + min(0, v)) for v, n in zip(o, self.shape, strict=True))
            rows.append(ids[inside].ravel())
            cols.append(ids[target].ravel())
            vals.append(coeffs[k][inside].ravel())
        size = ids.size
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size))

    def dense(self) -> torch.Tensor:
        """All systems as dense matrices ``[batch, N, N]`` (for the coarsest level)."""
        size = int(np.prod(self.shape))
        ids = torch.arange(size, device=self.device).reshape(self.shape)
        out = torch.zeros((self.batch, size * size), dtype=self.dtype, device=self.device)
        for k, o in enumerate(self.offsets):
            inside = tuple(slice(max(0, -v), n - max(0, v)) for v, n in zip(o, self.shape, strict=True))
            target = tuple(slice(max(0, v), n + min(0, v)) for v, n in zip(o, self.shape, strict=True))
            flat = (ids[inside] * size + ids[target]).reshape(-1)
            out[:, flat] = self.coeffs[:, k][(slice(None), *inside)].reshape(self.batch, -1)
        return out.reshape(self.batch, size, size)
