"""Viscous Burgers' equation on the unit circle, the FNO 1-D benchmark.

    u_t + (u^2 / 2)_x = nu u_xx,   x in [0, 1) periodic,   u(x, 0) = u0(x),

with ``u0 ~ N(0, 625 (-Lap + 25 I)^-2)`` and ``nu = 0.1`` (Li et al. 2021,
"Fourier Neural Operator for Parametric PDEs", sec. 5.1). Solved
pseudo-spectrally on a (possibly finer) periodic grid with the 2/3 rule;
stored at the requested resolution and times.
"""

from __future__ import annotations

import torch
from pydantic import Field

from pdeforge.grids import Grid
from pdeforge.problems._base import FieldSpec, Integrator
from pdeforge.problems._spectral_common import (
    CourantMonitor,
    GaussianStartConfig,
    PeriodicProblem,
    output_times,
    step_size_rule,
)
from pdeforge.spectral import dealias_mask

__all__ = ["Burgers", "BurgersConfig", "BurgersEquation"]


class BurgersConfig(GaussianStartConfig):
    """Burgers parameters; defaults are the FNO paper's (sec. 5.1): ``u0 ~ N(0, 625(-Lap + 25)^-2)``, ``nu = 0.1``."""

    resolution: int = Field(default=1024, ge=4, description="grid points of the stored fields")
    nu: float = Field(default=0.1, gt=0, description="viscosity")
    ic_scale: float = Field(default=625.0, gt=0, description="initial condition covariance multiplier")
    ic_tau: float = Field(default=5.0, ge=0, description="initial condition inverse length scale")
    ic_alpha: float = Field(default=2.0, gt=0, description="initial condition smoothness exponent")


class BurgersEquation(CourantMonitor):
    """Burgers' equation in Fourier space: ``L = -nu k^2``, ``N(u) = -i k/2 F[(F^-1 u)^2]`` (dealiased).

    Records the Courant number ``max |u| h / dx`` of every stage, for the CFL check.
    """

    def __init__(self, grid: Grid, nu: float, *, device=None) -> None:
        (k,) = grid.wavenumbers(device=device)
        super().__init__(grid)
        self.grid = grid
        self.linear = -nu * k * k
        self._ik_half = -0.5j * k * dealias_mask(grid, device=device)
        self._mask = dealias_mask(grid, device=device)

    def speed(self, u_hat: torch.Tensor) -> torch.Tensor:
        """``max |u|`` per sample."""
        return torch.fft.irfft(u_hat, n=self.grid.shape[0]).abs().amax(-1)

    def nonlinear(self, u_hat: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """``-(u^2/2)_x`` in Fourier space, 2/3-dealiased; records the stage's ``max |u|``."""
        n = self.grid.shape[0]
        u = torch.fft.irfft(u_hat * self._mask, n=n)
        speed = u.abs().amax(-1)
        self.record(speed)
        return self._ik_half * torch.fft.rfft(u * u)


class Burgers(PeriodicProblem[BurgersConfig]):
    """Viscous Burgers ``u_t + (u^2/2)_x = nu u_xx`` on the periodic unit interval.

    The FNO 1-D benchmark (Li et al. 2021, sec. 5.1): a Gaussian random
    initial condition ``u0`` mapped to the trajectory ``u(t_i)``, solved
    pseudo-spectrally with the 2/3 rule and the configured integrator.

    Examples
    --------
    >>> from pdeforge.problems import Burgers, BurgersConfig
    >>> problem = Burgers(BurgersConfig(resolution=64, n_times=2))
    >>> problem.field_shapes()
    {'u0': (64,), 'u': (2, 64)}
    """

    name = "burgers"
    stored_params = ("nu",)
    summary = "1-D viscous Burgers on the periodic unit interval (FNO benchmark)"
    equation = "u_t + (u^2/2)_x = nu u_xx on the periodic interval (0,1), u(0) = u0"
    Config = BurgersConfig
    inputs = (FieldSpec("u0", ("x",)),)
    outputs = (FieldSpec("u", ("t", "x")),)
    spatial_dims = 1

    def integrate(self, u0: torch.Tensor, method: Integrator):
        """Solve Burgers from ``u0`` with ``method``; the step keeps the CFL target (``max |u|`` never grows)."""
        c, fine = self.config, self.fine_grid
        equation = BurgersEquation(fine, c.nu, device=self.device)
        # max|u| never grows (maximum principle), so the CFL target holds within each interval.
        u_hat, steps = method(equation, torch.fft.rfft(u0), output_times(c), step_size_rule(c, fine, equation.speed))
        return torch.fft.irfft(u_hat, n=fine.shape[0]), steps, equation
