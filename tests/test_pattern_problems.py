"""Gray-Scott and Swift-Hohenberg against known answers beyond the table (tests/test_problem_table.py).

The reaction ODE at a small step, the invariant bounds, the initial state, exact linear growth, a
Lyapunov functional of a stripe, generation from the command line.
"""

import math

import pytest
import torch

from pdeforge.grids import Grid
from pdeforge.problems import GrayScott, GrayScottConfig, SwiftHohenberg, SwiftHohenbergConfig
from pdeforge.problems.gallery import SwiftHohenbergMode, UniformGrayScott
from pdeforge.problems.gray_scott import GrayScottEquation
from pdeforge.problems.swift_hohenberg import lyapunov_functional
from pdeforge.solvers import INTEGRATORS, integrate, method_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ETDRK4 = INTEGRATORS["etdrk4"].run
ODE = UniformGrayScott(feed=0.022, kill=0.051, u0=0.5, v0=0.25)
ODE_TIMES = [20.0, 40.0, 80.0]


def _uniform_gray_scott(dt: float) -> torch.Tensor:
    """``[len(ODE_TIMES), 2]`` of the uniform state integrated as a PDE on an 8^2 grid."""
    grid = Grid((8, 8), (2.5, 2.5))
    equation = GrayScottEquation(grid, 2e-5, 1e-5, ODE.feed, ODE.kill)
    state = torch.tensor([ODE.u0, ODE.v0], dtype=torch.float64)[:, None, None].expand(2, 8, 8)
    out, _ = integrate(ETDRK4, equation, torch.fft.rfft2(torch.stack([state, state])), ODE_TIMES, dt)
    fields = torch.fft.irfft2(out[0], s=grid.shape)
    assert float((fields - fields[..., :1, :1]).abs().max()) < 1e-14  # the state stays uniform
    return fields[..., 0, 0]


def test_a_uniform_gray_scott_state_follows_the_reaction_ode():
    reference = ODE.solution(ODE_TIMES)
    assert float(reference[:, 1].min()) > 0.02  # a non-trivial transient, not the trivial state (1, 0)
    torch.testing.assert_close(_uniform_gray_scott(0.05), reference, atol=1e-10, rtol=0)


def _gray_scott_problem(**overrides) -> GrayScott:
    # Half Pearson's domain at 64 points: the grid spacing of the default 2.5 at 128.
    values = {"resolution": 64, "length": 1.25, "preset": "theta", "t_final": 200.0, "n_times": 1, "ic_patches": 2}
    return GrayScott(GrayScottConfig(**{**values, **overrides}))


def test_gray_scott_concentrations_stay_within_the_invariant_bounds():
    """0 <= u <= 1 and v >= 0 hold for the PDE (maximum principle per species, with the other
    species frozen as a coefficient); the spectral solution keeps them to its resolution error."""
    problem = _gray_scott_problem(t_final=1000.0, n_times=5)
    solution = problem.solve(problem.sample_inputs(0, range(2)), method_for(problem))
    assert bool(solution.converged.all()), solution.reasons
    uv = solution.outputs["uv"]
    u, v = uv[:, :, 0], uv[:, :, 1]
    assert float(v[:, -1].std()) > 0.05  # patterned, not decayed to (1, 0)
    assert -1e-2 < float(u.min()) and float(u.max()) < 1 + 1e-2
    assert -1e-2 < float(v.min()) and float(v.max()) < 1.0
    assert float(solution.diagnostics["cfl"].max()) <= problem.config.cfl_limit


def test_gray_scott_presets_fill_pearson_classes_under_explicit_values():
    assert (GrayScottConfig(preset="mu").feed, GrayScottConfig(preset="mu").kill) == (0.050, 0.065)
    assert GrayScottConfig(preset="mu", kill=0.06).kill == 0.06
    default = GrayScottConfig()
    assert (default.length, default.diffusivity_u, default.diffusivity_v) == (2.5, 2e-5, 1e-5)  # Pearson's


def test_gray_scott_initial_state_is_pearson_like():
    problem = GrayScott(GrayScottConfig(resolution=64, ic_noise=0.0, ic_patches=1))
    uv0 = problem.sample_inputs(3, [0])["uv0"][0]
    u, v = uv0
    # Outside the patch (1, 0), inside (1/2, 1/4), and u + 2 v = 1 on the smoothed edge.
    assert float(u.max()) == pytest.approx(1.0, abs=1e-12) and float(v.min()) == pytest.approx(0.0, abs=1e-12)
    assert float(u.min()) == pytest.approx(0.5, abs=1e-6) and float(v.max()) == pytest.approx(0.25, abs=1e-6)
    torch.testing.assert_close(u + 2 * v, torch.ones_like(u), atol=1e-14, rtol=0)
    covered = float((v > 0.125).double().mean()) * problem.config.length**2
    assert covered == pytest.approx(problem.config.ic_patch_size**2, rel=0.15)


@pytest.mark.parametrize("mode, g", [((8, 0), 0.0), ((6, 6), 0.0), ((4, 3), 1.0), ((12, 5), 0.0), ((1, 2), 0.5)])
def test_swift_hohenberg_small_mode_grows_at_the_linear_rate(mode, g):
    config = SwiftHohenbergConfig(resolution=64, r=0.2, g=g, t_final=10.0, n_times=2)
    problem = SwiftHohenberg(config)
    exact = SwiftHohenbergMode(r=config.r, mode=mode, length=config.length)
    u0 = exact.solution(problem.fine_grid, 0.0)
    solution = problem.solve({"u0": torch.stack([u0, u0])}, method_for(problem))
    basis = exact.solution(problem.grid, 0.0) / exact.amplitude
    for i, t in enumerate((5.0, 10.0)):
        u = solution.outputs["u"][0, i]
        coefficient = float((u * basis).sum() / (basis * basis).sum())  # the mode's amplitude, free of rounding noise
        assert math.log(coefficient / exact.amplitude) / t == pytest.approx(exact.growth_rate, abs=1e-11)
        torch.testing.assert_close(u, exact.solution(problem.grid, t), atol=1e-11 * exact.amplitude, rtol=0)


def test_swift_hohenberg_lyapunov_functional_of_a_stripe():
    grid = Grid((32, 32), (4 * math.pi, 4 * math.pi))
    x, _ = grid.mesh()
    a, r = 0.3, 0.2
    u = a * torch.cos(x)  # (1 + Lap) u = 0 at |k| = 1: only -r u^2/2 + u^4/4 remains
    expected = -r * a * a / 4 + 3 * a**4 / 32
    assert float(lyapunov_functional(u, grid, r, 0.0)) == pytest.approx(expected, rel=1e-12)


def test_gray_scott_generates_from_the_command_line_with_a_preset(tmp_path):
    import json

    import h5py
    from typer.testing import CliRunner

    from pdeforge.cli import app

    out = tmp_path / "gs"
    args = ["generate", "gray-scott", "--out", str(out), "--n", "4", "--resolution", "16",
            "--set", "preset=theta", "--set", "t_final=20", "--set", "n_times=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["feed"] == 0.046 and manifest["config"]["preset"] == "theta"
    shard = sorted(out.glob("*.h5"))[0]
    with h5py.File(shard) as h5:
        assert h5["inputs/uv0"].shape == (4, 2, 16, 16) and h5["outputs/uv"].shape == (4, 2, 2, 16, 16)
    listing = CliRunner().invoke(app, ["problems"])
    assert "gray-scott" in listing.output and "swift-hohenberg" in listing.output
