"""Step-size control for periodic problems whose explicit part is a pointwise reaction.

Advection problems bound ``h`` by a Courant number ``speed h / dx``; a
reaction ``N(u)`` without derivatives instead limits ``h`` through its
Jacobian: an explicit stage is stable and accurate while ``h ||dN/du||``
stays of order one. :class:`RateMonitor` records that number for every
stage, and :func:`rate_step_rule` picks the step from it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pdeforge.grids import Grid
from pdeforge.problems._base import StepSize
from pdeforge.problems._spectral_common import CourantMonitor, TimeDependentConfig

__all__ = ["RateMonitor", "rate_step_rule"]


class RateMonitor(CourantMonitor):
    """Running per-sample maximum of ``rate * h`` over every stage evaluated.

    ``rate`` is a stage's largest pointwise Jacobian norm of the reaction
    (an inverse time), so ``rate * h`` plays the part of the Courant number:
    the problem's ``cfl_limit`` bounds it.
    """

    def __init__(self, grid: Grid) -> None:
        super().__init__(grid)

    def record(self, speed: torch.Tensor) -> None:
        """Fold one stage's per-sample reaction rate ``[batch]`` into the running maximum of ``rate * h``."""
        value = speed * self.step if self.step is not None else torch.zeros_like(speed)
        self.courant = value if self.courant is None else torch.maximum(self.courant, value)


def rate_step_rule(config: TimeDependentConfig, rate: Callable[[torch.Tensor], torch.Tensor],
                   floor: float = 0.0) -> float | StepSize:
    """The per-sample time step: ``config.dt`` if set, else ``cfl / max(rate, floor)``.

    ``rate(u_hat)`` is the sample's current reaction rate; ``floor`` bounds
    the rate the sample can reach before the next output time (the step is
    fixed within an output interval). Steps never exceed the interval.
    """
    if config.dt is not None:
        return config.dt
    interval = config.t_final / config.n_times

    def rule(u_hat: torch.Tensor) -> torch.Tensor:
        bound = rate(u_hat).clamp_min(max(floor, 1e-12))
        return (config.cfl / bound).clamp_max(interval)

    return rule
