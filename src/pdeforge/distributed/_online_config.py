"""The configuration of an online run, and the observers it calls."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pdeforge.distributed._buffer import SampleBuffer
from pdeforge.training import EpochRecord

__all__ = ["OnlineConfig", "OnlineHooks"]


class OnlineConfig(BaseModel):
    """What an online run trains on: the problem, the seed streams, the buffer and the producers.

    The training settings proper (model, epochs, batch size, learning rate)
    stay in :class:`~pdeforge.training.TrainConfig`; its data-split fields
    are not used.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    problem: str = Field(description="problem name (`pdeforge problems` lists them)")
    problem_config: dict[str, Any] = Field(default_factory=dict, description="the problem's settings")
    seed: int = Field(default=0, ge=0, description="seed of the training sample stream")
    val_seed: int = Field(default=1, ge=0, description="seed of the fixed validation set")
    test_seed: int = Field(default=2, ge=0, description="seed of the fixed test set")
    n_val: int = Field(default=32, ge=1, description="validation samples (solved once, at the start)")
    n_test: int = Field(default=32, ge=1, description="test samples (solved once, at the start)")
    val_data: str | None = Field(default=None, description="a dataset directory to validate on instead")
    test_data: str | None = Field(default=None, description="a dataset directory to test on instead")
    capacity: int = Field(default=256, ge=1, description="samples the buffer holds at most")
    min_fill: int = Field(default=32, ge=1, description="samples in the buffer before the first step")
    policy: Literal["fifo", "reservoir"] = Field(default="fifo", description="which sample a newcomer replaces")
    producers: int | None = Field(default=None, ge=1,
                                  description="solver processes or Dask tasks in flight (default: cores - 1)")
    queue_size: int = Field(default=1, ge=1, description="chunks a producer may hold solved before it blocks")
    chunk: int = Field(default=8, ge=1, description="samples per solver batch")
    chunks_per_step: int = Field(default=1, ge=1,
                                 description="chunks taken in per optimisation step at most (the producers block "
                                             "beyond: fresh samples per step are bounded)")
    steps_per_epoch: int | None = Field(default=None, ge=1, description="optimisation steps per epoch")
    samples_per_epoch: int | None = Field(default=None, ge=1,
                                          description="samples drawn per epoch (instead of steps_per_epoch)")
    max_solver_calls: int | None = Field(default=None, ge=1,
                                         description="training samples to produce at most (production stops, "
                                                     "training goes on with the buffer)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_fill > self.capacity:
            raise ValueError(f"min_fill {self.min_fill} exceeds the capacity {self.capacity}")
        if self.steps_per_epoch is not None and self.samples_per_epoch is not None:
            raise ValueError("give steps_per_epoch or samples_per_epoch, not both")
        if len({self.seed, self.val_seed, self.test_seed}) < 3:
            raise ValueError("seed, val_seed and test_seed must differ (the sets would share samples)")
        if self.max_solver_calls is not None and self.max_solver_calls < self.min_fill:
            raise ValueError(f"max_solver_calls {self.max_solver_calls} is below min_fill {self.min_fill}")
        return self

    def steps(self, batch_size: int) -> int:
        """Optimisation steps per epoch: ``steps_per_epoch``, else from ``samples_per_epoch``, else one buffer's worth.

        Parameters
        ----------
        batch_size
            Samples per step.

        Returns
        -------
        int
            At least 1.
        """
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        return max(1, math.ceil((self.samples_per_epoch or self.capacity) / batch_size))


@dataclass
class OnlineHooks:
    """Optional observers of an online run (progress bars, tests).

    Attributes
    ----------
    start
        ``start(first_epoch, samples_per_epoch)`` before the first step.
    step
        ``step(samples, loss)`` after every step.
    epoch
        ``epoch(record, row)`` after every epoch, with the ``metrics.csv`` row.
    chunk
        ``chunk(first, count)`` for every chunk taken in.
    producers
        ``producers(backend)`` once the producers run (a :class:`LocalProducers` or :class:`DaskProducers`).
    buffer
        ``buffer(buffer)`` once the buffer is filled or rebuilt, before the first step.
    """

    start: Callable[[int, int], None] | None = None
    step: Callable[[int, float], None] | None = None
    epoch: Callable[[EpochRecord, dict], None] | None = None
    chunk: Callable[[int, int], None] | None = None
    producers: Callable[[Any], None] | None = None
    buffer: Callable[[SampleBuffer], None] | None = None
