"""Shared pieces of the pseudo-spectral periodic problems (Burgers, Navier-Stokes)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar, TypeVar

import numpy as np
import torch
from pydantic import Field, model_validator

from pdeforge._typing import Flags
from pdeforge.grids import Grid
from pdeforge.problems._base import Integrator, Problem, ProblemConfig, Solution, StepSize, check_samples
from pdeforge.spectral import GaussianRandomField, grid_dims

__all__ = ["CourantMonitor", "GaussianStartConfig", "PeriodicProblem", "TimeDependentConfig", "output_times",
           "spectral_tail", "subsample"]


class TimeDependentConfig(ProblemConfig):
    """Fields every periodic time-dependent problem shares."""

    solver_resolution: int | None = Field(
        default=None, ge=4,
        description="grid points per axis of the solve (a multiple of resolution; default: resolution)")
    t_final: float = Field(default=1.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=1, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    dt: float | None = Field(
        default=None, gt=0, description="fixed time step (default: per sample and output interval, from cfl)")
    cfl: float = Field(default=0.5, gt=0, description="target Courant number of the automatic time step")
    cfl_limit: float = Field(
        default=1.0, gt=0,
        description="largest admissible Courant number seen in any stage; a sample beyond it is rejected")
    integrator: str = Field(
        default="etdrk4", min_length=1, description="time integrator (`pdeforge problems` lists them)")
    length: float = Field(default=1.0, gt=0, description="period of the domain along every axis")

    @model_validator(mode="after")
    def _fine_grid_is_a_multiple(self):
        fine = self.solver_resolution or self.resolution
        if fine % self.resolution:
            raise ValueError(f"solver_resolution {fine} is not a multiple of resolution {self.resolution}")
        return self

    @property
    def fine_resolution(self) -> int:
        """Grid points per axis of the solve."""
        return self.solver_resolution or self.resolution


class GaussianStartConfig(TimeDependentConfig):
    """A time-dependent config whose initial condition is drawn from a periodic Gaussian random field.

    The field is ``N(0, ic_scale (-Lap + ic_tau^2)^-ic_alpha)`` on the
    solver's grid (docs/conventions.md, "Random fields").
    """

    ic_scale: float = Field(default=1.0, gt=0, description="initial condition covariance multiplier")
    ic_tau: float = Field(default=5.0, ge=0, description="initial condition inverse length scale")
    ic_alpha: float = Field(default=2.0, gt=0, description="initial condition smoothness exponent")
    ic_zero_mean: bool = Field(default=True,
                               description="drop the initial condition's constant mode (the FNO data's convention)")


def step_size_rule(config: TimeDependentConfig, grid: Grid, speed: Callable[[torch.Tensor], torch.Tensor],
                   growth: float = 0.0) -> float | StepSize:
    """The per-sample time step: ``config.dt`` if set, else ``cfl * dx / speed``.

    ``speed(u_hat)`` is the sample's current ``max |u|``; ``growth`` bounds
    how fast that speed can rise (the forcing's acceleration), so that the
    step stays within the CFL target until the next output time.
    """
    if config.dt is not None:
        return config.dt
    interval = config.t_final / config.n_times
    dx = min(grid.spacing)

    def rule(u_hat: torch.Tensor) -> torch.Tensor:
        bound = speed(u_hat) + growth * interval
        return (config.cfl * dx / bound.clamp_min(1e-12)).clamp_max(interval)

    return rule


def output_times(config: TimeDependentConfig) -> list[float]:
    """The stored snapshot times ``t_final (i + 1) / n_times``, ``i = 0 .. n_times - 1``."""
    return [config.t_final * (i + 1) / config.n_times for i in range(config.n_times)]


def subsample(u: torch.Tensor, fine: Grid, coarse: Grid) -> torch.Tensor:
    """Nodal values of a periodic field on a grid whose spacing divides evenly."""
    index = [slice(None)] * (u.ndim - fine.ndim)
    for nf, nc in zip(fine.shape, coarse.shape, strict=True):
        index.append(slice(None, None, nf // nc))
    return u[tuple(index)]


def spectral_tail(u: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Per sample, sqrt of the energy fraction in the upper half of the dealiased band.

    A resolution diagnostic: it stays tiny while the solution is resolved and
    grows when energy piles up near the truncation.
    """
    dims = grid_dims(grid)
    c = torch.fft.rfftn(u, dim=dims)
    power = c.real**2 + c.imag**2
    kmax = torch.zeros((), device=u.device)
    for axis, n in enumerate(grid.shape):
        last = axis == grid.ndim - 1
        k = (torch.fft.rfftfreq(n, 1.0 / n) if last else torch.fft.fftfreq(n, 1.0 / n)).abs().to(u.device) / n
        view = [1] * grid.ndim
        view[axis] = -1
        kmax = torch.maximum(kmax, k.reshape(view))
    tail = ((kmax >= 1 / 6) & (kmax < 1 / 3)).to(power.dtype)
    total = power.sum(dims).clamp_min(torch.finfo(power.dtype).tiny)
    return ((power * tail).sum(dims) / total).sqrt()


class CourantMonitor:
    """Running per-sample maximum of ``speed * h / dx`` over every stage evaluated."""

    def __init__(self, grid: Grid) -> None:
        self.dx = min(grid.spacing)
        self.step: torch.Tensor | None = None
        self.courant: torch.Tensor | None = None

    def set_step(self, h: torch.Tensor) -> None:
        """Set the current step sizes ``[batch]`` (the driver calls this each output interval)."""
        self.step = h

    def record(self, speed: torch.Tensor) -> None:
        """Fold one stage's per-sample speed ``[batch]`` into the running Courant number."""
        speed = speed.detach()  # a monitor: differentiating through a solver (Spectral-Refiner) keeps no graph here
        value = speed * self.step / self.dx if self.step is not None else torch.zeros_like(speed)
        self.courant = value if self.courant is None else torch.maximum(self.courant, value)


TimeConfigT = TypeVar("TimeConfigT", bound=TimeDependentConfig)
"""The configuration type of a :class:`PeriodicProblem` subclass."""


class PeriodicProblem(Problem[TimeConfigT]):
    """A time-dependent problem on the periodic unit box, solved pseudo-spectrally.

    Draws its initial condition (the single input field) from the config's
    ``ic_*`` Gaussian random field on the solver's grid, stores it and the
    trajectory subsampled to ``resolution``, and checks every sample's
    finiteness and Courant number. Subclasses set ``spatial_dims`` and the
    fields, and implement :meth:`integrate` (equation and step-size rule).
    """

    method_kind = "integrator"
    periodic = True
    spatial_dims: int
    stored_params: ClassVar[tuple[str, ...]] = ()  # config fields stored per sample with the data (`params`)

    @property
    def grid(self) -> Grid:
        """The stored fields' periodic grid (``resolution`` points per axis, period ``length``)."""
        return Grid((self.config.resolution,) * self.spatial_dims, (self.config.length,) * self.spatial_dims)

    @property
    def fine_grid(self) -> Grid:
        """The solver's periodic grid (``solver_resolution`` points per axis, period ``length``)."""
        return Grid((self.config.fine_resolution,) * self.spatial_dims, (self.config.length,) * self.spatial_dims)

    def prior(self) -> GaussianRandomField:
        """The Gaussian random field of initial conditions on the solver's grid.

        Raises
        ------
        TypeError
            For a problem whose config draws no Gaussian initial condition
            (not a :class:`GaussianStartConfig`; it overrides :meth:`draw_inputs`).
        """
        c = self.config
        if not isinstance(c, GaussianStartConfig):
            raise TypeError(f"{self.name} draws no Gaussian random initial condition")
        return GaussianRandomField(self.fine_grid, scale=c.ic_scale, tau=c.ic_tau, alpha=c.ic_alpha,
                                  zero_mean=c.ic_zero_mean, device=self.device)

    def draw_inputs(self, rngs: Sequence[np.random.Generator]) -> dict[str, torch.Tensor]:
        """One initial condition per generator, drawn on the solver's grid."""
        return {self.inputs[0].name: self.prior().sample(rngs)}

    def stored_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The initial condition subsampled to the stored resolution."""
        return {k: subsample(v, self.fine_grid, self.grid) for k, v in inputs.items()}

    @abstractmethod
    def integrate(self, u0: torch.Tensor, method: Integrator) -> tuple[torch.Tensor, torch.Tensor, CourantMonitor]:
        """``(trajectory [batch, T, *fine grid], steps [batch], equation)`` in physical space."""

    def sample_checks(self, u0: torch.Tensor, u: torch.Tensor) -> dict[str, Flags]:
        """Further per-sample checks of the solve on the solver's grid (none by default).

        Parameters
        ----------
        u0
            The initial conditions ``[batch, *fine grid]``.
        u
            The trajectories ``[batch, T, *fine grid]``.

        Returns
        -------
        dict
            The message of a failure to a ``[batch]`` flag that is ``True`` where the sample passes.
        """
        return {}

    def solve(self, inputs: dict[str, torch.Tensor], method: Integrator) -> Solution:
        """Integrate the batch and check every sample (finite values, Courant number, :meth:`sample_checks`)."""
        c, fine = self.config, self.fine_grid
        u, steps, equation = self.integrate(inputs[self.inputs[0].name], method)
        courant = equation.courant
        # Every output interval has positive length (t_final > 0), so the integrator evaluated stages.
        assert courant is not None, "the integrator evaluated no stage"
        converged, reasons = check_samples({
            "non-finite values": torch.isfinite(u).flatten(1).all(-1),
            f"Courant number above cfl_limit {c.cfl_limit}": courant <= c.cfl_limit,
            **self.sample_checks(inputs[self.inputs[0].name], u),
        })
        return Solution(
            outputs={self.outputs[0].name: subsample(u, fine, self.grid)},
            diagnostics={"iterations": steps, "cfl": courant,
                         "spectral_tail": spectral_tail(u, fine).flatten(1).amax(-1)},
            converged=converged,
            reasons=reasons,
        )

    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        """The input's grid shape and the trajectory's ``(n_times, *grid)``."""
        return {self.inputs[0].name: self.grid.shape, self.outputs[0].name: (self.config.n_times, *self.grid.shape)}

    def coords(self) -> dict[str, np.ndarray]:
        """Node coordinates per axis and the snapshot times ``t``."""
        names = ("x", "y", "z")
        axes = {names[i]: c.numpy() for i, c in enumerate(self.grid.coordinates())}
        return {**axes, "t": np.asarray(output_times(self.config))}

    def params(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The config's ``stored_params`` (the equation's coefficients) for every sample."""
        n = next(iter(inputs.values())).shape[0]
        return {name: torch.full((n,), float(getattr(self.config, name)), dtype=torch.float64)
                for name in self.stored_params}
