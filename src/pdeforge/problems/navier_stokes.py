"""2-D incompressible Navier-Stokes in vorticity form on the unit torus (FNO benchmark).

    w_t + u . grad w = nu Lap w - drag w + f,   div u = 0,   w = curl u,

solved pseudo-spectrally with the stream function ``-Lap psi = w``,
``u = (psi_y, -psi_x)``, the nonlinearity in conservative form
``div(u w)`` (so the mean vorticity is conserved exactly) and the 2/3 rule.
Defaults follow Li et al. 2021 (sec. 5.3) as the code that generated its
published data does: ``w0 ~ N(0, 686 (-Lap + 49 I)^-2.5)`` without the
constant mode (the paper prints the multiplier ``7^(3/2)``, which its code
uses as an amplitude, times ``sqrt(2)``: ``686 = 2 (7^(3/2))^2``; the printed
formula is ``ic_scale = 7**1.5``), ``f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``.
Presets ``fno-1e-3``, ``fno-1e-4`` and ``fno-1e-5`` are the paper's three
data sets (viscosity, horizon, one snapshot per unit time, solved at 256^2
and stored at 64^2);
``kolmogorov`` (Kochkov et al. 2021, PNAS 118:e2101784118, mapped to the
unit torus) and ``decaying`` (unforced, McWilliams 1984 initial spectrum),
see docs/conventions.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
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
from pdeforge.spectral import dealias_mask, rfft_weights, sobolev_norm

__all__ = ["NavierStokes", "NavierStokesConfig", "VorticityEquation", "VorticityResidual", "forcing_field",
           "mcwilliams_vorticity"]


FNO_CODE_SCALE = 2 * 7.0**3
"""The covariance multiplier of the FNO data code's initial vorticity, ``2 (7^(3/2))^2 = 686``.

