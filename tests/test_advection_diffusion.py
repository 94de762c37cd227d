"""Advection-diffusion in 1-D and 3-D against its exact Fourier solution and its invariants."""


import pytest
import torch
from pydantic import ValidationError

from helpers import one_line_error
from pdeforge.grids import Grid
from pdeforge.problems import (
    PROBLEMS,
    AdvectionDiffusion,
    AdvectionDiffusion3D,
    AdvectionDiffusion3DConfig,
    AdvectionDiffusionConfig,
)
from pdeforge.problems.advection_diffusion import AdvectionDiffusionEquation, advection_diffusion_symbol
from pdeforge.problems.gallery import FourierAdvectionDiffusion
from pdeforge.solvers import INTEGRATORS, integrate, method_for
from test_cli import invoke

CASES = [
    (AdvectionDiffusion, AdvectionDiffusionConfig(resolution=32, solver_resolution=64, n_times=4)),
    (AdvectionDiffusion3D, AdvectionDiffusion3DConfig(resolution=8, solver_resolution=16, n_times=2,
                                                      velocity=(1.0, -0.5, 2.0), length=2.0)),
]


def _solve(cls, cfg, seed=0, n=2):
    problem = cls(cfg)
    inputs = problem.sample_inputs(seed, range(n))
    return problem, inputs, problem.solve(inputs, method_for(problem))


@pytest.mark.parametrize("cls, cfg", CASES)
def test_etdrk4_reproduces_the_exact_fourier_solution_to_rounding(cls, cfg):
    problem, inputs, solution = _solve(cls, cfg)
    assert bool(solution.converged.all()), solution.reasons
    exact = FourierAdvectionDiffusion(cfg.velocity_vector, cfg.nu)
    scale = float(inputs["u0"].abs().max())
    for i, t in enumerate(problem.coords()["t"]):
        fine = exact.evolve(inputs["u0"], problem.fine_grid, float(t))
        stored = fine[(slice(None),) + (slice(None, None, 2),) * problem.spatial_dims]
        error = float((solution.outputs["u"][:, i] - stored).abs().max()) / scale
        assert error < 1e-12, (t, error)


def test_the_fourier_solution_is_the_closed_form_plane_wave():
    grid = Grid((8, 6, 10), (1.0, 2.0, 0.5))
    exact = FourierAdvectionDiffusion((0.3, -1.0, 0.7), 0.05)
    mode = (1, -2, 3)
    u = exact.evolve(exact.plane_wave(grid, 0.0, mode)[None], grid, 0.8)[0]
    torch.testing.assert_close(u, exact.plane_wave(grid, 0.8, mode), atol=1e-13, rtol=0)


def _plane_wave_error(method, dt, t_final=1.0):
    grid = Grid((16,))
    exact = FourierAdvectionDiffusion((1.0,), 0.02)
    equation = AdvectionDiffusionEquation(grid, exact.velocity, exact.diffusivity)
    u0 = torch.fft.rfft(exact.plane_wave(grid, 0.0, (2,)))[None]
    u_hat, _ = integrate(method, equation, u0, [t_final], dt)
    u = torch.fft.irfft(u_hat[0, -1], n=16)
    return float((u - exact.plane_wave(grid, t_final, (2,))).abs().max())


# The IMEX schemes' declared orders on this exact solution: tests/test_problem_table.py (its plane-wave rows).


def test_etdrk4_is_exact_at_any_step_because_the_equation_is_its_linear_part():
    method = INTEGRATORS["etdrk4"].run
    assert max(_plane_wave_error(method, dt) for dt in (1.0, 0.3, 0.01)) < 1e-13


