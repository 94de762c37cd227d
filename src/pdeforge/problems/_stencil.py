"""Variable-coefficient second-order operators on boxes with Dirichlet boundaries.

The reference discretisation of ``-div(a grad u) + c u`` with unknowns at
the interior nodes of a :class:`~pdeforge.grids.Grid` (5 points in 2-D,
7 in 3-D). Written in flux form,

    A = sum_d  G_d^T diag(a_d) G_d / h_d^2  +  diag(c),

where ``G_d`` takes differences along axis ``d`` between neighbouring nodes
(boundary nodes hold zero) and ``a_d`` are the coefficients on the faces
between them. ``A`` is symmetric, and positive definite when ``a_d > 0`` and
``c >= 0``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from pdeforge._typing import PerSystem, Systems

__all__ = ["StencilOperator", "harmonic_faces"]


def harmonic_faces(a: torch.Tensor, ndim: int) -> list[torch.Tensor]:
    """Face coefficients from nodal coefficients by harmonic averaging.

    ``a`` is ``[batch, *nodes]`` including boundary nodes; the result has,
    per axis ``d``, the faces between consecutive nodes along ``d``, at
    interior positions of the other axes: ``[batch, ..., n_d - 1, ...]``
    with ``n - 2`` along every other axis. Harmonic means are the flux-
    continuous choice across jumps of ``a``.
    """
    faces = []
    interior = [slice(1, -1)] * ndim
    for d in range(ndim):
        lo = [slice(None)] + interior.copy()
        hi = [slice(None)] + interior.copy()
        lo[1 + d] = slice(None, -1)
        hi[1 + d] = slice(1, None)
        a0, a1 = a[tuple(lo)], a[tuple(hi)]
        faces.append(2 * a0 * a1 / (a0 + a1))
    return faces


class StencilOperator:
    """Batched matrix-free ``A`` acting on interior unknowns ``[batch, *n]``.

    Parameters
    ----------
    faces
        Per axis ``d``, face coefficients ``[batch, ..., n_d + 1, ...]``.
    spacing
        Node spacing per axis.
    shift
        Zeroth-order coefficient ``c``: a scalar or ``[batch, *n]``
        (Helmholtz ``-Lap - k^2`` has ``c = -k^2``).
    """

    def __init__(self, faces: list[torch.Tensor], spacing: tuple[float, ...],
                 shift: torch.Tensor | float = 0.0) -> None:
        self.ndim = len(faces)
        self.faces = faces
        self.spacing = tuple(float(h) for h in spacing)
        shape = list(faces[0].shape)
        shape[1] -= 1
        self.shape = tuple(shape[1:])
        self.batch = shape[0]
        self.shift = shift
        self.dtype, self.device = faces[0].dtype, faces[0].device
        self._weights: list[torch.Tensor] | None = None

    @property
    def _scaled(self) -> list[torch.Tensor]:
        """The face weights ``a / h_d^2``, formed on first use (a solver that reads only ``faces`` never pays)."""
        if self._weights is None:
            self._weights = [f / (h * h) for f, h in zip(self.faces, self.spacing, strict=True)]
        return self._weights

    def rows(self, index: slice) -> StencilOperator:
        """The operator of the systems ``index`` of the batch (a slice)."""
        shift = self.shift[index] if isinstance(self.shift, torch.Tensor) and self.shift.dim() > 0 else self.shift
        return StencilOperator([f[index] for f in self.faces], self.spacing, shift)

    @property
    def unknowns(self) -> int:
        """Unknowns per system (the product of the interior shape)."""
        return int(np.prod(self.shape))

    def uniform_coefficients(self) -> tuple[tuple[float, ...], float] | None:
        """The constant coefficients ``(a_d per axis, c)`` shared by the whole batch, or ``None``.

        They exist when every system of the batch has the same constant face
        coefficient per axis and the same scalar shift. Such an operator
        (Poisson, Helmholtz) is diagonalised by the sine transform, which
        :func:`pdeforge.solvers.dst_solve` uses.
        """
        shift = self.shift
        if isinstance(shift, torch.Tensor):
            if shift.numel() != 1 and not bool((shift == shift.flatten()[0]).all()):
                return None
            shift = float(shift.flatten()[0]) if shift.numel() else 0.0
        values = []
        for f in self.faces:
            first = f.flatten()[0]
            if not bool((f == first).all()):
                return None
            values.append(float(first))
        return tuple(values), float(shift)

    def matvec(self, u: Systems) -> Systems:
        """``A u`` for ``u`` of shape ``[batch, *n]``."""
        out = self.shift * u if not (isinstance(self.shift, float) and self.shift == 0.0) else torch.zeros_like(u)
        for d, w in enumerate(self._scaled):
            pad = [0, 0] * self.ndim
            pad[2 * (self.ndim - 1 - d)] = 1
            pad[2 * (self.ndim - 1 - d) + 1] = 1
            flux = w * torch.diff(F.pad(u, pad), dim=1 + d)
            out = out - torch.diff(flux, dim=1 + d)
        return out

    __call__ = matvec

    def diagonal(self, index: int | None = None) -> torch.Tensor:
        """The diagonal of every system ``[batch, *n]``, or of system ``index`` only ``[*n]``."""
        pick = (lambda t: t) if index is None else (lambda t: t[index])
        shape = (self.batch, *self.shape) if index is None else self.shape
        shift = self.shift if not isinstance(self.shift, torch.Tensor) or self.shift.ndim == 0 else pick(self.shift)
        diag = torch.zeros(shape, dtype=self.dtype, device=self.device) + shift
        for d, w in enumerate(self._scaled):
            n = w.shape[1 + d]
            w = pick(w)
            axis = d if index is not None else 1 + d
            diag = diag + w.narrow(axis, 0, n - 1) + w.narrow(axis, 1, n - 1)
        return diag

    def to_scipy(self, index: int) -> sp.csr_matrix:
        """The assembled matrix of system ``index`` (row-major unknown order)."""
        shape = self.shape
        size = self.unknowns
        ids = np.arange(size).reshape(shape)
        rows, cols, vals = [], [], []
        diag = self.diagonal(index).detach().cpu().numpy().ravel()
        rows.append(ids.ravel())
        cols.append(ids.ravel())
        vals.append(diag)
        for d, w in enumerate(self._scaled):
            inner = w[index].detach().cpu().numpy()
            n = shape[d]
            coupling = np.take(inner, np.arange(1, n), axis=d)  # faces between unknowns i and i+1
            lo = np.take(ids, np.arange(0, n - 1), axis=d).ravel()
            hi = np.take(ids, np.arange(1, n), axis=d).ravel()
            rows += [lo, hi]
            cols += [hi, lo]
            vals += [-coupling.ravel(), -coupling.ravel()]
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size))

    def residual_norm(self, x: Systems, b: Systems) -> PerSystem:
        """Relative residual ``||b - A x|| / ||b||`` per system."""
        r = (b - self.matvec(x)).flatten(1)
        return torch.linalg.vector_norm(r, dim=1) / torch.linalg.vector_norm(b.flatten(1), dim=1).clamp_min(1e-300)