``GaussianRF(2, s, alpha=2.5, tau=7)`` (zongyi-li/fourier_neural_operator,
``data_generation/navier_stokes/random_fields.py``) takes ``sigma = tau^(alpha - d/2)
= 7^(3/2)`` and multiplies real and imaginary unit normals by ``sqrt(2) sigma
(4 pi^2 |k|^2 + tau^2)^(-alpha/2)`` before the real part of an inverse FFT: each
mode's variance is ``2 sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha)``.
"""


class NavierStokesConfig(GaussianStartConfig):
    """Navier-Stokes parameters; defaults follow the FNO paper (sec. 5.3), see docs/conventions.md.

    The initial vorticity's default ``ic_scale = 686`` is the FNO data code's
    amplitude (``GaussianRF(2, s, alpha=2.5, tau=7)``: square-root eigenvalues
    ``sqrt(2) 7^(3/2) (4 pi^2 |k|^2 + 49)^(-5/4)``), about 6x the standard
    deviation of the printed formula ``ic_scale = 7**1.5``; see docs/conventions.md.

    Presets: ``fno-1e-3`` / ``fno-1e-4`` / ``fno-1e-5`` are the FNO paper's
    Navier-Stokes data sets (Table 3: ``nu`` with horizons 50 / 30 / 20, a
    snapshot per unit time, solved at 256^2 and stored at 64^2).
    ``kolmogorov`` is Kochkov et al.'s (2021) Kolmogorov flow on
    ``[0, 2 pi]^2`` (``f = sin(4 y) e_x - 0.1 u``, ``nu = 1e-3``, Re = 1000)
    rescaled to the unit torus with the velocity scale kept: lengths / 2 pi,
    times / 2 pi, so ``nu = 1e-3 / (2 pi)``, drag ``0.2 pi`` and forcing
    amplitude ``2 pi`` at wavenumber 4. ``decaying`` is unforced with the
    McWilliams (1984) initial spectrum of shape parameter k0 = 6.
    """

    PRESETS = {
        "fno-1e-3": {"nu": 1e-3, "t_final": 50.0, "n_times": 50, "resolution": 64, "solver_resolution": 256},
        "fno-1e-4": {"nu": 1e-4, "t_final": 30.0, "n_times": 30, "resolution": 64, "solver_resolution": 256},
        "fno-1e-5": {"nu": 1e-5, "t_final": 20.0, "n_times": 20, "resolution": 64, "solver_resolution": 256},
        "kolmogorov": {"forcing": "kolmogorov", "kolmogorov_wavenumber": 4, "forcing_amplitude": 2 * math.pi,
                       "nu": 1e-3 / (2 * math.pi), "drag": 0.2 * math.pi},
        "decaying": {"forcing": "none", "ic_spectrum": "mcwilliams", "ic_peak_wavenumber": 6.0,
                     "ic_energy": 0.5, "nu": 1e-4, "drag": 0.0},
    }

    resolution: int = Field(default=64, ge=4, description="grid points per axis of the stored fields")
    nu: float = Field(default=1e-3, gt=0, description="viscosity")
    drag: float = Field(default=0.0, ge=0, description="linear drag coefficient")
    forcing: Literal["fno", "kolmogorov", "none"] = Field(default="fno", description="forcing term")
    forcing_amplitude: float = Field(default=0.1, description="forcing amplitude A")
    kolmogorov_wavenumber: int = Field(
        default=4, ge=1, description="n of the Kolmogorov forcing -2 pi n A cos(2 pi n y)")
    ic_spectrum: Literal["grf", "mcwilliams"] = Field(
        default="grf", description="initial vorticity: the ic_* Gaussian random field, or McWilliams' (1984) spectrum")
    ic_peak_wavenumber: float = Field(
        default=6.0, gt=0, description="mcwilliams: peak k0 of the spectrum, in cycles per domain length")
    ic_energy: float = Field(
        default=0.5, gt=0, description="mcwilliams: mean kinetic energy <|u|^2>/2 of every initial field")
    ic_scale: float = Field(
        default=FNO_CODE_SCALE, gt=0,
        description="initial vorticity covariance multiplier (686: the FNO data code; 7**1.5: the paper's formula)")
    ic_tau: float = Field(default=7.0, ge=0, description="initial vorticity inverse length scale")
    ic_alpha: float = Field(default=2.5, gt=0, description="initial vorticity smoothness exponent")
    t_final: float = Field(default=10.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=10, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")


def forcing_field(config: NavierStokesConfig, grid: Grid, *, device=None) -> torch.Tensor:
    """The vorticity forcing ``f(x, y)`` on ``grid``.

    ``kolmogorov`` is the curl of the body force ``(A sin(2 pi n y), 0)``.
    """
    x, y = grid.mesh(device=device)
    a = config.forcing_amplitude
    if config.forcing == "fno":
        return a * (torch.sin(2 * math.pi * (x + y)) + torch.cos(2 * math.pi * (x + y)))
    if config.forcing == "kolmogorov":
        n = config.kolmogorov_wavenumber
        return -2 * math.pi * n * a * torch.cos(2 * math.pi * n * y)
    return torch.zeros_like(x)


def mcwilliams_vorticity(grid: Grid, rngs: Sequence[np.random.Generator], *, peak: float = 6.0,
                         energy: float = 0.5, device=None) -> torch.Tensor:
    """Random vorticity fields ``[len(rngs), *grid]`` with McWilliams' (1984) initial spectrum.

    The stream function has independent Gaussian Fourier coefficients of
    standard deviation ``(m (1 + (m / peak)^4)^(1/2))^-1`` at ``m = |k| L / 2 pi``
    (cycles per domain; zero mean), so the radial energy spectrum is
    ``E(m) ~ n(m) / (1 + (m / peak)^4)`` with ``n(m)`` the number of lattice
    modes of radius ``m``, i.e. ``E ~ m / (1 + (m / peak)^4)``, largest at
    ``m = peak / 3^(1/4)``. Every field is then scaled to mean kinetic energy
    ``<|u|^2> / 2 = energy``. The construction of pyqg's reproduction of
    McWilliams 1984 (pyqg, ``docs/examples/barotropic.ipynb``, which normalises
    ``<|u|^2> = 1``), mapped from the ``2 pi`` box to cycles per domain.
    Each generator draws ``grid.size`` standard normals.
    """
    k2 = grid.wavenumber_squared(device=device)
    m = k2.sqrt() * (grid.extent[0] / (2 * math.pi))
    std = torch.where(m > 0, 1.0 / (m.clamp_min(1e-30) * (1 + (m / peak) ** 4).sqrt()), 0.0)
    noise = torch.as_tensor(np.stack([rng.standard_normal(grid.shape) for rng in rngs]), dtype=torch.float64,
                            device=device)
    psi_hat = std * torch.fft.rfft2(noise)
    weights = rfft_weights(grid, device=device)
    mean_u2 = (k2 * (psi_hat.real**2 + psi_hat.imag**2) * weights).sum((-2, -1)) / grid.size**2
    scale = (2 * energy / mean_u2).sqrt()[:, None, None]
    return torch.fft.irfft2(scale * k2 * psi_hat, s=grid.shape)


class VorticityEquation(CourantMonitor):
    """The vorticity equation in Fourier space (rfft2 layout, axis 0 = x, axis 1 = y).

    ``L = -nu |k|^2 - drag``; ``N(w) = -div(u w) + f``. Records the
    Courant number ``max(|u| + |v|) h / dx`` of every stage, for the CFL check.
    """

    def __init__(self, grid: Grid, nu: float, forcing: torch.Tensor, *, drag: float = 0.0, device=None) -> None:
        kx, ky = grid.wavenumbers(device=device)
        k2 = kx * kx + ky * ky
        super().__init__(grid)
        self.grid = grid
        self.linear = -nu * k2 - drag
        self._mask = dealias_mask(grid, device=device)
        self._inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, 1.0), 0.0)
        self._ikx, self._iky = 1j * kx, 1j * ky
        self._forcing = torch.fft.rfft2(forcing) * self._mask

    def velocity(self, w_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The velocity ``(u, v) = (psi_y, -psi_x)`` with ``-Lap psi = w``, in physical space."""
        psi = w_hat * self._inv_k2
        s = self.grid.shape
        return torch.fft.irfft2(self._iky * psi, s=s), torch.fft.irfft2(-self._ikx * psi, s=s)

    def speed(self, w_hat: torch.Tensor) -> torch.Tensor:
        """``max(|u| + |v|)`` per sample."""
        u, v = self.velocity(w_hat)
        return (u.abs() + v.abs()).amax((-2, -1))

    def forcing_acceleration(self) -> float:
        """A bound on ``|u| + |v|`` gained per unit time from the forcing alone (its velocity's sup norm)."""
        k2 = self.grid.wavenumber_squared(device=self._forcing.device)
        coeff = (self._forcing.abs() / self.grid.size) * rfft_weights(self.grid, device=k2.device)
        return 2.0 * float((coeff * torch.where(k2 > 0, k2.clamp_min(1e-30).rsqrt(), 0.0)).sum())

    def nonlinear(self, w_hat: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """``f - div(u w)`` in Fourier space, 2/3-dealiased; records the stage's speed."""
        w_hat = w_hat * self._mask
        u, v = self.velocity(w_hat)
        w = torch.fft.irfft2(w_hat, s=self.grid.shape)
        speed = (u.abs() + v.abs()).amax((-2, -1))
        self.record(speed)
        flux = self._ikx * torch.fft.rfft2(u * w) + self._iky * torch.fft.rfft2(v * w)
        return self._forcing - flux * self._mask


class NavierStokes(PeriodicProblem[NavierStokesConfig]):
    """2-D incompressible Navier-Stokes in vorticity form on the unit torus.

    ``w_t + u.grad w = nu Lap w - drag w + f``, the FNO benchmark (Li et al.
    2021, sec. 5.3): a random initial vorticity ``w0`` mapped to the
    trajectory ``w(t_i)``, solved pseudo-spectrally with the 2/3 rule.
    """

    name = "navier-stokes"
    stored_params = ("nu",)
    summary = "2-D Navier-Stokes vorticity on the unit torus (FNO benchmark)"
    equation = "w_t + u.grad w = nu Lap w - drag w + f, div u = 0, w = curl u on the torus (0,1)^2, w(0) = w0"
    Config = NavierStokesConfig
    inputs = (FieldSpec("w0", ("x", "y")),)
    outputs = (FieldSpec("w", ("t", "x", "y")),)
    spatial_dims = 2

    def draw_inputs(self, rngs: Sequence[np.random.Generator]) -> dict[str, torch.Tensor]:
        """One initial vorticity per generator: the Gaussian random field or McWilliams' spectrum."""
        c = self.config
        if c.ic_spectrum == "grf":
            return super().draw_inputs(rngs)
        return {"w0": mcwilliams_vorticity(self.fine_grid, rngs, peak=c.ic_peak_wavenumber, energy=c.ic_energy,
                                           device=self.device)}

    def integrate(self, w0: torch.Tensor, method: Integrator):
        """Solve from ``w0`` with ``method``; the step bounds the CFL number including the forcing's push."""
        c, fine = self.config, self.fine_grid
        forcing = forcing_field(c, fine, device=self.device)
        equation = VorticityEquation(fine, c.nu, forcing, drag=c.drag, device=self.device)
        rule = step_size_rule(c, fine, equation.speed, growth=equation.forcing_acceleration())
        w_hat, steps = method(equation, torch.fft.rfft2(w0), output_times(c), rule)
        return torch.fft.irfft2(w_hat, s=fine.shape), steps, equation


class VorticityResidual:
    r"""The residual of a vorticity trajectory sampled every ``interval``, consistent with pdeforge's solver.

    For snapshots ``w_0, w_1, ...`` a time ``interval`` apart,

    .. math::
        R_n = \frac{\Phi(w_n) - w_{n+1}}{\Delta t}
            \approx f - \partial_t w - u \cdot \nabla w + \nu \Delta w - \text{drag}\, w,

    where :math:`\Phi` advances the vorticity equation by ``interval`` with
    ``substeps`` equal steps of the data's time integrator (``scheme``, e.g.
    ETDRK4) on the pseudo-spectral, 2/3-dealiased :class:`VorticityEquation`
    that generates the data. So ``d_t w`` and
    ``u`` come from the solver's own step, a trajectory the solver produced
    on this grid with these steps has a residual at rounding level, and a
    coarse snapshot spacing adds no finite-difference truncation error (a
    difference quotient over one time unit would). The size of the residual
    is its :math:`H^{-1}` norm by Parseval,
    :math:`\|R\|_{H^{-1}}^2 = \sum_k |\hat R_k|^2 / (1 + 4 \pi^2 |k|^2)`
    (:func:`~pdeforge.spectral.sobolev_norm` with ``s = -1``), the loss of
    Cao et al. (ICLR 2025, sec. 4) with their ``alpha = 1``.

    Every operation is differentiable, so the residual can be minimised
    with respect to whatever produced the trajectory.

    Parameters
    ----------
    config
        The problem's parameters (viscosity, drag, forcing).
    grid
        The grid of the snapshots.
    interval
        Time between snapshots.
    substeps
        Integrator steps per interval.
    scheme
        The time integrator: an object with ``stepper(equation, dt)``, as
        the entries of :data:`pdeforge.solvers.INTEGRATORS` hold (the one the
        problem's config names is ``choose_method(problem).run``).
    device
        Where the computation runs.
    """

    def __init__(self, config: NavierStokesConfig, grid: Grid, interval: float, substeps: int, scheme, *,
                 device=None) -> None:
        if substeps < 1 or interval <= 0:
            raise ValueError(f"need substeps >= 1 and interval > 0, got {substeps} and {interval}")
        self.grid, self.interval, self.substeps = grid, float(interval), int(substeps)
        self.equation = VorticityEquation(grid, config.nu, forcing_field(config, grid, device=device),
                                          drag=config.drag, device=device)
        self._step = scheme.stepper(self.equation, self.interval / self.substeps)

    @classmethod
    def for_data(cls, config: NavierStokesConfig, grid: Grid, w: torch.Tensor, scheme, *,
                 device=None) -> VorticityResidual:
        """The residual of stored snapshots ``w [..., *grid]``: the solver's interval and CFL substeps on ``grid``.

        The substeps are the solver's rule (:func:`step_size_rule`) at the
        largest speed found in ``w``, so the step is as fine as the one that
        generated the data would be on this grid.
        """
        interval = config.t_final / config.n_times
        probe = cls(config, grid, interval, 1, scheme, device=device)
        rule = step_size_rule(config, grid, probe.equation.speed, growth=probe.equation.forcing_acceleration())
        flat = w.detach().reshape(-1, *grid.shape).to(torch.float64)
        dt = float(rule(torch.fft.rfft2(flat)).min()) if callable(rule) else float(rule)
        return cls(config, grid, interval, max(1, math.ceil(interval / dt - 1e-9)), scheme, device=device)

    def advance(self, w: torch.Tensor) -> torch.Tensor:
        """``Phi(w)``: the vorticity ``w [..., *grid]`` one interval later."""
        w_hat = torch.fft.rfft2(w.to(torch.float64))
        for i in range(self.substeps):
            w_hat = self._step(w_hat, i * self.interval / self.substeps)
        return torch.fft.irfft2(w_hat, s=self.grid.shape)

    def __call__(self, trajectory: torch.Tensor) -> torch.Tensor:
        """``R [B, T - 1, *grid]`` of a trajectory ``[B, T, *grid]`` (float64)."""
        w = trajectory.to(torch.float64)
        b, t = w.shape[:2]
        ahead = self.advance(w[:, :-1].reshape(b * (t - 1), *self.grid.shape)).reshape(b, t - 1, *self.grid.shape)
        return (ahead - w[:, 1:]) / self.interval

    def h_minus1(self, trajectory: torch.Tensor) -> torch.Tensor:
        """``[B]``: the root mean square over intervals of ``||R_n||_{H^-1}``."""
        r = self(trajectory)
        return sobolev_norm(r, self.grid, -1.0).pow(2).mean(1).sqrt()
