"""allen-cahn-3d: the 1-D problem's equation on three axes."""

import pytest
import torch

from pdeforge.problems import PROBLEMS, AllenCahn, AllenCahn3D, AllenCahn3DConfig, AllenCahnConfig
from pdeforge.problems.reaction_diffusion import ginzburg_landau_energy
from pdeforge.solvers import method_for


@pytest.mark.parametrize("integrator", ["etdrk4", "ars443"])
def test_a_field_constant_along_y_and_z_evolves_as_the_1d_problem(integrator):
    common = {"resolution": 16, "eps": 0.05, "t_final": 1.0, "n_times": 2, "integrator": integrator}
    line = AllenCahn(AllenCahnConfig(**common))
    cube = AllenCahn3D(AllenCahn3DConfig(**common))
    u0 = line.sample_inputs(5, range(2))["u0"]
    one = line.solve({"u0": u0}, method_for(line))
    three = cube.solve({"u0": u0[:, :, None, None].expand(-1, -1, 16, 16).contiguous()}, method_for(cube))
    assert bool(one.converged.all()) and bool(three.converged.all())
    assert torch.equal(one.diagnostics["iterations"], three.diagnostics["iterations"])  # the same step rule
    u1, u3 = one.outputs["u"], three.outputs["u"]
    assert float((u3 - u1[..., None, None]).abs().max()) < 1e-12
    assert float((u3 - u3[..., :1, :1]).abs().max()) < 1e-12  # still constant along y and z
    # The unit cube's Ginzburg-Landau energy is the interval's (the y-z face has area 1).
    torch.testing.assert_close(ginzburg_landau_energy(u3, cube.grid, 0.05), ginzburg_landau_energy(u1, line.grid, 0.05),
                               atol=1e-12, rtol=0)
    assert float((u1[:, -1] - u0).abs().max()) > 0.05  # it moved


def test_allen_cahn_3d_is_registered_with_3d_fields_and_defaults():
    assert PROBLEMS["allen-cahn-3d"] is AllenCahn3D
    problem = AllenCahn3D()
    assert problem.field_shapes() == {"u0": (32, 32, 32), "u": (4, 32, 32, 32)}
    assert problem.config.eps == 0.08 and problem.grid.ndim == 3
    u0 = AllenCahn3D(AllenCahn3DConfig(resolution=8)).sample_inputs(0, range(3))["u0"]
    assert bool(u0.abs().max() < 1)
