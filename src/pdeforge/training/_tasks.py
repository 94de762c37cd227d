"""Training tasks on trajectories: what a sample is, declared in the config, never guessed.

A dataset whose output is a trajectory ``w [T, *snapshot]`` (with the
initial field ``w0`` as input, as Navier-Stokes and Burgers store them) holds
``K + 1`` snapshots per trajectory, ``s_0 = w0, s_1 = w(t_1), ...``. The task
says which samples a model learns from:

``map``
    The stored pair as it is: ``w0 -> [w(t_1) ... w(t_T)]`` with the
    snapshots as channels (pdeforge's behaviour before tasks existed).
``rollout``
    ``history [k, *snapshot] -> future [m, *snapshot]``: the ``k`` snapshots
    from ``offset`` (one window per trajectory, or one every ``stride``
    snapshots), the model makes one step ``k snapshots -> 1`` and is applied
    recurrently (:class:`Rollout`), trained over ``unroll`` steps with
    optional teacher forcing, as the FNO paper's FNO-2D (10 -> 40).
``spacetime``
    The same windows, the whole future predicted at once by a space-time
    model (``fno3d``, ``stfno``).
``all2all``
    Every pair ``i <= j`` of a trajectory's snapshots: ``(s_i, t_j - t_i)
    -> s_j``, ``(K + 1)(K + 2) / 2`` pairs per trajectory (Herde et al.,
    Poseidon, NeurIPS 2024, sec. 3); ``pairs: next`` keeps only ``(s_i,
    t_{i+1} - t_i) -> s_{i+1}`` (next-step training). The lead time is the
    input's last channel, a constant field.

:class:`TrajectoryView` presents the windows or pairs as an
:class:`~pdeforge.data.ArraySource` whose samples are built on demand from
the trajectories they come from, so nothing is copied: a batch reads only
the trajectories it touches (from the shards, or from memory when all
trajectories fit in ``cache_mb``). Splits are drawn over trajectories, so a
test window never shares a trajectory with a training one, and
``n_train``/``n_val``/``n_test`` count trajectories.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from pdeforge.data import ArraySource, open_dataset
from pdeforge.errors import PdeforgeError
from pdeforge.problems import PROBLEMS
from pdeforge.training._data import Split, make_split
from pdeforge.training._normalise import ChannelNormaliser, NormalisedModel

__all__ = ["Rollout", "TaskConfig", "TrajectoryView", "open_task_data", "task_split"]

Arrays = dict[str, np.ndarray]


class TaskConfig(BaseModel):
    """What a training sample is (see the module docstring); ``task: rollout`` is short for ``{kind: rollout}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["map", "rollout", "spacetime", "all2all"] = Field(
        default="map", description="map (the stored pair), rollout, spacetime or all2all")
    field: str | None = Field(default=None, description="the trajectory output field (default: the only one)")
    history: int = Field(default=1, ge=1, description="rollout/spacetime: snapshots given, k")
    horizon: int = Field(default=1, ge=1, description="rollout/spacetime: snapshots predicted, m")
    offset: int = Field(default=0, ge=0, description="first snapshot used (0 is the initial field)")
    stride: int | None = Field(default=None, ge=1,
                               description="rollout/spacetime: a window every this many snapshots (none: one)")
    unroll: int | None = Field(default=None, ge=1,
                               description="rollout: steps unrolled in training (default: the horizon)")
    teacher_forcing: float = Field(default=0.0, ge=0, le=1,
                                   description="rollout: probability that a training step is fed the true "
                                               "snapshot instead of the model's own prediction")
    pairs: Literal["all", "next"] = Field(default="all", description="all2all: every pair i <= j, or i -> i + 1")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _unroll_within_horizon(self):
        if self.unroll is not None and self.unroll > self.horizon:
            raise ValueError(f"unroll ({self.unroll}) cannot exceed the horizon ({self.horizon})")
        return self

    @property
    def windowed(self) -> bool:
        """Whether samples are ``history -> future`` windows (rollout and spacetime)."""
        return self.kind in ("rollout", "spacetime")


def _trajectory_fields(source: ArraySource, task: TaskConfig) -> tuple[str, str | None]:
    """The trajectory output field and the input field that is its snapshot 0 (or ``None``)."""
    problem = PROBLEMS.get(source.problem or "")
    if problem is None:
        raise PdeforgeError(f"task '{task.kind}' needs a pdeforge trajectory dataset; {source.describe()} "
                            "does not say which axis is time")
    timed = [f.name for f in problem.outputs if f.axes and f.axes[0] == "t" and f.name in source.output_shapes]
    if task.field is not None:
        if task.field not in timed:
            raise PdeforgeError(f"task.field '{task.field}' is not a trajectory output of {source.path} "
                                f"(trajectories: {', '.join(timed) or 'none'})")
        name = task.field
    elif len(timed) == 1:
        name = timed[0]
    else:
        raise PdeforgeError(f"task '{task.kind}' needs one trajectory output; {source.path} has "
                            f"{len(timed)} ({', '.join(timed) or 'none'}): set task.field")
    snapshot = source.output_shapes[name][1:]
    first = [n for n, shape in source.input_shapes.items() if tuple(shape) == tuple(snapshot)]
    return name, (first[0] if first else None)