@pytest.mark.parametrize("integrator", sorted(INTEGRATORS))
@pytest.mark.parametrize("cls, cfg", CASES)
def test_mass_is_conserved_and_the_l2_norm_never_grows(cls, cfg, integrator):
    cfg = cfg.model_copy(update={"ic_zero_mean": False, "integrator": integrator})
    problem, inputs, solution = _solve(cls, cfg, seed=4)
    assert bool(solution.converged.all()), solution.reasons
    dims = tuple(range(-problem.spatial_dims, 0))
    # The stored grid subsamples the fine one, so the invariants are checked on the solver's own grid.
    u0 = inputs["u0"]
    fine = problem.integrate(u0, method_for(problem))[0]
    mean0 = u0.mean(dims)
    assert float(mean0.abs().min()) > 1e-3  # a non-trivial mean to conserve
    torch.testing.assert_close(fine.mean(dims), mean0[:, None].expand(-1, cfg.n_times), atol=1e-13, rtol=0)
    norms = torch.cat([u0.square().sum(dims).sqrt()[:, None], fine.square().sum(dims).sqrt()], dim=1)
    assert bool((norms[:, 1:] <= norms[:, :-1] * (1 + 1e-13)).all()), norms
    assert bool((norms[:, -1] < norms[:, 0] * 0.999).all())  # diffusion has dissipated something


@pytest.mark.parametrize("cls, cfg, periods", [
    (AdvectionDiffusion, AdvectionDiffusionConfig(resolution=32, nu=0.0, velocity=3.0), (3,)),
    (AdvectionDiffusion3D, AdvectionDiffusion3DConfig(resolution=8, nu=0.0, velocity=(2.0, -1.0, 4.0), length=0.5),
     (4, -2, 8)),
])
def test_pure_advection_by_whole_periods_returns_the_initial_condition(cls, cfg, periods):
    cfg = cfg.model_copy(update={"n_times": 1, "t_final": 1.0})
    problem, inputs, solution = _solve(cls, cfg)
    assert [c * cfg.t_final / cfg.length for c in cfg.velocity_vector] == list(periods)
    assert bool(solution.converged.all()), solution.reasons
    torch.testing.assert_close(solution.outputs["u"][:, -1], inputs["u0"], atol=1e-12, rtol=0)
    # Half a period (per axis with odd counts) is a genuine shift, not the identity.
    half = cls(cfg.model_copy(update={"t_final": 0.5 / abs(cfg.velocity_vector[0]) * cfg.length}))
    moved = half.solve(inputs, method_for(half)).outputs["u"][:, -1]
    assert float((moved - inputs["u0"]).abs().max()) > 0.1


def test_zero_velocity_is_the_heat_equation():
    cfg = AdvectionDiffusion3DConfig(resolution=8, velocity=(0.0, 0.0, 0.0), nu=0.1, n_times=1, t_final=0.25)
    problem = AdvectionDiffusion3D(cfg)
    assert "heat" in problem.summary
    heat = FourierAdvectionDiffusion((0.0, 0.0, 0.0), 0.1)
    u0 = heat.plane_wave(problem.grid, 0.0, (1, 0, 2))[None].expand(2, -1, -1, -1)
    solution = problem.solve({"u0": u0}, method_for(problem))
    assert int(solution.diagnostics["iterations"].max()) == 1  # no advection: no Courant limit on the step
    torch.testing.assert_close(solution.outputs["u"][:, -1], heat.plane_wave(problem.grid, 0.25, (1, 0, 2))
                               .expand(2, -1, -1, -1), atol=1e-14, rtol=0)


def test_a_trajectory_that_gains_mass_or_energy_is_rejected():
    problem = AdvectionDiffusion(AdvectionDiffusionConfig(resolution=16))
    u0 = torch.sin(2 * torch.pi * torch.arange(16) / 16.0)[None].expand(3, -1).double()
    u = u0[:, None].repeat(1, 2, 1)
    u[1, 1] += 1e-3  # mass gained
    u[2, 1] *= 1.001  # energy gained, mean kept
    checks = problem.sample_checks(u0, u)
    passed = torch.stack(list(checks.values())).all(0)
    assert passed.tolist() == [True, False, False]


