"""What the steady elliptic problems (Darcy, Poisson, Helmholtz) share.

Each discretises its PDE at the interior nodes of a Dirichlet grid as a
:class:`~pdeforge.problems.StencilOperator`, hands the batch of systems to
the linear solver its config names, re-checks every residual itself and
stores the solution with its zero boundary values. A sample whose solve
did not reach ``rtol`` is marked as not converged, with the reason.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from pdeforge.grids import Grid
from pdeforge.problems._base import (
    FieldSpec,
    LinearSolve,
    LinearTraits,
    Problem,
    ProblemConfig,
    Solution,
    check_samples,
)
from pdeforge.problems._stencil import StencilOperator

__all__ = ["EllipticConfig", "EllipticProblem", "solve_dirichlet"]


class EllipticConfig(ProblemConfig):
    """Fields every steady elliptic problem shares: the linear solver and its tolerance."""

    solver: str = Field(default="auto", min_length=1,
                        description="linear solver (`pdeforge problems` lists them): auto is the fastest correct one")
    rtol: float = Field(default=1e-8, gt=0, lt=1, description="required relative residual of every solve")


def solve_dirichlet(op: StencilOperator, b: torch.Tensor, method: LinearSolve, rtol: float) -> Solution:
    """Solve ``op u = b`` for a batch, check it, and pad ``u`` with its zero boundary values."""
    result = method(op, b, rtol=rtol)
    residual = op.residual_norm(result.x, b)
    u = F.pad(result.x, (1, 1) * op.ndim)
    converged, reasons = check_samples({
        "non-finite values": torch.isfinite(u).flatten(1).all(-1),
        f"relative residual above rtol {rtol:g}": residual <= rtol,
        "solver did not report convergence": result.converged,
    })
    return Solution(
        outputs={"solution": u},
        diagnostics={"residual": residual, "iterations": result.iterations.to(torch.int64)},
        converged=converged,
        reasons=reasons,
    )


EllipticConfigT = TypeVar("EllipticConfigT", bound=EllipticConfig)
"""The configuration type of an :class:`EllipticProblem` subclass."""


class EllipticProblem(Problem[EllipticConfigT]):
    """A steady problem on the nodes of the unit square with ``u = 0`` on the boundary.

    Subclasses name their input field (``outputs`` is the ``solution``)
    and implement ``draw_inputs`` and ``solve``; ``definite`` and
    ``constant_coefficients`` (the :attr:`method_traits`) are what the
    solver table checks the configured solver against and chooses ``auto``
    by.
    """

    outputs = (FieldSpec("solution", ("x", "y")),)
    method_kind = "linear"
    periodic = False
    constant_coefficients = False
    """Whether the operator is the same constant-coefficient one for every sample (``dst`` applies)."""

    @property
    def grid(self) -> Grid:
        """The nodes of the unit square, boundary included (``resolution`` per axis)."""
        r = self.config.resolution
        return Grid((r, r), boundary="dirichlet")

    @property
    def definite(self) -> bool:
        """Whether the discrete operator is positive definite (CG applies)."""
        return True

    @property
    def method_traits(self) -> LinearTraits:
        """The facts the solver table checks ``solver`` against and chooses ``auto`` by."""
        return LinearTraits(ndim=self.grid.ndim, definite=self.definite,
                            constant_coefficients=self.constant_coefficients)

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every stored field has the grid's shape ``(resolution, resolution)``."""
        return {f.name: self.grid.shape for f in (*self.inputs, *self.outputs)}

    def coords(self) -> dict[str, np.ndarray]:
        """The node coordinates ``x`` and ``y`` of the stored fields."""
        x, y = self.grid.coordinates()
        return {"x": x.numpy(), "y": y.numpy()}
