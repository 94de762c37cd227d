"""Linear advection-diffusion on a periodic box of any dimension, and the heat equation.

    u_t + c . grad u = D Lap u,   x in [0, L)^d periodic,   u(x, 0) = u0(x).

In Fourier space every mode evolves on its own, ``u_hat(k, t) = u_hat(k, 0)
exp((-D |k|^2 - i c . k) t)``: the whole equation is the diagonal linear part
``L`` of the semilinear form ``u_t = L u + N(u)`` and ``N = 0``. ETDRK4 then
reproduces the exact solution to rounding at any step, and an IMEX scheme
(implicit in ``L``) shows its order on it. ``c = 0`` is the heat equation.
Velocity and diffusivity default to exponax's ``AdvectionDiffusion`` stepper
(``c = 1`` per axis, ``D = 0.01``; see docs/conventions.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch
from pydantic import Field

from pdeforge._typing import Flags
from pdeforge.grids import Grid
from pdeforge.problems._base import FieldSpec, Integrator
from pdeforge.problems._spectral_common import (
    CourantMonitor,
    GaussianStartConfig,
    PeriodicProblem,
    output_times,
    step_size_rule,
)
from pdeforge.spectral import grid_dims

__all__ = [
    "AdvectionDiffusion",
    "AdvectionDiffusion3D",
    "AdvectionDiffusion3DConfig",
    "AdvectionDiffusionBaseConfig",
    "AdvectionDiffusionConfig",
    "AdvectionDiffusionEquation",
    "advection_diffusion_symbol",
]

MASS_TOLERANCE = 1e-10
"""Largest admissible drift of the mean, relative to the initial ``max |u0|`` (rounding is ~1e-15)."""

NORM_TOLERANCE = 1e-10
"""Largest admissible relative growth of the L2 norm over a trajectory (the exact norm never grows)."""


def advection_diffusion_symbol(grid: Grid, velocity: Sequence[float], diffusivity: float, *,
                               device=None) -> torch.Tensor:
    """The Fourier symbol ``-D |k|^2 - i c . k`` on the ``rfftn`` layout of ``grid``.

    Parameters
    ----------
    grid
        A periodic grid of ``d`` axes.
    velocity
        The constant velocity ``c``, one component per axis.
    diffusivity
        ``D >= 0``.
    device
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        Complex (``complex128``) when ``c != 0``, else real; it broadcasts against ``rfftn`` spectra.

    Examples
    --------
    >>> import math
    >>> symbol = advection_diffusion_symbol(Grid((4,), (2 * math.pi,)), [1.0], 0.5)  # k = 0, 1, 2
    >>> symbol[1:].tolist()  # -D k^2 - i c k
    [(-0.5-1j), (-2-2j)]
    """
    if len(velocity) != grid.ndim:
        raise ValueError(f"the velocity has {len(velocity)} components for a {grid.ndim}-D grid")
    if diffusivity < 0:
        raise ValueError(f"the diffusivity must be >= 0, got {diffusivity}")
    symbol = -diffusivity * grid.wavenumber_squared(device=device)
    if any(velocity):
        drift = sum(float(c) * k for c, k in zip(velocity, grid.wavenumbers(device=device), strict=True))
        symbol = symbol - 1j * drift
    return symbol


class AdvectionDiffusionEquation(CourantMonitor):
    """``u_t = L u`` with ``L = -D |k|^2 - i c . k`` on the ``rfftn`` layout; the nonlinearity is zero.

    Records the advective Courant number ``sum_i |c_i| h / dx`` of every stage:
    it bounds the phase a mode turns through per step, which is what limits an
    IMEX scheme's accuracy (ETDRK4 integrates ``L`` exactly at any step).
    """

    def __init__(self, grid: Grid, velocity: Sequence[float], diffusivity: float, *, device=None) -> None:
        super().__init__(grid)
        self.grid = grid
        self.linear = advection_diffusion_symbol(grid, velocity, diffusivity, device=device)
        self.advective_speed = float(sum(abs(float(c)) for c in velocity))

    def speed(self, u_hat: torch.Tensor) -> torch.Tensor:
        """``sum_i |c_i|`` for every sample (the velocity is the same everywhere)."""
        return torch.full((u_hat.shape[0],), self.advective_speed, dtype=torch.float64, device=u_hat.device)

    def nonlinear(self, u_hat: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """Zero; records the stage's advective speed."""
        self.record(self.speed(u_hat))
        return torch.zeros_like(u_hat)


class AdvectionDiffusionBaseConfig(GaussianStartConfig):
    """What the 1-D and 3-D configs share: a diffusivity that may vanish, and a velocity."""

    velocity: float | tuple[float, ...] = Field(default=1.0, description="advection velocity")
    nu: float = Field(default=0.01, ge=0, description="diffusivity D (0: pure advection)")

    @property
    def velocity_vector(self) -> tuple[float, ...]:
        """The velocity as one component per axis."""
        return tuple(self.velocity) if isinstance(self.velocity, tuple) else (float(self.velocity),)


