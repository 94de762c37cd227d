"""Geometric multigrid for batched variable-coefficient elliptic stencils.

Operator-dependent interpolation, Galerkin coarse operators by coloured
probing, coloured Gauss-Seidel smoothing and a batched dense coarse solve;
the symmetric V-cycle serves as the preconditioner of CG.
"""

from pdeforge.solvers.multigrid._cycle import CycleSpec, Multigrid
from pdeforge.solvers.multigrid._galerkin import galerkin
from pdeforge.solvers.multigrid._smoothers import ColouredGaussSeidel
from pdeforge.solvers.multigrid._stencil import Stencil, box_offsets, compact_offsets
from pdeforge.solvers.multigrid._transfer import Interpolation

__all__ = ["ColouredGaussSeidel", "CycleSpec", "Interpolation", "Multigrid", "Stencil", "box_offsets",
           "compact_offsets", "galerkin"]
