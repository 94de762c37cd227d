"""The Gray-Scott reaction-diffusion system on a periodic square (Pearson 1993).

    u_t = Du Lap u - u v^2 + F (1 - u),
    v_t = Dv Lap v + u v^2 - (F + k) v,

on the periodic square of side ``length`` (Pearson's 2.5, with ``Du = 2e-5``
and ``Dv = 1e-5``). The state is one field with a species axis,
``[batch, 2, N, N]`` (``u`` then ``v``); diffusion is the diagonal linear
part (one row per species), the reaction the explicit part. Named presets
are (F, k) pairs of Pearson's pattern classes (Pearson 1993, Science
261:189, fig. 3, as classified by R. Munafo's xmorphia pages), see
docs/conventions.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import Field

from pdeforge.grids import Grid
from pdeforge.problems._base import FieldSpec, Integrator
from pdeforge.problems._reaction import RateMonitor, rate_step_rule
from pdeforge.problems._spectral_common import PeriodicProblem, TimeDependentConfig, output_times
from pdeforge.spectral import dealias_mask

__all__ = ["GrayScott", "GrayScottConfig", "GrayScottEquation", "pearson_patches", "reaction_rate"]


class GrayScottConfig(TimeDependentConfig):
    """Gray-Scott parameters; defaults are Pearson's (1993) domain and diffusivities, class gamma.

    ``nu`` and the ``ic_scale``/``ic_tau``/``ic_alpha``/``ic_zero_mean`` fields
    of the base are not used: the initial state is Pearson-like (``ic_patches`` etc.).
    """

    PRESETS = {
        "gamma": {"feed": 0.022, "kill": 0.051},
        "theta": {"feed": 0.046, "kill": 0.061},
        "mu": {"feed": 0.050, "kill": 0.065},
    }

    resolution: int = Field(default=128, ge=4, description="grid points per axis of the stored fields")
    length: float = Field(default=2.5, gt=0, description="period of the square domain (Pearson: 2.5)")
    diffusivity_u: float = Field(default=2e-5, gt=0, description="Du, diffusivity of u (Pearson: 2e-5)")
    diffusivity_v: float = Field(default=1e-5, gt=0, description="Dv, diffusivity of v (Pearson: 1e-5)")
    feed: float = Field(default=0.022, ge=0, le=1, description="feed rate F")
    kill: float = Field(default=0.051, ge=0, le=1, description="kill rate k")
    t_final: float = Field(default=2000.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=10, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    ic_patches: int = Field(default=4, ge=0, le=64,
                            description="number of square patches with (u, v) = (1/2, 1/4) in the initial state")
    ic_patch_size: float = Field(default=0.2, gt=0,
                                 description="side of a patch (Pearson: 20 of 256 cells of 2.5, 0.195)")
    ic_edge: float = Field(default=0.01, gt=0, description="width of a patch's smoothed (tanh) edge")
    ic_noise: float = Field(default=0.01, ge=0, lt=1,
                            description="relative amplitude of the uniform noise on u and v (Pearson: 1%)")


def reaction_rate(state: torch.Tensor, feed: float, kill: float) -> torch.Tensor:
    """Per sample, the largest row sum of ``|dR/d(u, v)|`` over the grid (an inverse time).

    ``state`` is ``[batch, 2, *grid]`` in physical space.
    """
    u, v = state[:, 0], state[:, 1]
    uv2 = (2 * u * v).abs()
    row_u = (v * v + feed).abs() + uv2
    row_v = v * v + (2 * u * v - feed - kill).abs()
    return torch.maximum(row_u, row_v).flatten(1).amax(-1)


class GrayScottEquation(RateMonitor):
    """Gray-Scott in Fourier space (rfft2 layout per species): ``L = -diag(Du, Dv) |k|^2``.

    ``N(u, v) = (-u v^2 + F (1 - u), u v^2 - (F + k) v)``, evaluated on the
    2/3-truncated state and truncated again; records ``rate * h`` per stage.
    """

    def __init__(self, grid: Grid, du: float, dv: float, feed: float, kill: float, *, device=None) -> None:
        super().__init__(grid)
        self.grid, self.feed, self.kill = grid, feed, kill
        k2 = grid.wavenumber_squared(device=device)
        self.linear = torch.stack([-du * k2, -dv * k2])
        self._mask = dealias_mask(grid, device=device)

    def physical(self, state_hat: torch.Tensor) -> torch.Tensor:
        """``[batch, 2, *grid]`` values of the spectral state."""
        return torch.fft.irfft2(state_hat, s=self.grid.shape)

    def rate(self, state_hat: torch.Tensor) -> torch.Tensor:
        """The reaction rate of every sample (see :func:`reaction_rate`)."""
        return reaction_rate(self.physical(state_hat), self.feed, self.kill)

    def nonlinear(self, state_hat: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """The reaction in Fourier space; records the stage's rate."""
        state = self.physical(state_hat * self._mask)
        self.record(reaction_rate(state, self.feed, self.kill))
        u, v = state[:, 0], state[:, 1]
        uvv = u * v * v
        reaction = torch.stack([-uvv + self.feed * (1 - u), uvv - (self.feed + self.kill) * v], dim=1)
        return torch.fft.rfft2(reaction) * self._mask


