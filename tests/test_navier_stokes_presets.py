"""The Navier-Stokes presets: decaying turbulence (McWilliams 1984) and Kolmogorov flow (Kochkov et al. 2021)."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit

from pdeforge.problems import NavierStokes, NavierStokesConfig
from pdeforge.problems.gallery import KolmogorovLaminar
from pdeforge.problems.navier_stokes import VorticityEquation, forcing_field, mcwilliams_vorticity
from pdeforge.solvers import method_for
from pdeforge.spectral import rfft_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _energy_and_enstrophy(w: torch.Tensor, problem: NavierStokes) -> tuple[torch.Tensor, torch.Tensor]:
    grid = problem.grid
    k2 = grid.wavenumber_squared()
    power = torch.fft.rfft2(w).abs() ** 2 * rfft_weights(grid) / grid.size**2
    inv = torch.where(k2 > 0, 1 / k2.clamp_min(1e-30), 0.0)
    return (power * inv).sum((-2, -1)) / 2, power.sum((-2, -1)) / 2


def test_decaying_preset_loses_energy_and_enstrophy_monotonically():
    problem = NavierStokes(NavierStokesConfig(preset="decaying", resolution=32, nu=1e-3, t_final=1.0, n_times=10))
    inputs = problem.sample_inputs(0, range(2))
    solution = problem.solve(inputs, method_for(problem))
    assert bool(solution.converged.all()), solution.reasons
    w = torch.cat([inputs["w0"][:, None], solution.outputs["w"]], dim=1)
    energy, enstrophy = _energy_and_enstrophy(w, problem)
    torch.testing.assert_close(energy[:, 0], torch.full((2,), 0.5, dtype=torch.float64), atol=1e-12, rtol=0)
    for quantity in (energy, enstrophy):
        steps = quantity.diff(dim=-1)
        assert float(steps.max()) < 0, steps  # strictly: viscosity acts, the truncated nonlinearity conserves both


def test_mcwilliams_initial_spectrum_has_its_shape_and_peak():
    problem = NavierStokes(NavierStokesConfig(preset="decaying", resolution=64))
    grid = problem.grid
    w = mcwilliams_vorticity(grid, [np.random.default_rng(i) for i in range(24)], peak=6.0, energy=0.5)
    k2 = grid.wavenumber_squared()
    m = (k2.sqrt() / (2 * math.pi)).round().long().expand(w.shape[-2], w.shape[-1] // 2 + 1)
    per_mode = torch.fft.rfft2(w).abs() ** 2 * torch.where(k2 > 0, 1 / k2.clamp_min(1e-30), 0.0)  # k^2 |psi_k|^2
    shells = range(1, 21)
    mean_energy = np.array([float(per_mode[..., m == s].mean()) for s in shells])

    def shape(s, amplitude, peak):
        return np.log(amplitude) - np.log1p((s / peak) ** 4)

    (amplitude, peak), _ = curve_fit(shape, np.array(shells, float), np.log(mean_energy), p0=(mean_energy[0], 4.0))
    assert peak == pytest.approx(6.0, rel=0.05)
    residual = np.log(mean_energy) - shape(np.array(shells, float), amplitude, peak)
    assert np.abs(residual).max() < 0.35  # 24 samples: shells of ~6 s modes each fluctuate by ~1/sqrt(24 * 6 s)


def test_kolmogorov_preset_keeps_the_laminar_flow_steady():
    config = NavierStokesConfig(preset="kolmogorov", resolution=32, t_final=1.0, n_times=2)
    assert config.nu == pytest.approx(1e-3 / (2 * math.pi)) and config.drag == pytest.approx(0.1 * 2 * math.pi)
    problem = NavierStokes(config)
    laminar = KolmogorovLaminar(nu=config.nu, drag=config.drag, amplitude=config.forcing_amplitude,
                                wavenumber=config.kolmogorov_wavenumber).vorticity(problem.fine_grid)
    solution = problem.solve({"w0": torch.stack([laminar, laminar])}, method_for(problem))
    assert bool(solution.converged.all()), solution.reasons
    scale = float(laminar.abs().max())
    for i in range(2):
        error = float((solution.outputs["w"][:, i] - laminar).abs().max())
        assert error < 1e-12 * scale, error


def test_kolmogorov_laminar_flow_is_a_steady_state_of_the_vorticity_equation():
    config = NavierStokesConfig(preset="kolmogorov", resolution=32)
    problem = NavierStokes(config)
    grid = problem.grid
    equation = VorticityEquation(grid, config.nu, forcing_field(config, grid), drag=config.drag)
    laminar = KolmogorovLaminar(config.nu, config.drag, config.forcing_amplitude, config.kolmogorov_wavenumber)
    w = laminar.vorticity(grid)
    w_hat = torch.fft.rfft2(w)[None]
    tendency = equation.linear * w_hat + equation.nonlinear(w_hat, 0.0)
    assert float(tendency.abs().max()) < 1e-10 * float(w_hat.abs().max())


def test_navier_stokes_default_is_unchanged_by_the_new_options():
    default = NavierStokesConfig()
    assert (default.ic_spectrum, default.forcing, default.nu, default.drag) == ("grf", "fno", 1e-3, 0.0)
    problem = NavierStokes(default)
    grf = problem.prior().sample([np.random.default_rng(1)])
    assert torch.equal(problem.draw_inputs([np.random.default_rng(1)])["w0"], grf)
    with pytest.raises(ValueError):
        NavierStokesConfig(ic_spectrum="kraichnan")
    with pytest.raises(ValueError):
        NavierStokesConfig(ic_peak_wavenumber=0.0)
