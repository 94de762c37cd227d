"""Step-size control for periodic problems whose explicit part is a pointwise reaction.

Advection problems bound ``h`` by a Courant number ``speed h / dx``; a
reaction ``N(u)`` without derivatives instead limits ``h`` through its
Jacobian: an explicit stage is stable and accurate while ``h ||dN/du||``
stays of order one. :class:`RateMonitor` records that number for every
stage, and :func:`rate_step_rule` picks the step from it.
"""

from __future__ import annotations

from typing import Protocol

import torch

from pdeforge.grids import Grid
from pdeforge.problems._base import StepSize
from pdeforge.problems._spectral_common import CourantMonitor, TimeDependentConfig

__all__ = ["RateMonitor", "ReactionRate", "rate_step_rule"]


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


class ReactionRate(Protocol):
    """An equation that can tell the reaction rate of a spectral state."""

    def rate(self, u_hat: torch.Tensor, /) -> torch.Tensor:
        """The largest pointwise Jacobian norm of the reaction, per sample ``[batch]``."""
        ...


def rate_step_rule(config: TimeDependentConfig, equation: ReactionRate, bound: float) -> float | StepSize:
    """``config.dt`` if set, else ``cfl / max(rate(u), bound)`` per sample, at most the output interval.

    ``bound`` is the largest rate the reaction reaches on the invariant set
    of the solution (``[-1, 1]`` for Allen-Cahn, ``[0, 1]`` for Fisher-KPP), or
    a floor the rate can grow to (Gray-Scott, Swift-Hohenberg), so that the
    step, fixed within an output interval, stays admissible while the state moves.
    """
    if config.dt is not None:
        return config.dt
    interval = config.t_final / config.n_times
    floor = max(bound, 1e-12)

    def rule(u_hat: torch.Tensor) -> torch.Tensor:
        return (config.cfl / equation.rate(u_hat).clamp_min(floor)).clamp_max(interval)

    return rule