@pytest.mark.parametrize("cls, update, fragment", [
    (AdvectionDiffusionConfig, {"nu": -0.1}, "greater than or equal to 0"),
    (AdvectionDiffusionConfig, {"velocity": float("inf")}, "finite"),
    (AdvectionDiffusionConfig, {"length": 0.0}, "greater than 0"),
    (AdvectionDiffusionConfig, {"resolution": 24, "solver_resolution": 60}, "not a multiple"),
    (AdvectionDiffusion3DConfig, {"velocity": (1.0, 2.0)}, "velocity"),
    (AdvectionDiffusion3DConfig, {"velocity": (float("nan"), 0.0, 0.0)}, "finite"),
    (AdvectionDiffusion3DConfig, {"unknown": 1}, "Extra inputs"),
])
def test_bad_parameters_are_rejected_in_one_line(cls, update, fragment):
    with pytest.raises(ValidationError, match=fragment):
        cls(**update)


@pytest.mark.parametrize("value, fragments", [
    ("[Infinity,0,0]", ("'velocity.0'", "finite number")),
    ("[1,0]", ("'velocity.2'", "Field required")),
])
def test_the_command_line_refuses_a_bad_velocity_in_one_line(tmp_path, value, fragments):
    result = invoke("generate", "advection-diffusion-3d", "--n", 1, "--out", tmp_path / "d",
                    "--set", f"velocity={value}")
    one_line_error(result, *fragments)
    assert not (tmp_path / "d").exists()


def test_the_symbol_refuses_a_velocity_of_the_wrong_dimension():
    with pytest.raises(ValueError, match="3 components for a 1-D grid"):
        advection_diffusion_symbol(Grid((8,)), (1.0, 0.0, 0.0), 0.1)


def test_both_problems_are_registered_and_store_their_parameters():
    assert PROBLEMS["advection-diffusion"] is AdvectionDiffusion
    assert PROBLEMS["advection-diffusion-3d"] is AdvectionDiffusion3D
    problem = AdvectionDiffusion3D(AdvectionDiffusion3DConfig(resolution=8, velocity=(0.5, 0.0, -1.0)))
    params = problem.params({"u0": torch.zeros(2, 8, 8, 8)})
    assert {k: v.tolist() for k, v in params.items()} == {
        "nu": [0.01, 0.01], "c_x": [0.5, 0.5], "c_y": [0.0, 0.0], "c_z": [-1.0, -1.0]}
    assert set(problem.coords()) == {"x", "y", "z", "t"}


@pytest.mark.parametrize("velocity", [(0.0, 0.0, 0.0), (1.0, 0.3, -2.0)])
def test_etdrk4_coefficients_on_distinct_values_equal_the_direct_evaluation(velocity):
    """Deduplicated and batched (more distinct values than one batch holds), bitwise the mode-by-mode values."""
    from pdeforge.solvers.timestepping import _etd

    grid = Grid((32, 24, 20), (1.0, 2.0, 3.0))
    hl = 0.01 * advection_diffusion_symbol(grid, velocity, 0.05) * torch.tensor([1.0, 0.5])[:, None, None, None]
    got = _etd._phi_coefficients(hl)
    arange = torch.arange(1, 65, dtype=torch.float64)
    roots = torch.exp(1j * (2 if hl.is_complex() else 1) * torch.pi * (arange - 0.5) / 64)
    direct = _etd._contour_means(hl.reshape(-1), roots.to(torch.complex128))
    distinct = torch.unique(torch.view_as_real(hl).reshape(-1, 2) if hl.is_complex() else hl.reshape(-1), dim=0)
    assert (len(distinct) > _etd._CHUNK) == any(velocity)
    for mine, reference in zip(got, direct, strict=True):
        reference = reference.reshape(hl.shape)
        assert torch.equal(mine, reference if hl.is_complex() else reference.real)
