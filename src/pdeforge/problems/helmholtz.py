"""The Helmholtz equation on the unit square with a random source.

    -Lap u(x) - k^2 u(x) = f(x),  x in (0, 1)^2,   u = 0 on the boundary,

with ``f`` the Gaussian random source of :mod:`.poisson` and a fixed
wavenumber ``k``. The operator has constant coefficients, so ``solver =
auto`` solves it exactly with sine transforms (``dst``, see
:mod:`pdeforge.solvers._fast_poisson`), definite or not. The 5-point
discretisation is symmetric, and positive definite while ``k^2`` stays
below its first Dirichlet eigenvalue ``lambda_1 = 8 sin^2(pi h / 2) / h^2``
(about ``2 pi^2``): there multigrid-preconditioned CG (``pcg-mg``) applies
too. Above it the operator is indefinite, CG does not apply, and the
iterative choice is GMRES preconditioned by the same V-cycle
(``gmres-mg``). Measured on 63^2 to 255^2 unknowns, GMRES needs about 15
iterations at ``k = 4.5``, 20 at ``k = 10`` and 30 at ``k = 20``,
independently of the resolution, but about 130 at ``k = 30`` (the coarse
levels no longer represent the waves), so the config stops at ``k = 30``;
at a resonance ``k^2 = lambda_j`` the operator is singular and every
solver refuses or fails.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from pdeforge.problems._stencil import StencilOperator
from pdeforge.problems.poisson import Poisson, PoissonConfig, laplacian_operator

__all__ = ["Helmholtz", "HelmholtzConfig", "first_eigenvalue"]

def first_eigenvalue(resolution: int) -> float:
    """Smallest eigenvalue of the 5-point ``-Lap`` on ``resolution^2`` nodes of the unit square."""
    h = 1.0 / (resolution - 1)
    return 8.0 * math.sin(math.pi * h / 2) ** 2 / (h * h)


class HelmholtzConfig(PoissonConfig):
    """Helmholtz parameters: the Poisson ones and the wavenumber."""

    wavenumber: float = Field(default=3.0, ge=0, le=30, description="wavenumber k (indefinite above about pi sqrt 2)")


class Helmholtz(Poisson):
    """The Helmholtz equation ``-Lap u - k^2 u = f`` on the unit square, ``u = 0`` on the boundary.

    A random source mapped to the solution at a fixed wavenumber ``k``;
    indefinite above the first Dirichlet eigenvalue (see the module docstring),
    where the solver table's ``auto`` stays exact (``dst``) and refuses CG.
    """

    name = "helmholtz"
    summary = "2-D Helmholtz equation -Lap u - k^2 u = f with a random source, u = 0 on the boundary"
    equation = "-Lap u - k^2 u = f on (0,1)^2, u = 0 on the boundary"
    Config = HelmholtzConfig
    config: HelmholtzConfig  # narrows Poisson's PoissonConfig: Config makes every instance's config one

    @property
    def definite(self) -> bool:
        """Whether ``k^2`` lies below the first discrete eigenvalue."""
        return self.config.wavenumber**2 < first_eigenvalue(self.config.resolution)

    def operator(self, batch: int) -> StencilOperator:
        """The discrete operator ``-Lap - k^2`` of ``batch`` systems."""
        return laplacian_operator(self.grid, batch, shift=-self.config.wavenumber**2, device=self.device)

    def params(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per sample: the source's RMS and the wavenumber."""
        out = super().params(inputs)
        out["wavenumber"] = torch.full_like(out["source_rms"], self.config.wavenumber)
        return out
