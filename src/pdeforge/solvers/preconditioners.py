"""Preconditioners for batched stencil systems: callables ``r -> M^{-1} r`` on ``[batch, *n]``.

Every object here is built from the operator of a batch of systems and is
applied to residuals of the same batch, in the natural layout, in the dtype
and on the device of the residual. All are symmetric (and positive definite
for SPD operators), so they serve preconditioned CG:

==========  ======================================================  ===================
name        what                                                    iterations at h
==========  ======================================================  ===================
jacobi      ``D^{-1}``                                              ``O(1 / h)``
ssor        a forward and a backward red-black SOR sweep from zero  ``O(1 / sqrt(h))``
multigrid   one symmetric V-cycle (:mod:`pdeforge.solvers.multigrid`)  ``O(1)``
pyamg       pyamg's smoothed aggregation V-cycle (a peer, for comparison)  ``O(1)``
==========  ======================================================  ===================

References: Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed.,
2003, sec. 10.2 (Jacobi, SSOR); Vanek, Mandel and Brezina, Computing 56
(1996) (smoothed aggregation).
"""

from __future__ import annotations

import numpy as np
import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator
from pdeforge.solvers.multigrid import ColouredGaussSeidel, CycleSpec, Multigrid, SplitStencil, Stencil

__all__ = ["Jacobi", "MultigridPreconditioner", "PyAMGPreconditioner", "SSOR"]


class Jacobi:
    """``M = diag(A)``, any dimension."""

    def __init__(self, operator: StencilOperator | Stencil) -> None:
        self.inv_diag = 1.0 / operator.diagonal()

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """``M^{-1} r = r / diag(A)`` for residuals ``r [batch, *n]``, in the dtype of ``r``."""
        return (self.inv_diag * r).to(r.dtype)


class SSOR:
    """Symmetric successive over-relaxation in red-black (parity-colour) order, any dimension.

    ``M^{-1} r`` is a forward then a backward SOR sweep over the colours from
    a zero initial guess: ``M = (D/w + L) (w / (2 - w)) D^{-1} (D/w + U)``
    for the coloured ordering of the unknowns.
    """

    def __init__(self, operator: StencilOperator | Stencil, omega: float = 1.0) -> None:
        self.A = (SplitStencil.from_operator(operator) if isinstance(operator, StencilOperator)
                  else SplitStencil.from_stencil(operator))
        self.sweeps = ColouredGaussSeidel(self.A, omega)
        self.forward = self.sweeps.schedule("rb")  # then the same colours in reverse: the adjoint sweep

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """``M^{-1} r`` for residuals ``r [batch, *n]``: the forward and backward sweeps from zero.

        The sweeps run in the stencil's dtype; the result is in the dtype of ``r``.
        """
        layout = self.A.layout
        b = layout.split(r.to(self.A.dtype))
        x = torch.zeros_like(b)
        plan = self.sweeps.plan(x, b)
        self.sweeps.relax(plan, self.forward, zero_start=True)
        self.sweeps.relax(plan, self.forward[::-1])
        return layout.merge(x).to(r.dtype)


class MultigridPreconditioner:
    """One symmetric V-cycle of :class:`~pdeforge.solvers.multigrid.Multigrid` (2-D)."""

    def __init__(self, operator: StencilOperator | Stencil, spec: CycleSpec = CycleSpec()) -> None:
        self.multigrid = Multigrid(operator, spec)

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """``M^{-1} r`` for residuals ``r [batch, n1, n2]``: one V-cycle from a zero initial guess."""
        return self.multigrid(r)


class PyAMGPreconditioner:
    """pyamg's smoothed-aggregation V-cycle, one hierarchy per system (host, float64).

    For comparisons only: pyamg is not a dependency of pdeforge.
    """

    def __init__(self, operator: StencilOperator | Stencil, **options) -> None:
        try:
            import pyamg  # pyright: ignore[reportMissingImports]  # optional, for comparisons: not installed
        except ImportError:
            raise PdeforgeError("the pyamg preconditioner needs pyamg, which pdeforge does not install: "
                                "pip install pyamg") from None
        self.shape = tuple(operator.shape)
        self.cycles = [
            pyamg.smoothed_aggregation_solver(operator.to_scipy(i).tocsr(), **options).aspreconditioner(cycle="V")
            for i in range(operator.batch)
        ]

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        """``M^{-1} r`` for residuals ``r [batch, *n]``: each system's V-cycle on the host in float64.

        The result is moved back to the device and dtype of ``r``.
        """
        host = r.detach().cpu().numpy().astype(np.float64).reshape(r.shape[0], -1)
        out = np.stack([cycle @ host[i] for i, cycle in enumerate(self.cycles)])
        return torch.as_tensor(out, dtype=r.dtype, device=r.device).reshape(r.shape)