class AdvectionDiffusionConfig(AdvectionDiffusionBaseConfig):
    """1-D advection-diffusion parameters; ``c = 1``, ``D = 0.01`` as exponax's stepper, Burgers' FNO prior."""

    resolution: int = Field(default=256, ge=4, description="grid points of the stored fields")
    velocity: float = Field(default=1.0, description="advection velocity c")
    t_final: float = Field(default=1.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=10, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    ic_scale: float = Field(default=625.0, gt=0, description="initial condition covariance multiplier")
    ic_tau: float = Field(default=5.0, ge=0, description="initial condition inverse length scale")
    ic_alpha: float = Field(default=2.0, gt=0, description="initial condition smoothness exponent")


class AdvectionDiffusion3DConfig(AdvectionDiffusionBaseConfig):
    """3-D advection-diffusion parameters; ``c = (1, 1, 1)``, ``D = 0.01``; ``velocity=[0,0,0]``: heat equation."""

    resolution: int = Field(default=32, ge=4, description="grid points per axis of the stored fields")
    velocity: tuple[float, float, float] = Field(
        default=(1.0, 1.0, 1.0), description="advection velocity (c_x, c_y, c_z); all zero: the heat equation")
    t_final: float = Field(default=1.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=4, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    ic_scale: float = Field(default=23000.0, gt=0,
                            description="initial condition covariance multiplier (pointwise variance about 1)")
    ic_tau: float = Field(default=5.0, ge=0, description="initial condition inverse length scale")
    ic_alpha: float = Field(default=3.0, gt=0,
                            description="initial condition smoothness exponent (shell energy ~ |k|^-4, as 2-D NS)")


AdvectionConfigT = TypeVar("AdvectionConfigT", bound=AdvectionDiffusionBaseConfig)
"""The configuration type of an advection-diffusion problem."""


class _AdvectionDiffusionBase(PeriodicProblem[AdvectionConfigT]):
    """The dimension-generic solve shared by the 1-D and 3-D problems."""

    stored_params = ("nu",)

    def integrate(self, u0: torch.Tensor, method: Integrator):
        """Advance ``u0`` by the exact-in-``L`` or implicit-in-``L`` scheme ``method``."""
        c, fine = self.config, self.fine_grid
        velocity = c.velocity_vector
        equation = AdvectionDiffusionEquation(fine, velocity, c.nu, device=self.device)
        dims = grid_dims(fine)
        u_hat, steps = method(equation, torch.fft.rfftn(u0, dim=dims), output_times(c),
                              step_size_rule(c, fine, equation.speed))
        return torch.fft.irfftn(u_hat, s=fine.shape, dim=grid_dims(fine)), steps, equation

    def sample_checks(self, u0: torch.Tensor, u: torch.Tensor) -> dict[str, Flags]:
        """The invariants of the exact solution, per sample: the mean is kept and the L2 norm never grows."""
        dims = tuple(range(-self.spatial_dims, 0))
        scale = u0.abs().flatten(1).amax(-1).clamp_min(torch.finfo(u0.dtype).tiny)
        drift = (u.mean(dims) - u0.mean(dims)[:, None]).abs().amax(-1) / scale
        norm0 = u0.square().sum(dims).sqrt()
        growth = (u.square().sum(dims).sqrt() / norm0.clamp_min(torch.finfo(u0.dtype).tiny)[:, None]).amax(-1)
        return {
            f"mean changed by more than {MASS_TOLERANCE} max|u0|": drift <= MASS_TOLERANCE,
            f"L2 norm grew by more than {NORM_TOLERANCE}": growth <= 1 + NORM_TOLERANCE,
        }

    def params(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The diffusivity ``nu`` and the velocity components ``c_x, ...`` of every sample."""
        n = next(iter(inputs.values())).shape[0]
        velocity = self.config.velocity_vector
        out = super().params(inputs)
        for name, value in zip(("c_x", "c_y", "c_z"), velocity, strict=False):
            out[name] = torch.full((n,), float(value), dtype=torch.float64)
        return out


class AdvectionDiffusion(_AdvectionDiffusionBase[AdvectionDiffusionConfig]):
    """1-D advection-diffusion ``u_t + c u_x = D u_xx`` on the periodic interval ``[0, L)``.

    A Gaussian random initial condition ``u0`` mapped to the trajectory
    ``u(t_i)``; solved in Fourier space, where the solution is known exactly
    (:class:`~pdeforge.problems.gallery.FourierAdvectionDiffusion`).

    Examples
    --------
    >>> from pdeforge.problems import AdvectionDiffusion, AdvectionDiffusionConfig
    >>> problem = AdvectionDiffusion(AdvectionDiffusionConfig(resolution=64, n_times=2))
    >>> problem.field_shapes()
    {'u0': (64,), 'u': (2, 64)}
    """

    name = "advection-diffusion"
    summary = "1-D linear advection-diffusion on the periodic interval (exact Fourier solution)"
    equation = "u_t + c u_x = D u_xx on the periodic interval (0,L), u(0) = u0"
    Config = AdvectionDiffusionConfig
    inputs = (FieldSpec("u0", ("x",)),)
    outputs = (FieldSpec("u", ("t", "x")),)
    spatial_dims = 1


class AdvectionDiffusion3D(_AdvectionDiffusionBase[AdvectionDiffusion3DConfig]):
    """3-D advection-diffusion ``u_t + c . grad u = D Lap u`` on the periodic box ``[0, L)^3``.

    ``velocity = (0, 0, 0)`` is the heat equation ``u_t = D Lap u``. Same
    solve as the 1-D problem, on ``rfftn`` spectra of three axes.

    Examples
    --------
    >>> from pdeforge.problems import AdvectionDiffusion3D, AdvectionDiffusion3DConfig
    >>> problem = AdvectionDiffusion3D(AdvectionDiffusion3DConfig(resolution=8, n_times=2))
    >>> problem.field_shapes()
    {'u0': (8, 8, 8), 'u': (2, 8, 8, 8)}
    """

    name = "advection-diffusion-3d"
    summary = "3-D linear advection-diffusion on the periodic box; velocity 0 is the heat equation (exact solution)"
    equation = "u_t + c . grad u = D Lap u on the periodic box (0,L)^3, u(0) = u0"
    Config = AdvectionDiffusion3DConfig
    inputs = (FieldSpec("u0", ("x", "y", "z")),)
    outputs = (FieldSpec("u", ("t", "x", "y", "z")),)
    spatial_dims = 3