class TrajectoryView(ArraySource):
    """The samples of a trajectory task, built on demand from a dataset of trajectories.

    Sample ``i`` is item ``i % per_trajectory`` (a window or a pair) of
    trajectory ``i // per_trajectory``. Fields: ``history [k, *snapshot]``
    and ``future [m, *snapshot]`` for windows; ``state [*snapshot]``,
    ``lead_time [*space]`` and ``target [*snapshot]`` for pairs.

    Parameters
    ----------
    source
        A pdeforge dataset whose output is a trajectory.
    task
        The task (not ``map``).
    cache_mb
        All trajectories are read once and kept when they take at most this many MiB.
    """

    def __init__(self, source: ArraySource, task: TaskConfig, *, cache_mb: int = 2048) -> None:
        if task.kind == "map":
            raise ValueError("a map task uses the dataset itself")
        self.base, self.task = source, task
        self.path, self.kind, self.problem = source.path, source.kind, source.problem
        self.field, self.first = _trajectory_fields(source, task)
        shape = tuple(source.output_shapes[self.field])
        self.snapshot = shape[1:]
        axes = {f.name: f.axes for f in PROBLEMS[source.problem or ""].outputs}[self.field]
        self.spatial_dims = sum(a in ("x", "y", "z") for a in axes)
        stored_t = np.asarray(source.coords().get("t", np.arange(1, shape[0] + 1)), dtype=np.float64)
        self.times = np.concatenate([[0.0], stored_t]) if self.first is not None else stored_t
        count = len(self.times)
        if task.windowed:
            need = task.history + task.horizon
            last = count - need
            if task.offset > last:
                raise PdeforgeError(f"task '{task.kind}': history {task.history} + horizon {task.horizon} from "
                                    f"snapshot {task.offset} needs {task.offset + need} snapshots; the "
                                    f"trajectories of {source.path} have {count}")
            starts = range(task.offset, last + 1, task.stride) if task.stride else [task.offset]
            self.items = np.asarray(list(starts), dtype=np.int64)[:, None]
        else:
            if task.offset >= count - 1:
                raise PdeforgeError(f"task all2all from snapshot {task.offset} leaves no pair in {count} snapshots")
            idx = range(task.offset, count)
            pairs = ([(i, j) for i in idx for j in idx if j >= i] if task.pairs == "all"
                     else [(i, i + 1) for i in idx[:-1]])
            self.items = np.asarray(pairs, dtype=np.int64)
        self.per_trajectory = len(self.items)
        per_traj_bytes = 4 * count * math.prod(self.snapshot)
        self._cache_wanted = per_traj_bytes * len(source) <= cache_mb * 2**20
        self._cache: np.ndarray | None = None

    @property
    def in_memory(self) -> bool:
        """Whether the trajectories are (or will be) held in memory, so no loader process is needed."""
        return self._cache_wanted

    @property
    def trajectories(self) -> int:
        """The number of trajectories."""
        return len(self.base)

    def __len__(self) -> int:
        return len(self.base) * self.per_trajectory

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.task.windowed:
            return {"history": (self.task.history, *self.snapshot)}
        return {"state": self.snapshot, "lead_time": self.snapshot[-self.spatial_dims:]}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.task.windowed:
            return {"future": (self.task.horizon, *self.snapshot)}
        return {"target": self.snapshot}

    def output_times(self) -> np.ndarray | None:
        """The times of a window's predicted snapshots (first window); ``None`` for pairs."""
        if not self.task.windowed:
            return None
        start = int(self.items[0, 0]) + self.task.history
        return self.times[start : start + self.task.horizon]

    def _snapshots(self, inputs: Arrays, outputs: Arrays) -> np.ndarray:
        traj = np.asarray(outputs[self.field], dtype=np.float32)
        if self.first is None:
            return traj
        return np.concatenate([np.asarray(inputs[self.first], dtype=np.float32)[:, None], traj], axis=1)

    def _trajectories(self, which: np.ndarray) -> np.ndarray:
        """Snapshots ``[len(which), K + 1, *snapshot]`` of the (increasing) trajectories ``which``."""
        if self._cache_wanted:
            cache = self._cache
            if cache is None:
                cache = self._cache = self._snapshots(*self.base.read(0, len(self.base)))
            return cache[which]
        return self._snapshots(*self.base.take(which))

    def read(self, start: int, stop: int) -> tuple[Arrays, Arrays]:
        return self.take(np.arange(start, stop, dtype=np.int64))

    def take(self, rows: np.ndarray) -> tuple[Arrays, Arrays]:
        rows = np.asarray(rows, dtype=np.int64)
        which = rows // self.per_trajectory
        unique = np.unique(which)
        snaps = self._trajectories(unique)
        local = np.searchsorted(unique, which)
        items = self.items[rows % self.per_trajectory]
        if self.task.windowed:
            k, m = self.task.history, self.task.horizon
            hist = items[:, :1] + np.arange(k)
            fut = items[:, :1] + k + np.arange(m)
            return {"history": snaps[local[:, None], hist]}, {"future": snaps[local[:, None], fut]}
        i, j = items[:, 0], items[:, 1]
        lead = (self.times[j] - self.times[i]).astype(np.float32)
        space = self.snapshot[-self.spatial_dims:]
        lead_field = np.broadcast_to(lead.reshape(-1, *([1] * len(space))), (len(rows), *space))
        return {"state": snaps[local, i], "lead_time": lead_field}, {"target": snaps[local, j]}

    def check_span(self, start: int, stop: int) -> None:
        p = self.per_trajectory
        self.base.check_span(start // p, -(-stop // p))

    def blocks(self) -> list[tuple[int, int]]:
        p = self.per_trajectory
        return [(a * p, b * p) for a, b in self.base.blocks()]

    def coords(self) -> Arrays:
        return {k: v for k, v in self.base.coords().items() if k != "t"}

    def describe(self) -> str:
        return f"{self.task.kind} samples of {self.base.describe()}"

    def fingerprint(self) -> str:
        return f"{self.base.fingerprint()}|task:{self.task.model_dump_json()}"


def open_task_data(path: Path, task: TaskConfig, *, cache_mb: int = 2048) -> ArraySource:
    """The dataset at ``path`` as the task's samples: itself for ``map``, else a :class:`TrajectoryView`."""
    source = open_dataset(path)
    return source if task.kind == "map" else TrajectoryView(source, task, cache_mb=cache_mb)


def task_split(source: ArraySource, *, external_test: bool = False, **sizes) -> Split:
    """:func:`~pdeforge.training.make_split` over trajectories for a view (sample ranges scaled), else samples."""
    if not isinstance(source, TrajectoryView):
        return make_split(len(source), external_test=external_test, **sizes)
    split = make_split(source.trajectories, external_test=external_test, **sizes)
    p = source.per_trajectory
    return Split(*((a * p, b * p) for a, b in (split.train, split.val, split.test)))


class Rollout(nn.Module):
    """A one-step model ``k snapshots -> 1`` applied recurrently: ``history [k c] -> future [m c]`` channels.

    Each step feeds the last ``k`` snapshots (true or predicted) to ``step``
    and appends its output. The step model is a
    :class:`~pdeforge.training.NormalisedModel` whose normalisers hold one
    statistic per physical channel, repeated over the ``k`` input
    snapshots, so a snapshot is normalised alike wherever it sits in the window.

    Parameters
    ----------
    step
        The normalised one-step model: ``[B, k c, *space] -> [B, c, *space]`` in physical units.
    history, horizon
        ``k`` and ``m``.
    channels
        ``c``, the channels of one snapshot.
    """

    def __init__(self, step: NormalisedModel, history: int, horizon: int, channels: int) -> None:
        super().__init__()
        self.step, self.history, self.horizon, self.channels = step, history, horizon, channels

    def unroll(self, x: torch.Tensor, steps: int, *, truth: torch.Tensor | None = None,
               teacher: torch.Tensor | None = None) -> torch.Tensor:
        """The first ``steps`` predicted snapshots ``[B, steps c, *space]``.

        Parameters
        ----------
        x
            The history ``[B, k c, *space]``.
        steps
            Steps to take.
        truth
            The true future ``[B, >= steps c, *space]``, needed with ``teacher``.
        teacher
            Booleans ``[steps]``: after step ``s``, feed the true snapshot
            rather than the prediction when ``teacher[s]`` (teacher forcing).
        """
        if teacher is not None and truth is None:
            raise ValueError("teacher forcing needs the true future")
        c, window, out = self.channels, x, []
        for s in range(steps):
            pred = self.step(window)
            out.append(pred)
            forced = truth is not None and teacher is not None and bool(teacher[s])
            fed = truth[:, s * c : (s + 1) * c] if forced and truth is not None else pred
            window = torch.cat([window[:, c:], fed], dim=1)
        return torch.cat(out, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The whole horizon, free-running: ``[B, m c, *space]``."""
        return self.unroll(x, self.horizon)

    def fit_normalisers(self, pairs) -> None:
        """Fit per-channel statistics over every snapshot of the ``(history, future)`` pairs, then repeat them."""
        c, dims = self.channels, self.step.inputs.spatial_dims
        shared = ChannelNormaliser(c, dims).to(dtype=self.step.inputs.mean.dtype)

        def snapshots():
            for x, y in pairs:
                both = torch.cat([x, y], dim=1)
                yield both.reshape(-1, c, *both.shape[2:])

        shared.fit(snapshots())
        self.step.inputs.mean.copy_(shared.mean.repeat(self.history))
        self.step.inputs.std.copy_(shared.std.repeat(self.history))
        self.step.outputs.mean.copy_(shared.mean)
        self.step.outputs.std.copy_(shared.std)
