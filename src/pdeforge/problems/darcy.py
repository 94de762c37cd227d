"""Steady Darcy flow on the unit square, the FNO 2-D elliptic benchmark.

    -div(a(x) grad u(x)) = f(x),  x in (0, 1)^2,   u = 0 on the boundary.

The coefficient is a thresholded Gaussian random field, ``a = 12`` where a
zero-mean Neumann GRF with ``alpha = 2, tau = 3`` is non-negative and
``a = 4`` elsewhere, as in the code that generated the FNO paper's data (Li
et al. 2021, sec. 5.2, writes 3 for the low value; its ``GRF.m`` and Darcy
script use 4 and drop the field's constant mode); or log-normal,
``a = exp(g)``. See docs/conventions.md.
Discretised with second-order finite differences on the nodes of the grid
(boundary included), harmonic averages of ``a`` on the faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from pdeforge.grids import Grid
from pdeforge.problems._base import FieldSpec, LinearSolve, Solution
from pdeforge.problems._elliptic import EllipticConfig, EllipticProblem, solve_dirichlet
from pdeforge.problems._stencil import StencilOperator, harmonic_faces
from pdeforge.spectral import GaussianRandomField

__all__ = ["Darcy", "DarcyConfig", "darcy_operator"]


class DarcyConfig(EllipticConfig):
    """Darcy parameters; defaults follow the FNO data's code: ``a`` in ``{12, 4}`` from a zero-mean GRF, ``f = 1``.

    The FNO paper (Li et al. 2021, sec. 5.2) prints 3 for the low value; the
    MATLAB code that generated its published data uses 4, and its ``GRF.m``
    sets the constant mode to zero, which balances the two values in every
    sample. ``coeff_zero_mean=False`` keeps that mode (the field's mean is
    then random and about 29% of samples are more than 90% one value).
    """

    coefficient: Literal["piecewise", "lognormal"] = Field(default="piecewise", description="coefficient model")
    coeff_alpha: float = Field(default=2.0, gt=0, description="GRF smoothness exponent")
    coeff_tau: float = Field(default=3.0, ge=0, description="GRF inverse length scale")
    coeff_scale: float | None = Field(
        default=None, gt=0,
        description="GRF covariance multiplier, lognormal only (default: the FNO code's tau^(2 alpha - 2))")
    coeff_zero_mean: bool = Field(default=True, description="drop the GRF's constant mode (the FNO data's convention)")
    high: float = Field(default=12.0, gt=0, description="piecewise value where the GRF is >= 0")
    low: float = Field(default=4.0, gt=0, description="piecewise value where the GRF is < 0 (FNO code: 4, paper: 3)")
    forcing: float = Field(default=1.0, description="constant right-hand side f")
    solver_resolution: int | None = Field(
        default=None, ge=3,
        description="nodes per axis the coefficient is drawn and the equation solved on; the stored fields take "
                    "every ((S - 1) / (R - 1))-th node (the FNO data: 421 -> 85). Default: resolution")

    @property
    def fine_resolution(self) -> int:
        """Nodes per axis of the solve."""
        return self.solver_resolution or self.resolution

    @model_validator(mode="after")
    def _fine_grid_holds_the_stored_one(self):
        fine = self.fine_resolution
        if fine < self.resolution or (fine - 1) % (self.resolution - 1):
            raise ValueError(f"solver_resolution {fine} must be (resolution - 1) * r + 1 for a whole r "
                             f"(e.g. {(self.resolution - 1) * 5 + 1} for r = 5)")
        return self

    @property
    def grf_scale(self) -> float:
        """``coeff_scale``, or the FNO code's ``tau^(2 alpha - 2)`` (1 when ``tau = 0``)."""
        if self.coeff_scale is not None:
            return self.coeff_scale
        return self.coeff_tau ** (2 * self.coeff_alpha - 2) if self.coeff_tau > 0 else 1.0

    @model_validator(mode="after")
    def _forcing_nonzero(self):
        if self.forcing == 0:
            raise ValueError("forcing = 0 gives the trivial solution u = 0")
        return self


