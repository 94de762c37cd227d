"""The optimisation loop: epochs of optimiser steps, validation, and callbacks.

:func:`run_epochs` is the generic engine: epochs of optimiser steps over
whatever batches an iterator yields, with a loss closure, a learning rate
that is a pure function of the step, a divergence check and per-epoch
callbacks. :func:`fit` drives it for a neural operator on a
:class:`~pdeforge.training.SampleSource`; other trainers (the DCDM direction
network of :mod:`pdeforge.learned_solvers`) drive it with their own batches
and loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from pdeforge.errors import PdeforgeError
from pdeforge.training._config import TrainConfig
from pdeforge.training._data import SampleSource, Split
from pdeforge.training._normalise import FrequencyOutput, frequency_output
from pdeforge.training._tasks import Rollout
from pdeforge.training._team import SOLO, Team
from pdeforge.training.losses import RelativeLpLoss, parseval_relative_l2

__all__ = ["BatchObjective", "EpochRecord", "TrainingDiverged", "check_shares", "evaluate_loss", "fit", "learning_rate",
           "run_epochs"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = TypeVar("Batch")


class TrainingDiverged(PdeforgeError):
    """The loss became non-finite or exploded; the last good checkpoint is kept."""


@dataclass
class EpochRecord:
    """One finished epoch, as logged to ``metrics.csv``.

    Attributes
    ----------
    epoch
        Epochs finished so far (1-based).
    step
        Optimisation steps taken so far.
    train_loss
        Mean per-sample training loss of the epoch (weighted by batch size).
    val_loss
        Validation loss after the epoch (``nan`` without a validation set).
    lr
        Learning rate of the epoch's last step.
    seconds, samples_per_second
        Wall time of the epoch's steps (validation excluded) and throughput.
    """

    epoch: int
    step: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float
    samples_per_second: float

    def row(self) -> dict:
        """The record as a dict of its fields, one row of ``metrics.csv``.

        Returns
        -------
        dict
            Field name to value, in declaration order.
        """
        return asdict(self)


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate at optimisation step ``step``: a pure function, so resuming is exact."""
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    if warmup > 0 and step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "cosine":
        progress = (step - warmup) / max(1.0, total - warmup)
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if config.schedule == "step":
        return config.lr * 0.5 ** (step // (config.step_epochs * steps_per_epoch))
    return config.lr


def steps_per_epoch(split: Split, batch_size: int) -> int:
    n = split.train[1] - split.train[0]
    return max(1, math.ceil(n / batch_size))


@torch.no_grad()
def evaluate_loss(model: nn.Module, data: SampleSource, span: tuple[int, int], loss: Loss, batch_size: int,
                  team: Team = SOLO) -> float:
    """Mean per-sample loss over ``span`` (weighted by batch size).

    With a team of several ranks each rank evaluates its share of every
    batch and the sums of ``loss * samples`` and of samples are added over
    the ranks, so every rank gets the mean one process would compute (the
    losses are means of per-sample errors), up to the order of the sums.
    """
    model.eval()
    total, count = 0.0, 0
    shares = (data.batches(*span, batch_size) if team.world == 1
              else data.batches(*span, batch_size, part=(team.rank, team.world)))
    for x, y in shares:
        if len(x):
            total += float(loss(model(x), y)) * len(x)
            count += len(x)
    if team.world > 1:
        sums = team.all_sum(torch.tensor([total, count], dtype=torch.float64))
        total, count = float(sums[0]), int(sums[1])
    return total / max(count, 1)


class BatchObjective(nn.Module):
    """The training objective of one batch as a module, so that a data-parallel wrapper sees its forward.

    ``forward(x, y)`` is ``loss(model(x), y)``, or, for a model that is a
    :class:`~pdeforge.training.FrequencyOutput` trained with the relative L2
    loss, the Parseval relative L2 error of its coefficients. For a
    :class:`~pdeforge.training.Rollout`, ``forward(x, y, teacher)`` unrolls
    ``len(teacher)`` steps (feeding the true snapshot after step ``s`` when
    ``teacher[s]``) and takes the loss on those steps of ``y``.

    Parameters
    ----------
    model
        The trained network (a submodule: its parameters are the objective's).
    loss
        The batch-mean loss on the grid.
    spectral
        The model's frequency-space view, or ``None`` to take the loss on the grid.
    """

    def __init__(self, model: nn.Module, loss: Loss, spectral: FrequencyOutput | None) -> None:
        super().__init__()
        self.model, self.loss, self.spectral = model, loss, spectral

    def forward(self, x: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """The mean loss over the batch ``(x, y)``."""
        if isinstance(self.model, Rollout):
            steps = len(teacher) if teacher is not None else self.model.horizon
            pred = self.model.unroll(x, steps, truth=y, teacher=teacher)
            return self.loss(pred, y[:, : pred.shape[1]])
        if self.spectral is not None:
            target, outside = self.spectral.transform_target(y)
            return parseval_relative_l2(self.spectral.predict_coefficients(x), target, outside).mean()
        return self.loss(self.model(x), y)


def check_shares(split: Split, batch_size: int, world: int) -> None:
    """Refuse up front a training batch with fewer samples than processes (some rank would get none).

    Every batch of an epoch is full but the last, which holds
    ``n_train mod batch_size`` samples (or a full batch when that is 0).
    """
    n = split.train[1] - split.train[0]
    last = n % batch_size or batch_size
    if world > 1 and min(batch_size, n, last) < world:
        raise PdeforgeError(f"{world} processes cannot share training batches of {min(batch_size, n, last)} "
                            f"samples (batch_size={batch_size}, {n} training samples); choose a batch_size of at "
                            f"least {world} whose remainder in n_train is 0 or at least {world}")


def run_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Callable[[int], Iterable[Batch]],
               objective: Callable[[Batch], tuple[torch.Tensor, int]], rate: Callable[[int], float], *, epochs: int,
               steps_per_epoch: int, start_epoch: int = 0, first_loss: float | None = None,
               divergence_factor: float = 1e4, validate: Callable[[], float] | None = None,
               on_epoch: Sequence[Callable[[EpochRecord], None]] = (),
               on_step: Callable[[int, float], None] | None = None,
               reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
               hint: str = "lower the learning rate") -> list[EpochRecord]:
    """Run epochs ``start_epoch, ..., epochs - 1`` of optimiser steps.

    Parameters
    ----------
    model
        The trained module (put in training mode at the start of every epoch).
    optimizer
        Any torch optimiser over the model's parameters; its learning rate
        is overwritten before every step.
    batches
        ``batches(epoch)`` iterates over the batches of that epoch (a
        shuffle drawn from the epoch alone keeps resuming exact).
    objective
        ``objective(batch) -> (loss, samples)``: the scalar mean loss of the
        batch, with the graph to differentiate, and the batch's sample count.
    rate
        Learning rate as a pure function of the global step (0-based).
    epochs
        Index one past the last epoch to run.
    steps_per_epoch
        Steps of every epoch, so that the global step of ``start_epoch`` is
        ``start_epoch * steps_per_epoch``.
    start_epoch, first_loss
        Where a resumed run continues, and its first epoch's training loss.
    divergence_factor
        Stop when an epoch's mean loss exceeds this multiple of the first's.
    validate
        Called after each epoch's steps for the validation loss.
    on_epoch
        Callbacks (progress, logging, checkpointing) that see each finished epoch.
    on_step
        Called as ``on_step(samples, loss)`` after every step.
    reduce
        Maps the detached value of ``objective`` to the batch's mean loss
        (default: the value itself), as data-parallel training needs when
        each process computes a share of the batch.
    hint
        Advice appended to the error when the loss is non-finite.

    Returns
    -------
    list of EpochRecord
        One record per epoch run.

    Raises
    ------
    TrainingDiverged
        When a step's loss is non-finite or an epoch's mean exceeds
        ``divergence_factor`` times the first epoch's, before that epoch is
        reported, so the last checkpoint written by ``on_epoch`` stays the
        last good one.
    """
    records = []
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        model.train()
        t0 = time.perf_counter()
        total, count = 0.0, 0
        for batch in batches(epoch):
            lr = rate(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            value, size = objective(batch)
            mean = float(reduce(value.detach()) if reduce is not None else value.detach())
            if not math.isfinite(mean):
                raise TrainingDiverged(f"training diverged at epoch {epoch + 1}, step {step + 1} "
                                       f"(loss {mean}); the last good checkpoint is kept — {hint}")
            value.backward()
            optimizer.step()
            total += mean * size
            count += size
            step += 1
            if on_step is not None:
                on_step(size, mean)
        seconds = time.perf_counter() - t0
        train_loss = total / max(count, 1)
        if first_loss is None:
            first_loss = train_loss
        if train_loss > divergence_factor * first_loss:
            raise TrainingDiverged(f"training diverged at epoch {epoch + 1} (loss {train_loss:.3g}, "
                                   f"{train_loss / first_loss:.0f}x the first epoch's); "
                                   "the last good checkpoint is kept")
        val = validate() if validate is not None else float("nan")
        record = EpochRecord(epoch + 1, step, train_loss, val, rate(max(step - 1, 0)),
                             seconds, count / seconds if seconds > 0 else float("inf"))
        records.append(record)
        for callback in on_epoch:
            callback(record)
    return records


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, data: SampleSource, split: Split, config: TrainConfig,
        loss: Loss, *, start_epoch: int = 0, first_loss: float | None = None,
        on_epoch: Sequence[Callable[[EpochRecord], None]] = (),
        on_step: Callable[[int, float], None] | None = None, team: Team = SOLO) -> list[EpochRecord]:
    """Train from ``start_epoch`` to ``config.epochs``.

    With a ``team`` of several processes, each reads its contiguous share
    (:func:`~pdeforge.training._data.rank_part`) of every planned batch and
    weights its batch-mean loss by ``local samples * world / batch samples``:
    the data-parallel wrapper averages the gradients over the ranks, so the
    step is the gradient of the batch's mean loss, as one process with the
    whole batch computes (also for a last, smaller batch). A training batch
    with fewer samples than processes is refused up front
    (:func:`check_shares`); validation losses are summed over the ranks.

    Each epoch shuffles with ``(config.seed, epoch)``, takes AdamW steps at
    :func:`learning_rate`, then validates. ``on_epoch`` callbacks (progress,
    logging, checkpointing) see each finished epoch. Raises
    :class:`TrainingDiverged` when the loss is non-finite or exceeds
    ``divergence_factor`` times the first epoch's, before that epoch is
    reported, so the last checkpoint stays the last good one (see
    :func:`run_epochs`, which runs the epochs). With the relative L2 loss
    and a model that is a :class:`~pdeforge.training.FrequencyOutput`
    (directly or inside a :class:`NormalisedModel`), the training steps take
    the loss in frequency space (:func:`~pdeforge.training.losses.parseval_relative_l2`),
    equal to the grid's; validation stays on the grid.
    """
    per_epoch = steps_per_epoch(split, config.batch_size)
    # A model that predicts orthonormal coefficients (T1) is trained on the relative L2 error in
    # frequency space, equal to the grid's by Parseval, without its inverse transform.
    spectral = frequency_output(model) if isinstance(loss, RelativeLpLoss) and loss.p == 2 else None
    check_shares(split, config.batch_size, team.world)
    batch_loss = team.wrap(BatchObjective(model, loss, spectral))

    def batches(epoch: int) -> Iterable[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
        seed = (config.seed, epoch)
        if team.world == 1:
            return ((len(b[0]), b) for b in data.batches(*split.train, config.batch_size, shuffle_seed=seed))
        sizes = [len(b) for b in data.plan(*split.train, config.batch_size, shuffle_seed=seed)]
        return zip(sizes, data.batches(*split.train, config.batch_size, shuffle_seed=seed,
                                       part=(team.rank, team.world)), strict=True)

    task = config.task
    unroll = task.unroll or task.horizon
    counter = [start_epoch * per_epoch]

    def teacher() -> torch.Tensor | None:
        """The steps fed the truth in this optimisation step: drawn from ``(seed, step)``, so resuming is exact."""
        if not isinstance(model, Rollout):
            return None
        rng = np.random.default_rng([config.seed, counter[0], 7])
        counter[0] += 1
        return torch.from_numpy(rng.random(unroll) < task.teacher_forcing)

    def objective(batch: tuple[int, tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, int]:
        size, (x, y) = batch
        forced = teacher()
        value = batch_loss(x, y) if forced is None else batch_loss(x, y, forced)
        return (value * (len(x) * team.world / size) if team.world > 1 else value), size

    def reduce(value: torch.Tensor) -> torch.Tensor:
        # sum over ranks of (local mean * local * world / size) = world * the batch's mean loss
        return team.all_sum(value.reshape(1))[0] / team.world

    def validate() -> float:
        return evaluate_loss(model, data, split.val, loss, config.batch_size, team)

    return run_epochs(model, optimizer, batches, objective, lambda step: learning_rate(config, step, per_epoch),
                      epochs=config.epochs, steps_per_epoch=per_epoch, start_epoch=start_epoch, first_loss=first_loss,
                      divergence_factor=config.divergence_factor,
                      validate=validate if split.val[1] > split.val[0] else None, on_epoch=on_epoch, on_step=on_step,
                      reduce=reduce if team.world > 1 else None, hint="lower the learning rate (--set lr=...)")
