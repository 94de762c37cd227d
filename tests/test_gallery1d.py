"""The 1-D periodic problems beyond the table's rows: their known answers, scalings and command line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pdeforge.cli import app
from pdeforge.data import open_dataset
from pdeforge.grids import Grid
from pdeforge.problems import (
    PROBLEMS,
    AllenCahn,
    AllenCahnConfig,
    FisherKPP,
    FisherKPPConfig,
    KdV,
    KdVConfig,
    KuramotoSivashinsky,
    KuramotoSivashinskyConfig,
)
from pdeforge.problems.gallery import LogisticGrowth, TwoSolitonKdV, UniformAllenCahn
from pdeforge.problems.reaction_diffusion import ReactionDiffusionEquation, ginzburg_landau_energy
from pdeforge.solvers import method_for
from pdeforge.solvers.timestepping._etd import _phi_coefficients

SOLITONS = TwoSolitonKdV(k1=1.0, k2=2.0, x1=34.0, x2=31.0)
SOLITON_GRID = Grid((1024,), (70.0,))


def test_the_two_soliton_solution_solves_kdv_and_carries_its_exact_invariants():
    grid, (k,) = SOLITON_GRID, SOLITON_GRID.wavenumbers()
    dx = grid.spacing[0]
    for t in (0.0, 0.5, 1.0):
        u = SOLITONS.solution(grid, t)
        assert SOLITONS.tail(grid, t) < 1e-13  # periodic wrap-around below round-off
        assert float(u.sum() * dx) == pytest.approx(SOLITONS.mass(), rel=1e-13)
        assert float((u * u).sum() * dx) == pytest.approx(SOLITONS.momentum(), rel=1e-13)
    # u_t + 6 u u_x + u_xxx = 0: space spectrally, time by a fourth-order central difference.
    t, e = 0.5, 1e-3
    u_hat = torch.fft.rfft(SOLITONS.solution(grid, t))
    u = torch.fft.irfft(u_hat, n=1024)
    u_x = torch.fft.irfft(1j * k * u_hat, n=1024)
    u_xxx = torch.fft.irfft((1j * k) ** 3 * u_hat, n=1024)
    f = [SOLITONS.solution(grid, t + s * e) for s in (-2, -1, 1, 2)]
    u_t = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * e)
    residual = u_t + 6 * u * u_x + u_xxx
    assert float(residual.abs().max()) < 1e-7 * float(u_t.abs().max())


def test_the_solitons_leave_the_collision_with_their_heights_speeds_and_phase_shifts():
    """Well before and well after the collision: two sech^2 solitons of heights k^2 / 2 moving at k^2;
    the collision moves the fast one forward by -log(A) / k2 and the slow one back by -log(A) / k1
    (Drazin & Johnson, sec. 5.2)."""
    line = Grid((2**16,), (400.0,))
    (x,) = line.coordinates()
    pair = TwoSolitonKdV(k1=1.0, k2=2.0, x1=200.0, x2=197.0)
    shift = -2 * math.log((pair.k2 - pair.k1) / (pair.k1 + pair.k2))  # -log(A) > 0
    expected = {  # (time, k): centre
        (-20.0, pair.k1): pair.x1 - 20.0 * pair.k1**2 + shift / pair.k1,
        (-20.0, pair.k2): pair.x2 - 20.0 * pair.k2**2,
        (20.0, pair.k1): pair.x1 + 20.0 * pair.k1**2,
        (20.0, pair.k2): pair.x2 + 20.0 * pair.k2**2 + shift / pair.k2,
    }
    for (t, k), centre in expected.items():
        u = pair.solution(line, t)
        near = (x > centre - 10) & (x < centre + 10)
        peak = int(torch.argmax(torch.where(near, u, 0.0)))
        assert float(u[peak]) == pytest.approx(k * k / 2, rel=1e-5)  # the nearest node is within dx / 2
        assert abs(float(x[peak]) - centre) <= line.spacing[0]


def test_kdv_reproduces_the_two_soliton_collision_through_its_pipeline():
    problem = KdV(KdVConfig(resolution=512, solver_resolution=1024, length=70.0, t_final=1.0, n_times=4,
                            dt=2.5e-4, cfl_limit=2.0))
    u0 = SOLITONS.solution(SOLITON_GRID, 0.0)[None].expand(2, -1)
    solution = problem.solve({"u0": u0}, method_for(problem))
    assert bool(solution.converged.all()), solution.reasons
    for i, t in enumerate((0.25, 0.5, 0.75, 1.0)):
        error = (solution.outputs["u"][0, i] - SOLITONS.solution(problem.grid, t)).abs().max()
        assert float(error) < 1e-9, (t, float(error))


def test_etdrk4_coefficients_are_right_for_dispersive_complex_symbols():
    """Against the closed forms where they do not cancel (|z| >= 2), on and off the imaginary axis."""
    z = torch.tensor([2j, -3j, 40j, -2 + 5j, -4.0 + 0j], dtype=torch.complex128)
    q, f1, f2, f3 = _phi_coefficients(z)
    ez = torch.exp(z)
    torch.testing.assert_close(q, (torch.exp(z / 2) - 1) / z, rtol=1e-12, atol=0)
    torch.testing.assert_close(f1, (-4 - z + ez * (4 - 3 * z + z * z)) / z**3, rtol=1e-12, atol=0)
    torch.testing.assert_close(f2, (2 + z + ez * (z - 2)) / z**3, rtol=1e-12, atol=0)
    torch.testing.assert_close(f3, (-4 - 3 * z - z * z + ez * (4 - z)) / z**3, rtol=1e-12, atol=0)
    small = _phi_coefficients(torch.tensor([1e-9j], dtype=torch.complex128))
    torch.testing.assert_close(torch.stack(small).squeeze(-1),
                               torch.tensor([0.5, 1 / 6, 1 / 6, 1 / 6], dtype=torch.complex128), rtol=0, atol=1e-8)


def test_kuramoto_sivashinsky_nu_only_rescales_space_time_and_amplitude():
    """u with nu on length L equals w(y, s) = sqrt(nu) u(sqrt(nu) y, nu s) with nu = 1 on L / sqrt(nu)."""
    nu, length, n = 4.0, 60.0, 64
    scaled = KuramotoSivashinsky(KuramotoSivashinskyConfig(resolution=n, length=length, nu=nu, t_final=8.0,
                                                           n_times=2, dt=0.02))
    unit = KuramotoSivashinsky(KuramotoSivashinskyConfig(resolution=n, length=length / math.sqrt(nu), t_final=2.0,
                                                         n_times=2, dt=0.005))
    u0 = scaled.sample_inputs(0, range(2))["u0"]
    u = scaled.solve({"u0": u0}, method_for(scaled)).outputs["u"]
    w = unit.solve({"u0": math.sqrt(nu) * u0}, method_for(unit)).outputs["u"]
    torch.testing.assert_close(w, math.sqrt(nu) * u, rtol=0, atol=1e-10)


def test_the_kassam_trefethen_preset_reaches_the_chaotic_attractor_from_their_initial_condition():
    """Their u0 = cos(x/16)(1 + sin(x/16)) on 32 pi; by t = 100 the pattern has |u| near 3 and many cells."""
    problem = KuramotoSivashinsky(KuramotoSivashinskyConfig(preset="kassam-trefethen", t_final=100.0, n_times=2))
    assert problem.grid.extent == (32 * math.pi,) and problem.config.dt == 0.25
    (x,) = problem.fine_grid.coordinates()
    u0 = (torch.cos(x / 16) * (1 + torch.sin(x / 16)))[None].expand(2, -1)
    solution = problem.solve({"u0": u0}, method_for(problem))
    assert bool(solution.converged.all())
    u = solution.outputs["u"][0, -1]
    assert 2.0 < float(u.abs().max()) < 4.0
    crossings = int(((u[1:] > 0) != (u[:-1] > 0)).sum())
    assert crossings >= 10  # about L / (2 pi sqrt 2) = 11 cells of the most unstable wavelength
    assert abs(float(u.mean())) < 1e-13  # the zero mean of u0 is kept


@pytest.mark.parametrize("cls, config, exact", [
    (AllenCahn, AllenCahnConfig(resolution=16, t_final=3.0, n_times=3, dt=1e-3), UniformAllenCahn(-0.4)),
    (FisherKPP, FisherKPPConfig(resolution=16, rate=3.0, t_final=2.0, n_times=4, dt=1e-3), LogisticGrowth(3.0, 0.05)),
])
def test_a_uniform_state_follows_its_reaction_ode_in_closed_form(cls, config, exact):
    problem = cls(config)
    u0 = exact.solution(problem.fine_grid, 0.0)[None].expand(2, -1)
    solution = problem.solve({"u0": u0}, method_for(problem))
    times = np.linspace(0, config.t_final, config.n_times + 1)[1:]
    for i, t in enumerate(times):
        got = solution.outputs["u"][:, i]
        torch.testing.assert_close(got, exact.solution(problem.grid, float(t)).expand_as(got), rtol=0, atol=1e-12)


def test_the_reaction_diffusion_equation_is_dimension_generic():
    """On a 2-D grid the same class diffuses a Fourier mode at rate D |k|^2 when R = 0."""
    from pdeforge.problems.reaction_diffusion import PolynomialReaction
    from pdeforge.solvers import INTEGRATORS, integrate

    grid = Grid((16, 16), (2 * math.pi, 2 * math.pi))
    eq = ReactionDiffusionEquation(grid, 0.3, PolynomialReaction((0.0,)))
    x, y = grid.mesh()
    u0 = torch.sin(2 * x) * torch.cos(3 * y)
    u_hat, _ = integrate(INTEGRATORS["etdrk4"].run, eq, torch.fft.rfft2(u0)[None].expand(2, -1, -1), [1.0], 0.1)
    u = torch.fft.irfft2(u_hat[0, -1], s=grid.shape)
    torch.testing.assert_close(u, u0 * math.exp(-0.3 * 13), rtol=0, atol=1e-14)


def test_the_ginzburg_landau_energy_of_a_kink_is_its_surface_tension():
    """A resolved tanh kink pair on a long interval has energy 2 * (2 sqrt 2 / 3) eps."""
    eps, length = 0.5, 40.0
    grid = Grid((1024,), (length,))
    (x,) = grid.coordinates()
    u = torch.tanh((x - 10) / (math.sqrt(2) * eps)) * torch.tanh((30 - x) / (math.sqrt(2) * eps))
    energy = float(ginzburg_landau_energy(u, grid, eps))
    assert energy == pytest.approx(2 * 2 * math.sqrt(2) / 3 * eps, rel=1e-10)


def test_a_too_large_fixed_step_is_rejected_with_its_reason():
    problem = KdV(KdVConfig(resolution=64, dt=0.5, t_final=1.0, n_times=1))
    solution = problem.solve(problem.sample_inputs(0, range(2)), method_for(problem))
    assert not bool(solution.converged.any())
    assert all("cfl_limit" in why for why in solution.reasons)


@pytest.mark.parametrize("name", ["kuramoto-sivashinsky", "kdv", "allen-cahn", "fisher-kpp"])
def test_a_new_problem_generates_from_the_command_line(name, tmp_path):
    out = tmp_path / name
    result = CliRunner().invoke(app, ["generate", name, "--out", str(out), "--n", "4", "--resolution", "32",
                                      "--set", "n_times=3", "--set", "t_final=0.3", "--shard-size", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["problem"] == name and manifest["config"]["resolution"] == 32
    inputs, outputs = open_dataset(out).read(0, 4)
    assert inputs["u0"].shape == (4, 32) and outputs["u"].shape == (4, 3, 32)
    assert np.isfinite(outputs["u"]).all()


def test_the_problem_listing_names_the_new_problems_and_their_parameters():
    result = CliRunner().invoke(app, ["problems"])
    assert result.exit_code == 0
    for word in ("kuramoto-sivashinsky", "kdv", "allen-cahn", "fisher-kpp", "hyper_diffusivity", "eps", "rate",
                 "kassam-trefethen"):
        assert word in result.output, word
    assert {"kuramoto-sivashinsky", "kdv", "allen-cahn", "fisher-kpp"} <= set(PROBLEMS)