def darcy_operator(a: torch.Tensor, grid: Grid) -> StencilOperator:
    """The FD operator of ``-div(a grad u)`` for nodal coefficients ``a`` ``[batch, *grid.shape]``."""
    return StencilOperator(harmonic_faces(a, grid.ndim), grid.spacing)


class Darcy(EllipticProblem[DarcyConfig]):
    """Steady Darcy flow ``-div(a grad u) = f`` on the unit square, ``u = 0`` on the boundary.

    The FNO 2-D elliptic benchmark (Li et al. 2021, sec. 5.2): a random
    coefficient ``a`` mapped to the solution ``u``. Second-order finite
    differences with harmonic face averages; by default the systems are solved
    by multigrid-preconditioned CG and every residual is re-checked.

    Examples
    --------
    >>> from pdeforge.problems import Darcy, DarcyConfig
    >>> from pdeforge.solvers import method_for
    >>> problem = Darcy(DarcyConfig(resolution=17))
    >>> solution = problem.solve(problem.sample_inputs(0, range(2)), method_for(problem))
    >>> bool(solution.converged.all()), tuple(solution.outputs["solution"].shape)
    (True, (2, 17, 17))
    """

    name = "darcy"
    summary = "2-D Darcy flow -div(a grad u) = f, u = 0 on the boundary (FNO benchmark)"
    equation = "-div(a grad u) = f on (0,1)^2, u = 0 on the boundary"
    Config = DarcyConfig
    inputs = (FieldSpec("coefficient", ("x", "y")),)

    @property
    def fine_grid(self) -> Grid:
        """The nodes the coefficient is drawn and the equation solved on (``solver_resolution`` per axis)."""
        r = self.config.fine_resolution
        return Grid((r, r), boundary="dirichlet")

    @property
    def _stride(self) -> int:
        return (self.config.fine_resolution - 1) // (self.config.resolution - 1)

    def draw_inputs(self, rngs: Sequence[np.random.Generator]) -> dict[str, torch.Tensor]:
        """One coefficient field per generator on the solver's nodes: thresholded or log-normal GRF."""
        c = self.config
        r = c.fine_resolution
        grf = GaussianRandomField(Grid((r, r), boundary="neumann"), scale=c.grf_scale, tau=c.coeff_tau,
                                  alpha=c.coeff_alpha, zero_mean=c.coeff_zero_mean, device=self.device)
        g = grf.sample(rngs)
        if c.coefficient == "piecewise":
            a = torch.where(g >= 0, c.high, c.low).to(g.dtype)
        else:
            a = torch.exp(g)
        return {"coefficient": a}

    def solve(self, inputs: dict[str, torch.Tensor], method: LinearSolve) -> Solution:
        """Solve the batch of Darcy systems on the solver's nodes with ``method``, check every residual, subsample."""
        c = self.config
        a = inputs["coefficient"].to(torch.float64)
        op = darcy_operator(a, self.fine_grid)
        b = torch.full((a.shape[0], *op.shape), c.forcing, dtype=torch.float64, device=a.device)
        solution = solve_dirichlet(op, b, method, c.rtol)
        k = self._stride
        if k > 1:
            solution.outputs["solution"] = solution.outputs["solution"][:, ::k, ::k].contiguous()
        return solution

    def stored_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The coefficient at the stored nodes (every ``(S - 1) / (R - 1)``-th node of the solver's)."""
        k = self._stride
        return {name: v[:, ::k, ::k].contiguous() for name, v in inputs.items()} if k > 1 else inputs

    def params(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per sample: the coefficient's contrast ``max a / min a`` and the forcing."""
        a = inputs["coefficient"].flatten(1)
        return {
            "contrast": (a.amax(1) / a.amin(1)).to(torch.float64),
            "forcing": torch.full((a.shape[0],), self.config.forcing, dtype=torch.float64, device=a.device),
        }
