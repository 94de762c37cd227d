"""The multigrid hierarchy and its symmetric V-cycle.

Setup (once per batch of systems): starting from the fine stencil, build
the operator-dependent interpolation, the Galerkin coarse stencil
``P^T A P`` and a coloured Gauss-Seidel smoother on every level, down to a
level small enough to factor densely (batched Cholesky in float64).

The cycle (Trottenberg, Oosterlee and Schueller, *Multigrid*, 2001, sec.
2.4) runs in its own precision, float32 by default: as a preconditioner it
only has to be a good, symmetric approximation of ``A^{-1}``; the outer
Krylov method in float64 certifies the residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator
from pdeforge.solvers.multigrid._galerkin import galerkin
from pdeforge.solvers.multigrid._layout import SplitStencil, Sublattices
from pdeforge.solvers.multigrid._smoothers import ColouredGaussSeidel
from pdeforge.solvers.multigrid._stencil import Stencil
from pdeforge.solvers.multigrid._transfer import Interpolation

__all__ = ["CycleSpec", "Multigrid"]


@dataclass(frozen=True)
class CycleSpec:
    """A V-cycle as data.

    Attributes
    ----------
    sweeps
        Gauss-Seidel sweeps before (forwards) and after (backwards) the
        coarse correction on every level; equal numbers keep the cycle symmetric.
    coarsest
        Largest number of unknowns solved directly on the coarsest level.
    dtype
        Precision of the cycle (``None``: that of the operator).
    """

    sweeps: int = 1
    coarsest: int = 256
    dtype: torch.dtype | None = torch.float32


@dataclass
class _Level:
    A: SplitStencil
    smoother: ColouredGaussSeidel
    interpolation: Interpolation


class Multigrid:
    """Geometric multigrid with Galerkin coarsening for batched 2-D stencils.

    Parameters
    ----------
    operator
        A :class:`~pdeforge.problems.StencilOperator` or a 2-D
        :class:`Stencil` of ``batch`` independent systems.
    spec
        The cycle.

    Calling the object applies one V-cycle from a zero initial guess,
    ``r -> M^{-1} r`` on ``[batch, ny, nx]``, in the dtype and on the device
    of ``r``.
    """

    def __init__(self, operator: StencilOperator | Stencil | SplitStencil, spec: CycleSpec = CycleSpec()) -> None:
        if len(operator.shape) != 2:
            raise PdeforgeError(f"multigrid supports 2-D operators, got a {len(operator.shape)}-D one")
        self.spec = spec
        self.dtype = spec.dtype or operator.dtype
        self.batch = operator.batch
        if isinstance(operator, StencilOperator):
            operator = Stencil.from_operator(operator, self.dtype)
        A = operator.to(self.dtype)
        self.levels: list[_Level] = []
        while math.prod(A.shape) > spec.coarsest and min(A.shape) >= 3:
            split = A if isinstance(A, SplitStencil) else SplitStencil.from_stencil(A)
            interpolation = Interpolation(split)
            self.levels.append(_Level(split, ColouredGaussSeidel(split), interpolation))
            A = galerkin(split, interpolation)
        if isinstance(A, SplitStencil):
            A = A.to_stencil()
        self.coarse_shape = A.shape
        self._factor(A.dense().to(torch.float64))

    def _factor(self, dense: torch.Tensor) -> None:
        factor, info = torch.linalg.cholesky_ex(dense)
        if bool((info == 0).all()):
            self._solve = lambda b: torch.cholesky_solve(b, factor)
        else:  # indefinite coarse operator (Helmholtz beyond the first eigenvalue)
            lu, pivots = torch.linalg.lu_factor(dense)
            self._solve = lambda b: torch.linalg.lu_solve(lu, pivots, b)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Grid shape of every level, fine to coarse."""
        return [level.A.shape for level in self.levels] + [self.coarse_shape]

    @property
    def layout(self) -> Sublattices:
        """The split layout of the finest level (in which :meth:`cycle` works)."""
        return self.levels[0].A.layout

    def _coarse_solve(self, b: torch.Tensor) -> torch.Tensor:
        x = self._solve(b.reshape(b.shape[0], -1, 1).to(torch.float64))
        return x.reshape(b.shape).to(b.dtype)

    def _cycle(self, depth: int, b: torch.Tensor) -> torch.Tensor:
        """V-cycle on level ``depth`` for split-layout ``b`` (natural on the coarsest level)."""
        if depth == len(self.levels):
            return self._coarse_solve(b)
        level = self.levels[depth]
        xp = torch.zeros_like(b)
        for sweep in range(self.spec.sweeps):
            level.smoother.forward(xp, b, zero_start=sweep == 0)
        live = level.smoother.live_after_forward
        rc = level.interpolation.restrict(level.A.residual(b, xp, live))
        coarse = self.levels[depth + 1].A.layout if depth + 1 < len(self.levels) else None
        ec = self._cycle(depth + 1, coarse.split(rc) if coarse else rc)
        level.interpolation.prolong_add(xp, coarse.merge(ec) if coarse else ec)
        for _ in range(self.spec.sweeps):
            level.smoother.backward(xp, b)
        return xp

    def cycle(self, rp: torch.Tensor) -> torch.Tensor:
        """One V-cycle on split-layout vectors of the finest level (the fast path)."""
        if not self.levels:
            return self._coarse_solve(rp)
        return self._cycle(0, rp.to(self.dtype)).to(rp.dtype)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """One V-cycle for ``A z = r`` from ``z = 0``, natural layout ``[batch, ny, nx]``."""
        if not self.levels:
            return self._coarse_solve(r)
        return self.layout.merge(self.cycle(self.layout.split(r)))
