"""The optimisation loop: epochs of AdamW steps, validation, and callbacks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from pdeforge.errors import PdeforgeError
from pdeforge.training._config import TrainConfig
from pdeforge.training._data import SampleSource, Split

__all__ = ["EpochRecord", "TrainingDiverged", "evaluate_loss", "fit", "learning_rate"]

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TrainingDiverged(PdeforgeError):
    """The loss became non-finite or exploded; the last good checkpoint is kept."""


@dataclass
class EpochRecord:
    epoch: int
    step: int
    train_loss: float
    val_loss: float
    lr: float
    seconds: float
    samples_per_second: float

    def row(self) -> dict:
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
def evaluate_loss(model: nn.Module, data: SampleSource, span: tuple[int, int], loss: Loss, batch_size: int) -> float:
    """Mean per-sample loss over ``span`` (weighted by batch size)."""
    model.eval()
    total, count = 0.0, 0
    for x, y in data.batches(*span, batch_size):
        total += float(loss(model(x), y)) * len(x)
        count += len(x)
    return total / max(count, 1)


def fit(model: nn.Module, optimizer: torch.optim.Optimizer, data: SampleSource, split: Split, config: TrainConfig,
        loss: Loss, *, start_epoch: int = 0, first_loss: float | None = None,
        on_epoch: Sequence[Callable[[EpochRecord], None]] = (),
        on_step: Callable[[int, float], None] | None = None) -> list[EpochRecord]:
    """Train from ``start_epoch`` to ``config.epochs``.

    Each epoch shuffles with ``(config.seed, epoch)``, takes AdamW steps at
    :func:`learning_rate`, then validates. ``on_epoch`` callbacks (progress,
    logging, checkpointing) see each finished epoch. Raises
    :class:`TrainingDiverged` when the loss is non-finite or exceeds
    ``divergence_factor`` times the first epoch's, before that epoch is
    reported, so the last checkpoint stays the last good one.
    """
    per_epoch = steps_per_epoch(split, config.batch_size)
    records = []
    step = start_epoch * per_epoch
    for epoch in range(start_epoch, config.epochs):
        model.train()
        t0 = time.perf_counter()
        total, count = 0.0, 0
        for x, y in data.batches(*split.train, config.batch_size, shuffle_seed=(config.seed, epoch)):
            lr = learning_rate(config, step, per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            value = loss(model(x), y)
            if not torch.isfinite(value):
                raise TrainingDiverged(f"training diverged at epoch {epoch + 1}, step {step + 1} (loss {float(value.detach())}); "
                                       f"the last good checkpoint is kept — lower the learning rate (--set lr=...)")
            value.backward()
            optimizer.step()
            total += float(value.detach()) * len(x)
            count += len(x)
            step += 1
            if on_step is not None:
                on_step(len(x), float(value.detach()))
        seconds = time.perf_counter() - t0
        train_loss = total / max(count, 1)
        if first_loss is None:
            first_loss = train_loss
        if train_loss > config.divergence_factor * first_loss:
            raise TrainingDiverged(f"training diverged at epoch {epoch + 1} (loss {train_loss:.3g}, "
                                   f"{train_loss / first_loss:.0f}x the first epoch's); the last good checkpoint is kept")
        val = evaluate_loss(model, data, split.val, loss, config.batch_size) if split.val[1] > split.val[0] else float("nan")
        record = EpochRecord(epoch + 1, step, train_loss, val, learning_rate(config, max(step - 1, 0), per_epoch),
                             seconds, count / seconds if seconds > 0 else float("inf"))
        records.append(record)
        for callback in on_epoch:
            callback(record)
    return records
