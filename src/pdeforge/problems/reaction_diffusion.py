"""Scalar reaction-diffusion ``u_t = D Lap u + R(u)`` on the periodic box, any dimension.

One equation class (:class:`ReactionDiffusionEquation`) with a polynomial
reaction (:class:`PolynomialReaction`) and one problem base
(:class:`ReactionDiffusionProblem`) serve every member of the family:
Allen-Cahn ``R = u - u^3`` with ``D = eps^2`` and Fisher-KPP
``R = r u (1 - u)``. A 2-D or 3-D version is a subclass that sets
``spatial_dims`` and the field axes, and one registration.

Diffusion is the linear part (integrated exactly by ETDRK4); the reaction
is explicit, so the step is limited by its rate, the largest
``|R'(u)|``: the step rule keeps ``h max|R'(u)|`` at ``cfl``, and the
per-stage monitor records that number as the sample's Courant number
(checked against ``cfl_limit``).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from pydantic import Field

from pdeforge.grids import Grid
from pdeforge.problems._base import FieldSpec, Integrator
from pdeforge.problems._reaction import RateMonitor, rate_step_rule
from pdeforge.problems._spectral_common import (
    GaussianStartConfig,
    PeriodicProblem,
    TimeDependentConfig,
    output_times,
)
from pdeforge.spectral import dealias_mask, grid_dims

__all__ = [
    "AllenCahn",
    "AllenCahnConfig",
    "FisherKPP",
    "FisherKPPConfig",
    "PolynomialReaction",
    "ReactionDiffusionEquation",
    "ReactionDiffusionProblem",
    "ginzburg_landau_energy",
]


@dataclass(frozen=True)
class PolynomialReaction:
    """``R(u) = c0 + c1 u + c2 u^2 + ...`` evaluated pointwise (Horner's rule).

    Examples
    --------
    >>> allen_cahn = PolynomialReaction((0.0, 1.0, 0.0, -1.0))
    >>> float(allen_cahn(torch.tensor(0.5))), float(allen_cahn.derivative(torch.tensor(1.0)))
    (0.375, -2.0)
    """

    coefficients: tuple[float, ...]

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """``R(u)``, pointwise."""
        out = torch.full_like(u, self.coefficients[-1])
        for c in reversed(self.coefficients[:-1]):
            out = out * u + c
        return out

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        """``R'(u)``, pointwise."""
        slope = [n * c for n, c in enumerate(self.coefficients)][1:] or [0.0]
        return PolynomialReaction(tuple(slope))(u)


class ReactionDiffusionEquation(RateMonitor):
    """``u_t = D Lap u + R(u)`` in Fourier space (rfftn layout over the grid's axes).

    ``L = -D |k|^2``; ``N(u) = F[R(F^-1 u)]`` with the 2/3 mask applied to
    the state before and to the reaction after the product. The monitor
    records ``h max|R'(u)|`` of every stage, the explicit reaction's
    stability number.

    Parameters
    ----------
    grid
        A periodic grid of any dimension.
    diffusivity
        ``D >= 0``.
    reaction
        The pointwise reaction ``R``.
    device
        Of the operators.
    """

    def __init__(self, grid: Grid, diffusivity: float, reaction: PolynomialReaction, *, device=None) -> None:
        super().__init__(grid)
        self.grid = grid
        self.reaction = reaction
        self.linear = -diffusivity * grid.wavenumber_squared(device=device)
        self._mask = dealias_mask(grid, device=device)
        self._dims = grid_dims(grid)

    def physical(self, u_hat: torch.Tensor) -> torch.Tensor:
        """The field on the grid from its spectrum."""
        return torch.fft.irfftn(u_hat, s=self.grid.shape, dim=self._dims)

    def rate(self, u_hat: torch.Tensor) -> torch.Tensor:
        """``max|R'(u)|`` per sample."""
        return self.reaction.derivative(self.physical(u_hat)).abs().flatten(1).amax(-1)

    def nonlinear(self, u_hat: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """``F[R(u)]``, 2/3-masked; records the stage's reaction rate."""
        u = self.physical(u_hat * self._mask)
        self.record(self.reaction.derivative(u).abs().flatten(1).amax(-1))
        return torch.fft.rfftn(self.reaction(u), dim=self._dims) * self._mask


ReactionConfigT = TypeVar("ReactionConfigT", bound=TimeDependentConfig)
"""The configuration type of a :class:`ReactionDiffusionProblem` subclass."""


class ReactionDiffusionProblem(PeriodicProblem[ReactionConfigT]):
    """A scalar reaction-diffusion problem; subclasses give ``D``, ``R``, the rate bound and the sampler's map.

    The initial condition is a Gaussian random field ``g`` (the base's
    ``ic_*`` fields) mapped pointwise into the invariant interval by
    :meth:`squash`, so the maximum principle applies to the data.
    """

    @abstractmethod
    def diffusivity(self) -> float:
        """``D``."""

    @abstractmethod
    def reaction(self) -> PolynomialReaction:
        """``R``."""

    @abstractmethod
    def rate_bound(self) -> float:
        """``max |R'|`` over the invariant interval."""

    @abstractmethod
    def squash(self, g: torch.Tensor) -> torch.Tensor:
        """The pointwise map of the Gaussian field into the invariant interval."""

    def draw_inputs(self, rngs: Sequence[np.random.Generator]) -> dict[str, torch.Tensor]:
        """One initial condition per generator: :meth:`squash` of a Gaussian random field on the solver's grid."""
        return {self.inputs[0].name: self.squash(self.prior().sample(rngs))}

    def equation_for(self) -> ReactionDiffusionEquation:
        """The equation on the solver's grid."""
        return ReactionDiffusionEquation(self.fine_grid, self.diffusivity(), self.reaction(), device=self.device)

    def integrate(self, u0: torch.Tensor, method: Integrator):
        """Solve from ``u0`` with ``method``; the step keeps ``h max|R'|`` at ``cfl``."""
        c, fine = self.config, self.fine_grid
        equation = self.equation_for()
        dims = grid_dims(fine)
        rule = rate_step_rule(c, equation, self.rate_bound())
        u_hat, steps = method(equation, torch.fft.rfftn(u0, dim=dims), output_times(c), rule)
        return torch.fft.irfftn(u_hat, s=fine.shape, dim=dims), steps, equation


class AllenCahnConfig(GaussianStartConfig):
    """Allen-Cahn parameters: interface width ``eps`` on the unit interval; see docs/conventions.md."""

    resolution: int = Field(default=256, ge=4, description="grid points per axis of the stored fields")
    eps: float = Field(default=0.02, gt=0, description="interface width eps (the diffusivity is eps^2)")
    t_final: float = Field(default=5.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=20, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    ic_scale: float = Field(default=625.0, gt=0, description="covariance multiplier of the Gaussian field g")
    ic_tau: float = Field(default=5.0, ge=0, description="inverse length scale of the Gaussian field g")
    ic_alpha: float = Field(default=2.0, gt=0, description="smoothness exponent of the Gaussian field g")


class AllenCahn(ReactionDiffusionProblem[AllenCahnConfig]):
    """Allen-Cahn ``u_t = eps^2 u_xx + u - u^3`` on the periodic unit interval.

    The initial condition ``u0 = tanh(g)`` of a Gaussian random field ``g``
    lies in ``(-1, 1)``, where the maximum principle keeps ``u``; the
    Ginzburg-Landau energy (:func:`ginzburg_landau_energy`) never grows.

    Examples
    --------
    >>> from pdeforge.problems import AllenCahn, AllenCahnConfig
    >>> problem = AllenCahn(AllenCahnConfig(resolution=64, n_times=2))
    >>> u0 = problem.sample_inputs(0, range(3))["u0"]
    >>> bool(u0.abs().max() < 1)
    True
    """

    name = "allen-cahn"
    stored_params = ("eps",)
    summary = "1-D Allen-Cahn phase separation u_t = eps^2 u_xx + u - u^3 on the periodic unit interval"
    equation = "u_t = eps^2 u_xx + u - u^3 on the periodic interval (0,L), u(0) = tanh(g), g Gaussian"
    Config = AllenCahnConfig
    inputs = (FieldSpec("u0", ("x",)),)
    outputs = (FieldSpec("u", ("t", "x")),)
    spatial_dims = 1

    def diffusivity(self) -> float:
        """``eps^2``."""
        return self.config.eps**2

    def reaction(self) -> PolynomialReaction:
        """``u - u^3``."""
        return PolynomialReaction((0.0, 1.0, 0.0, -1.0))

    def rate_bound(self) -> float:
        """``max |1 - 3 u^2|`` on ``[-1, 1]``: 2."""
        return 2.0

    def squash(self, g: torch.Tensor) -> torch.Tensor:
        """``tanh(g)``."""
        return torch.tanh(g)



def ginzburg_landau_energy(u: torch.Tensor, grid: Grid, eps: float) -> torch.Tensor:
    """``E(u) = integral eps^2 / 2 |grad u|^2 + (1 - u^2)^2 / 4``, spectrally, per leading index.

    The Lyapunov functional of Allen-Cahn: ``dE/dt = -integral u_t^2 <= 0``.
    ``u`` is ``[..., *grid.shape]``; returns ``[...]``.
    """
    dims = grid_dims(grid)
    u_hat = torch.fft.rfftn(u, dim=dims)
    gradient_sq = torch.zeros_like(u)
    for k in grid.wavenumbers(device=u.device):
        gradient_sq = gradient_sq + torch.fft.irfftn(1j * k * u_hat, s=grid.shape, dim=dims) ** 2
    density = 0.5 * eps**2 * gradient_sq + 0.25 * (1 - u * u) ** 2
    cell = math.prod(grid.spacing)
    return density.flatten(-grid.ndim).sum(-1) * cell


class FisherKPPConfig(GaussianStartConfig):
    """Fisher-KPP parameters; defaults are PDEBench's 1-D diffusion-reaction set (``nu = 0.5, rho = 1``)."""

    resolution: int = Field(default=1024, ge=4, description="grid points per axis of the stored fields")
    nu: float = Field(default=0.5, ge=0, description="diffusivity D")
    rate: float = Field(default=1.0, gt=0, description="growth rate r of the logistic reaction r u (1 - u)")
    t_final: float = Field(default=1.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=100, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    ic_scale: float = Field(default=625.0, gt=0, description="covariance multiplier of the Gaussian field g")
    ic_tau: float = Field(default=5.0, ge=0, description="inverse length scale of the Gaussian field g")
    ic_alpha: float = Field(default=2.0, gt=0, description="smoothness exponent of the Gaussian field g")


class FisherKPP(ReactionDiffusionProblem[FisherKPPConfig]):
    """Fisher-KPP ``u_t = D u_xx + r u (1 - u)`` on the periodic unit interval.

    The initial condition ``u0 = sigmoid(g)`` of a Gaussian random field
    ``g`` lies in ``(0, 1)``, where the solution stays; a uniform state
    follows the logistic ODE exactly (:class:`~pdeforge.problems.gallery.LogisticGrowth`).

    Examples
    --------
    >>> from pdeforge.problems import FisherKPP, FisherKPPConfig
    >>> u0 = FisherKPP(FisherKPPConfig(resolution=64)).sample_inputs(0, range(3))["u0"]
    >>> bool((u0 > 0).all() and (u0 < 1).all())
    True
    """

    name = "fisher-kpp"
    stored_params = ("nu", "rate")
    summary = "1-D Fisher-KPP u_t = D u_xx + r u (1 - u) on the periodic unit interval (PDEBench diffusion-reaction)"
    equation = "u_t = D u_xx + r u (1 - u) on the periodic interval (0,L), u(0) = sigmoid(g), g Gaussian"
    Config = FisherKPPConfig
    inputs = (FieldSpec("u0", ("x",)),)
    outputs = (FieldSpec("u", ("t", "x")),)
    spatial_dims = 1

    def diffusivity(self) -> float:
        """``D``."""
        return self.config.nu

    def reaction(self) -> PolynomialReaction:
        """``r u - r u^2``."""
        r = self.config.rate
        return PolynomialReaction((0.0, r, -r))

    def rate_bound(self) -> float:
        """``max |r (1 - 2 u)|`` on ``[0, 1]``: ``r``."""
        return self.config.rate

    def squash(self, g: torch.Tensor) -> torch.Tensor:
        """``sigmoid(g)``."""
        return torch.sigmoid(g)
