"""The multigrid hierarchy and its symmetric V-cycle.

Setup (once per batch of systems): starting from the fine stencil, build
the operator-dependent interpolation, the Galerkin coarse stencil
``P^T A P`` and a coloured Gauss-Seidel smoother on every level, down to a
level small enough to factor densely (batched Cholesky in float64).

The cycle (Trottenberg, Oosterlee and Schueller, *Multigrid*, 2001, sec.
2.4) runs in its own precision, float32 by default: as a preconditioner it
only has to be a good, symmetric approximation of ``A^{-1}``; the outer
Krylov method in float64 certifies the residual.

Cost model (issue 11, measured on 2 shared cores). Every kernel of the cycle
is memory-bound, and a tensor operation costs a few microseconds of Python
before any arithmetic, so the time goes where arrays are streamed: on the
finest level, the red-black sweeps are about a third of a V-cycle and the
residual, restriction and prolongation a fifth; the coarse levels and the
dense coarsest solve (15^2 unknowns at 255^2) the rest. What paid off was
streaming less and touching less fresh memory, not new numerics: chunks of
systems large enough to amortise each kernel call's Python cost and small
enough to stay in cache (:data:`pdeforge.solvers._linear.CHUNK_VALUES`), buffers that CG and the
cycle reuse instead of allocating each iteration, no work whose result is
overwritten (:mod:`._level`). Tried and not adopted: ``torch.compile`` of a
sweep (18 s to compile, and the compiled sweep was slower than eager);
over-relaxation (omega 1.1-1.3 raises the iteration count); more or fewer
half-sweeps (``rb``: 8 iterations instead of 7 at 255^2; ``rbrbr``: 6, at the
same time per solve); lighter coarse-level smoothing (more iterations); a
64-unknown coarsest level (7-8 iterations instead of 7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator
from pdeforge.solvers.multigrid._galerkin import galerkin
from pdeforge.solvers.multigrid._layout import SplitStencil, Sublattices
from pdeforge.solvers.multigrid._level import Level
from pdeforge.solvers.multigrid._smoothers import ColouredGaussSeidel
from pdeforge.solvers.multigrid._stencil import Stencil
from pdeforge.solvers.multigrid._transfer import Interpolation

__all__ = ["CycleSpec", "Multigrid"]


@dataclass(frozen=True)
class CycleSpec:
    """A V-cycle as data.

    Attributes
    ----------
    smoothing
        Red (``r``) and black (``b``) Gauss-Seidel half-sweeps before the
        coarse correction on every level; the same colours are relaxed in
        reverse order after it, which keeps the cycle symmetric.
    coarsest
        Largest number of unknowns solved directly on the coarsest level.
    dtype
        Precision of the cycle (``None``: that of the operator).
    """

    smoothing: str = "rbr"
    coarsest: int = 256
    dtype: torch.dtype | None = torch.float32


class Multigrid:
    """Geometric multigrid with Galerkin coarsening for batched 2-D stencils.

    Parameters
    ----------
    operator
        A :class:`~pdeforge.problems.StencilOperator`, a 2-D :class:`Stencil`
        or a :class:`SplitStencil` of ``batch`` independent symmetric systems
        (any interior size: coarse nodes are the odd-indexed ones).
    spec
        The cycle.

    Notes
    -----
    Calling the object applies one V-cycle from a zero initial guess,
    ``r -> M^{-1} r`` on ``[batch, ny, nx]``, returned in the dtype of
    ``r``; :meth:`cycle` does the same on split-layout vectors. The levels
    keep persistent work buffers, so one object must not run two cycles at
    once (one per thread).

    Examples
    --------
    >>> from pdeforge.grids import Grid
    >>> from pdeforge.problems.poisson import laplacian_operator
    >>> from pdeforge.solvers import cg
    >>> op = laplacian_operator(Grid((129, 129), boundary="dirichlet"), batch=2)
    >>> mg = Multigrid(op)
    >>> mg.shapes
    [(127, 127), (63, 63), (31, 31), (15, 15)]
    >>> result = cg(op, torch.ones(2, 127, 127, dtype=torch.float64), rtol=1e-8, M=mg)
    >>> result.iterations.tolist()
    [7, 7]
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
        self.layout = A.layout if isinstance(A, SplitStencil) else Sublattices(A.shape)
        self.levels: list[Level] = []
        while math.prod(A.shape) > spec.coarsest and min(A.shape) >= 3:
            split = A if isinstance(A, SplitStencil) else SplitStencil.from_stencil(A)
            smoother = ColouredGaussSeidel(split)
            self.levels.append(Level(split, smoother, Interpolation(split), smoother.schedule(spec.smoothing)))
            A = galerkin(split, self.levels[-1].interpolation)
        for fine, coarse in zip(self.levels, self.levels[1:], strict=False):
            fine.link(coarse)
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

    def _coarse_solve(self, b: torch.Tensor) -> torch.Tensor:
        x = self._solve(b.reshape(b.shape[0], -1, 1).to(torch.float64))
        return x.reshape(b.shape).to(b.dtype)

    def _cycle(self, depth: int) -> None:
        """V-cycle on level ``depth`` from its ``b`` buffer into its ``x`` buffer."""
        level = self.levels[depth]
        level.clear()  # x = 0 where the pre-smoothing reads it; it writes the rest first
        level.relax(level.pre, zero_start=True)
        level.restrict_residual()
        if depth + 1 < len(self.levels):
            level.send_down()
            self._cycle(depth + 1)
            level.fetch_up()
        else:
            level.coarse_solution.copy_(self._coarse_solve(level.coarse_rhs))
        level.prolong_correction()
        level.relax(level.pre[::-1])

    def cycle(self, rp: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """One V-cycle on split-layout vectors of the finest level (the fast path).

        ``out``, if given, receives the result (same shape and dtype as
        ``rp``): the caller then owns one buffer instead of a new tensor per cycle.
        """
        if not self.levels:  # small enough to solve directly
            z = self.layout.split(self._coarse_solve(self.layout.merge(rp)))
            return z if out is None else out.copy_(z)
        finest = self.levels[0]
        finest.b.copy_(rp)
        self._cycle(0)
        if out is None:
            return finest.x.to(rp.dtype, copy=True)
        return out.copy_(finest.x)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """One V-cycle for ``A z = r`` from ``z = 0``, natural layout ``[batch, ny, nx]``."""
        return self.layout.merge(self.cycle(self.layout.split(r)))
