"""Poisson's equation on the unit square with a random source.

    -Lap u(x) = f(x),  x in (0, 1)^2,   u = 0 on the boundary,

with ``f`` a Gaussian random field ``N(0, scale (-Lap + tau^2)^(-alpha))``
(cosine modes, sampled at every node). Discretised with the 5-point
Laplacian at the interior nodes of the grid (second order), the system
that multigrid solves in ``O(n)`` (Trottenberg, Oosterlee and Schueller,
*Multigrid*, 2001, ch. 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field

from pdeforge.grids import Grid
from pdeforge.problems._base import FieldSpec, LinearSolve, Solution
from pdeforge.problems._elliptic import EllipticConfig, EllipticProblem, solve_dirichlet
from pdeforge.problems._stencil import StencilOperator
from pdeforge.spectral import GaussianRandomField

__all__ = ["Poisson", "PoissonConfig", "laplacian_operator"]


class PoissonConfig(EllipticConfig):
    """Poisson parameters: the GRF of the source."""

    source_alpha: float = Field(default=2.0, gt=0, description="GRF smoothness exponent of the source")
    source_tau: float = Field(default=3.0, ge=0, description="GRF inverse length scale of the source")
    source_scale: float = Field(default=25.0, gt=0, description="GRF covariance multiplier of the source")
    source_zero_mean: bool = Field(default=True,
                                   description="drop the source GRF's constant mode (as the FNO data's GRF.m does)")


def laplacian_operator(grid: Grid, batch: int, *, shift: float = 0.0, dtype: torch.dtype = torch.float64,
                       device=None) -> StencilOperator:
    """``-Lap + shift`` at the interior nodes of a Dirichlet grid, for ``batch`` systems."""
    inner = [n - 2 for n in grid.shape]
    faces = []
    for d in range(grid.ndim):
        shape = list(inner)
        shape[d] += 1
        faces.append(torch.ones((batch, *shape), dtype=dtype, device=device))
    return StencilOperator(faces, grid.spacing, shift)


class Poisson(EllipticProblem[PoissonConfig]):
    """The Poisson equation ``-Lap u = f`` on the unit square, ``u = 0`` on the boundary.

    A random source mapped to the solution; constant coefficients, so the
    solver table's ``auto`` solves it exactly by sine transforms.
    """

    name = "poisson"
    summary = "2-D Poisson equation -Lap u = f with a random source, u = 0 on the boundary"
    equation = "-Lap u = f on (0,1)^2, u = 0 on the boundary"
    Config = PoissonConfig
    inputs = (FieldSpec("source", ("x", "y")),)
    constant_coefficients = True

    def draw_inputs(self, rngs: Sequence[np.random.Generator]) -> dict[str, torch.Tensor]:
        """One source per generator, a Neumann GRF on the nodes."""
        c = self.config
        grf = GaussianRandomField(Grid(self.grid.shape, boundary="neumann"), scale=c.source_scale,
                                  tau=c.source_tau, alpha=c.source_alpha, zero_mean=c.source_zero_mean,
                                  device=self.device)
        return {"source": grf.sample(rngs)}

    def operator(self, batch: int) -> StencilOperator:
        """The discrete operator of ``batch`` systems."""
        return laplacian_operator(self.grid, batch, device=self.device)

    def solve(self, inputs: dict[str, torch.Tensor], method: LinearSolve) -> Solution:
        """Solve the batch at the interior nodes with ``method`` and check every residual."""
        f = inputs["source"].to(torch.float64)
        op = self.operator(f.shape[0])
        return solve_dirichlet(op, f[:, 1:-1, 1:-1].contiguous(), method, self.config.rtol)

    def params(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per sample: the source's RMS."""
        f = inputs["source"].flatten(1).to(torch.float64)
        return {"source_rms": f.pow(2).mean(1).sqrt()}
