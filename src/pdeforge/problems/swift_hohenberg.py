"""The Swift-Hohenberg equation on a periodic square, critical wavenumber 1.

    u_t = r u - (1 + Lap)^2 u + g u^2 - u^3,

on the periodic square of side ``length`` (a multiple of ``2 pi``, the
critical wavelength, so that stripes of wavenumber 1 fit). The linear part
is diagonal in Fourier space, ``L = r - (1 - |k|^2)^2``, and is integrated
exactly by ETDRK4; ``g u^2 - u^3`` is explicit. Swift & Hohenberg 1977,
Phys. Rev. A 15:319; Cross & Hohenberg 1993, Rev. Mod. Phys. 65:851.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from pdeforge.grids import Grid
from pdeforge.problems._base import FieldSpec, Integrator
from pdeforge.problems._reaction import RateMonitor, rate_step_rule
from pdeforge.problems._spectral_common import GaussianStartConfig, PeriodicProblem, output_times
from pdeforge.spectral import dealias_mask, rfft_weights

__all__ = ["SwiftHohenberg", "SwiftHohenbergConfig", "SwiftHohenbergEquation", "lyapunov_functional"]


class SwiftHohenbergConfig(GaussianStartConfig):
    """Swift-Hohenberg parameters; lengths in units of the critical wavelength over ``2 pi``.

    The initial condition is the base's periodic Gaussian random field
    ``ic_scale (-Lap + ic_tau^2)^-ic_alpha`` (pointwise standard deviation
    about 0.1 for the defaults, see docs/conventions.md).
    """

    resolution: int = Field(default=64, ge=4, description="grid points per axis of the stored fields")
    length: float = Field(default=16 * math.pi, gt=0,
                          description="period of the square domain (default 16 pi: 8 critical wavelengths)")
    r: float = Field(default=0.2, ge=-10, le=10, description="control parameter r (the distance from onset)")
    g: float = Field(default=0.0, ge=-10, le=10, description="quadratic coefficient g (g != 0 favours hexagons)")
    t_final: float = Field(default=50.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=10, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    ic_scale: float = Field(default=0.125, gt=0, description="initial condition covariance multiplier")
    ic_tau: float = Field(default=1.0, ge=0, description="initial condition inverse length scale")
    ic_alpha: float = Field(default=2.0, gt=0, description="initial condition smoothness exponent")


class SwiftHohenbergEquation(RateMonitor):
    """Swift-Hohenberg in Fourier space: ``L = r - (1 - |k|^2)^2``, ``N(u) = g u^2 - u^3`` (2/3-truncated).

    Records ``rate * h`` of every stage, ``rate = max |dN/du| = max |2 g u - 3 u^2|``.
    """

    def __init__(self, grid: Grid, r: float, g: float, *, device=None) -> None:
        super().__init__(grid)
        self.grid, self.r, self.g = grid, r, g
        k2 = grid.wavenumber_squared(device=device)
        self.linear = r - (1 - k2) ** 2
        self._mask = dealias_mask(grid, device=device)

    def rate(self, u_hat: torch.Tensor) -> torch.Tensor:
        """``max |2 g u - 3 u^2|`` per sample."""
        u = torch.fft.irfft2(u_hat, s=self.grid.shape)
        return (2 * self.g * u - 3 * u * u).abs().flatten(1).amax(-1)

    def nonlinear(self, u_hat: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """``g u^2 - u^3`` in Fourier space, on the truncated field; records the stage's rate."""
        u = torch.fft.irfft2(u_hat * self._mask, s=self.grid.shape)
        self.record((2 * self.g * u - 3 * u * u).abs().flatten(1).amax(-1))
        return torch.fft.rfft2(self.g * u * u - u * u * u) * self._mask


def lyapunov_functional(u: torch.Tensor, grid: Grid, r: float, g: float) -> torch.Tensor:
    """``V[u] = (1/|D|) int (-r u^2/2 + ((1 + Lap) u)^2 / 2 - g u^3/3 + u^4/4) dx`` per field.

    The equation is the gradient flow ``u_t = -delta V / delta u`` of ``|D| V``, so
    along solutions ``dV/dt = -(1/|D|) int u_t^2 dx <= 0`` (Cross & Hohenberg 1993). ``u`` is
    ``[..., *grid]``; the quadratic term is evaluated spectrally (Parseval).
    """
    k2 = grid.wavenumber_squared(device=u.device)
    u_hat = torch.fft.rfft2(u)
    weights = rfft_weights(grid, device=u.device)
    gradient_part = (((1 - k2) ** 2 * (u_hat.real**2 + u_hat.imag**2)) * weights).sum((-2, -1)) / grid.size**2
    local = (-r * u * u / 2 - g * u**3 / 3 + u**4 / 4).mean((-2, -1))
    return gradient_part / 2 + local


class SwiftHohenberg(PeriodicProblem[SwiftHohenbergConfig]):
    """Swift-Hohenberg ``u_t = r u - (1 + Lap)^2 u + g u^2 - u^3`` on the periodic square.

    A small Gaussian random initial condition ``u0`` mapped to the trajectory
    ``u(t_i)`` as stripes (or, with ``g`` large enough, hexagons) of
    wavenumber near 1 grow and order. Swift & Hohenberg 1977.

    Examples
    --------
    >>> from pdeforge.problems import SwiftHohenberg, SwiftHohenbergConfig
    >>> problem = SwiftHohenberg(SwiftHohenbergConfig(resolution=32, n_times=2))
    >>> problem.field_shapes()
    {'u0': (32, 32), 'u': (2, 32, 32)}
    """

    name = "swift-hohenberg"
    stored_params = ("r", "g")
    summary = "2-D Swift-Hohenberg pattern formation on the periodic square (critical wavenumber 1)"
    equation = "u_t = r u - (1 + Lap)^2 u + g u^2 - u^3 on the periodic square of side length, u(0) = u0"
    Config = SwiftHohenbergConfig
    inputs = (FieldSpec("u0", ("x", "y")),)
    outputs = (FieldSpec("u", ("t", "x", "y")),)
    spatial_dims = 2

    def integrate(self, u0: torch.Tensor, method: Integrator):
        """Solve from ``u0``; the step keeps ``rate * h`` at ``cfl``.

        The floor ``4 |r| + 2 |g|`` of the rate is the size of ``|dN/du|`` on a
        saturated stripe pattern (amplitude ``sqrt(4 r / 3)`` at ``g = 0``),
        so that a growing pattern stays within the target until the next output.
        """
        c, fine = self.config, self.fine_grid
        equation = SwiftHohenbergEquation(fine, c.r, c.g, device=self.device)
        rule = rate_step_rule(c, equation, 4 * abs(c.r) + 2 * abs(c.g))
        u_hat, steps = method(equation, torch.fft.rfft2(u0), output_times(c), rule)
        return torch.fft.irfft2(u_hat, s=fine.shape), steps, equation