def pearson_patches(grid: Grid, rng: np.random.Generator, *, patches: int, size: float, edge: float,
                    noise: float) -> torch.Tensor:
    """A Pearson-like initial state ``[2, *grid]``: ``(u, v) = (1, 0)`` with square ``(1/2, 1/4)`` patches.

    Pearson (1993) set one central square of 20 x 20 cells to ``(1/2, 1/4)``
    and perturbed the system with 1% random noise. Here ``patches`` squares
    of side ``size`` sit at uniform random centres (periodic, overlaps merge)
    with ``tanh`` edges of width ``edge``, and every value is multiplied by
    ``1 + noise * xi`` with ``xi`` uniform in ``[-1, 1]``, then clipped to
    ``[0, 1]``. Draws ``2 * patches + 2 * grid.size`` numbers from ``rng``.
    """
    x, y = grid.mesh()
    centres = rng.uniform(0.0, 1.0, size=(patches, 2)) * np.asarray(grid.extent)
    xi = torch.as_tensor(rng.uniform(-1.0, 1.0, size=(2, *grid.shape)), dtype=torch.float64)
    mask = torch.zeros(grid.shape, dtype=torch.float64)
    for cx, cy in centres:
        inside = torch.ones_like(x)
        for coord, centre, length in ((x, cx, grid.extent[0]), (y, cy, grid.extent[1])):
            d = torch.remainder(coord - centre + length / 2, length) - length / 2
            inside = inside * 0.5 * (1 + torch.tanh((size / 2 - d.abs()) / edge))
        mask = torch.maximum(mask, inside)
    state = torch.stack([1 - 0.5 * mask, 0.25 * mask])
    return (state * (1 + noise * xi)).clamp(0.0, 1.0)


class GrayScott(PeriodicProblem[GrayScottConfig]):
    """Gray-Scott ``u_t = Du Lap u - u v^2 + F(1 - u)``, ``v_t = Dv Lap v + u v^2 - (F + k) v``.

    A Pearson-like initial state ``uv0`` (species axis ``c``: ``u``, ``v``)
    mapped to the trajectory ``uv(t_i)``, solved pseudo-spectrally on the
    periodic square with the configured integrator (diffusion in the linear
    part, the reaction explicit). Pearson 1993, Science 261:189.

    Examples
    --------
    >>> from pdeforge.problems import GrayScott, GrayScottConfig
    >>> problem = GrayScott(GrayScottConfig(resolution=32, n_times=2, preset="theta"))
    >>> problem.field_shapes(), problem.config.feed
    ({'uv0': (2, 32, 32), 'uv': (2, 2, 32, 32)}, 0.046)
    """

    name = "gray-scott"
    stored_params = ("feed", "kill", "diffusivity_u", "diffusivity_v")
    summary = "2-D Gray-Scott reaction-diffusion, two species (Pearson 1993 patterns)"
    equation = "u_t = Du Lap u - u v^2 + F(1-u), v_t = Dv Lap v + u v^2 - (F+k) v on the periodic square, (u,v)(0)=uv0"
    Config = GrayScottConfig
    inputs = (FieldSpec("uv0", ("c", "x", "y")),)
    outputs = (FieldSpec("uv", ("t", "c", "x", "y")),)
    spatial_dims = 2
    species = ("u", "v")

    def draw_inputs(self, rngs: Sequence[np.random.Generator]) -> dict[str, torch.Tensor]:
        """One Pearson-like initial state per generator, on the solver's grid."""
        c = self.config
        states = [pearson_patches(self.fine_grid, rng, patches=c.ic_patches, size=c.ic_patch_size,
                                  edge=c.ic_edge, noise=c.ic_noise) for rng in rngs]
        return {"uv0": torch.stack(states).to(self.device)}

    def equation_for(self, grid: Grid) -> GrayScottEquation:
        """The configured equation on ``grid``."""
        c = self.config
        return GrayScottEquation(grid, c.diffusivity_u, c.diffusivity_v, c.feed, c.kill, device=self.device)

    def integrate(self, u0: torch.Tensor, method: Integrator):
        """Solve from ``uv0 [batch, 2, *grid]``; the step keeps ``rate * h`` at ``cfl``.

        The rate of a state in ``[0, 1]^2`` is at most ``3 + F``; the floor
        ``F + k`` keeps the step finite when the reaction is dormant.
        """
        c, fine = self.config, self.fine_grid
        equation = self.equation_for(fine)
        rule = rate_step_rule(c, equation, c.feed + c.kill)
        state_hat, steps = method(equation, torch.fft.rfft2(u0), output_times(c), rule)
        return torch.fft.irfft2(state_hat, s=fine.shape), steps, equation

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        """``uv0``: ``(2, N, N)``; ``uv``: ``(n_times, 2, N, N)``."""
        n = self.grid.shape
        return {"uv0": (2, *n), "uv": (self.config.n_times, 2, *n)}

    def describe(self) -> dict:
        """The base metadata plus the species order of the ``c`` axis."""
        return {**super().describe(), "species": list(self.species)}


