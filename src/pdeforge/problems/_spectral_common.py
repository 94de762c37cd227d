"""Shared pieces of the pseudo-spectral periodic problems (Burgers, Navier-Stokes)."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field, model_validator

from pdeforge.grids import Grid
from pdeforge.problems._base import ProblemConfig
from pdeforge.spectral import grid_dims

__all__ = ["CourantMonitor", "TimeDependentConfig", "output_times", "periodic_coords", "spectral_tail", "subsample"]


class TimeDependentConfig(ProblemConfig):
    """Fields every periodic time-dependent problem shares."""

    solver_resolution: int | None = Field(None, ge=4, description="grid points per axis of the solve (a multiple of resolution; default: resolution)")
    t_final: float = Field(1.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(1, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    dt: float | None = Field(None, gt=0, description="fixed time step (default: per sample and output interval, from cfl)")
    cfl: float = Field(0.5, gt=0, description="target Courant number of the automatic time step")
    cfl_limit: float = Field(1.0, gt=0, description="largest admissible Courant number seen in any stage; a sample beyond it is rejected")
    integrator: str = Field("etdrk4", pattern="^(etdrk4|ars443|ars222|imex-euler)$", description="time integrator")

    @model_validator(mode="after")
    def _fine_grid_is_a_multiple(self):
        fine = self.solver_resolution or self.resolution
        if fine % self.resolution:
            raise ValueError(f"solver_resolution {fine} is not a multiple of resolution {self.resolution}")
        return self

    @property
    def fine_resolution(self) -> int:
        return self.solver_resolution or self.resolution


def step_size_rule(config: TimeDependentConfig, grid: Grid, speed, growth: float = 0.0):
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
    return [config.t_final * (i + 1) / config.n_times for i in range(config.n_times)]


def subsample(u: torch.Tensor, fine: Grid, coarse: Grid) -> torch.Tensor:
    """Nodal values of a periodic field on a grid whose spacing divides evenly."""
    index = [slice(None)] * (u.ndim - fine.ndim)
    for nf, nc in zip(fine.shape, coarse.shape):
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


def periodic_coords(grid: Grid) -> dict[str, np.ndarray]:
    names = ("x", "y", "z")
    return {names[i]: c.numpy() for i, c in enumerate(grid.coordinates())}


class CourantMonitor:
    """Running per-sample maximum of ``speed * h / dx`` over every stage evaluated."""

    def __init__(self, grid: Grid) -> None:
        self.dx = min(grid.spacing)
        self.step: torch.Tensor | None = None
        self.courant: torch.Tensor | None = None

    def set_step(self, h: torch.Tensor) -> None:
        self.step = h

    def record(self, speed: torch.Tensor) -> None:
        value = speed * self.step / self.dx if self.step is not None else torch.zeros_like(speed)
        self.courant = value if self.courant is None else torch.maximum(self.courant, value)
