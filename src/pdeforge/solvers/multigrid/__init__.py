"""Geometric multigrid for batched variable-coefficient elliptic stencils.

Operator-dependent interpolation (:class:`Interpolation`), Galerkin coarse
operators by stencil algebra (:func:`galerkin`), coloured Gauss-Seidel
smoothing (:class:`ColouredGaussSeidel`) in a parity-split layout
(:class:`Sublattices`, :class:`SplitStencil`) and a batched dense coarse
solve; the symmetric V-cycle (:class:`Multigrid`, shaped by a
:class:`CycleSpec`, run level by level by :class:`Level`) is the preconditioner of CG in ``solver = pcg-mg``.
"""

from pdeforge.solvers.multigrid._cycle import CycleSpec, Multigrid
from pdeforge.solvers.multigrid._galerkin import galerkin
from pdeforge.solvers.multigrid._layout import SplitStencil, Sublattices
from pdeforge.solvers.multigrid._level import Level
from pdeforge.solvers.multigrid._smoothers import ColouredGaussSeidel
from pdeforge.solvers.multigrid._stencil import Stencil, box_offsets, compact_offsets
from pdeforge.solvers.multigrid._transfer import Interpolation

__all__ = ["ColouredGaussSeidel", "CycleSpec", "Interpolation", "Level", "Multigrid", "SplitStencil", "Stencil",
           "Sublattices", "box_offsets", "compact_offsets", "galerkin"]
