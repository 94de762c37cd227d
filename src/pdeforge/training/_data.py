"""From datasets on disk to batches of tensors ``[batch, channel, *space]``.

Batches are streamed from the storage blocks (shards) they touch, by a
torch ``DataLoader`` whose workers read ahead, so memory stays bounded
whatever the dataset size; a dataset smaller than ``cache_mb`` is read once
and kept. Either way the order is the same, :func:`epoch_plan`: each epoch
visits the blocks in an order drawn from ``(seed, epoch)`` and shuffles the
samples within a block, so results do not depend on whether the data were
cached, on the number of loader workers, or on how many processes share a
batch (:func:`rank_part`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pdeforge.data import ArraySource
from pdeforge.errors import PdeforgeError
from pdeforge.problems import PROBLEMS

__all__ = ["FieldLayout", "Split", "SampleSource", "auto_workers", "epoch_plan", "make_split", "rank_part"]


@dataclass(frozen=True)
class FieldLayout:
    """How named fields become channels: every axis before the last ``spatial_dims`` is a channel axis.

    A field stored as ``[N, *extra, *space]`` contributes ``prod(extra)``
    channels; the inputs' channels are stacked in the order of ``inputs``, the
    outputs' in the order of ``outputs``. Build it with :meth:`of`.

    Parameters
    ----------
    inputs, outputs
        Names of the input and output fields, in channel order.
    spatial_dims
        Number of trailing spatial axes shared by every field.
    in_channels, out_channels
        Channels of the stacked inputs and outputs.
    space
        The common spatial shape.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    spatial_dims: int
    in_channels: int
    out_channels: int
    space: tuple[int, ...]

    @classmethod
    def of(cls, source: ArraySource, inputs: list[str] | None = None, outputs: list[str] | None = None,
           spatial_dims: int | None = None) -> FieldLayout:
        """The layout of ``source``'s fields (all of them unless named).

        The spatial axes are the trailing axes common to every chosen field
        (as many as the field with the fewest axes has); the remaining leading
        axes of each field are its channels.

        Parameters
        ----------
        source
            The data, whose per-sample field shapes are read.
        inputs, outputs
            Field names to use, in channel order (default: all, in stored order).
        spatial_dims
            The number of spatial axes when the source knows it (a
            :class:`~pdeforge.training.TrajectoryView`'s windows have as many
            axes in and out but differ in their time axis); default inferred.

        Returns
        -------
        FieldLayout
        """
        ins = tuple(inputs or source.input_shapes)
        outs = tuple(outputs or source.output_shapes)
        for name in ins:
            if name not in source.input_shapes:
                raise PdeforgeError(f"{source.path} has no input field '{name}' "
                                    f"(it has {', '.join(source.input_shapes)})")
        for name in outs:
            if name not in source.output_shapes:
                raise PdeforgeError(f"{source.path} has no output field '{name}' "
                                    f"(it has {', '.join(source.output_shapes)})")
        shapes = [source.input_shapes[n] for n in ins] + [source.output_shapes[n] for n in outs]
        dims = spatial_dims if spatial_dims is not None else getattr(source, "spatial_dims", None)
        if dims is None:
            dims = min(len(shape) for shape in shapes)  # leading axes beyond the common spatial ones are channels
        if dims == 0:
            raise PdeforgeError(f"{source.path}: every field needs at least one spatial axis")
        space = tuple(shapes[0][-dims:])
        for name, shape in zip(ins + outs, shapes, strict=True):
            if tuple(shape[-dims:]) != space:
                raise PdeforgeError(f"{source.path}: field '{name}' {list(shape)} does not share "
                                    f"the spatial shape {list(space)}")

        def channels(names: tuple[str, ...], table: dict[str, tuple[int, ...]]) -> int:
            return sum(math.prod(table[n][:-dims]) for n in names)

        return cls(ins, outs, dims, channels(ins, source.input_shapes), channels(outs, source.output_shapes), space)

    def stack(self, arrays: dict[str, np.ndarray], names: tuple[str, ...]) -> torch.Tensor:
        """The fields ``names`` of a block of samples as one float32 tensor ``[N, channels, *space]``.

        Parameters
        ----------
        arrays
            Field name to array ``[N, *extra, *space]`` (as read from an
            :class:`~pdeforge.data.ArraySource`).
        names
            The fields to stack, in channel order (``inputs`` or ``outputs``).

        Returns
        -------
        Tensor
            The extra axes of each field flattened into channels, concatenated.
        """
        parts = []
        for name in names:
            a = np.asarray(arrays[name], dtype=np.float32)
            parts.append(a.reshape(a.shape[0], -1, *a.shape[a.ndim - self.spatial_dims :]))
        return torch.from_numpy(np.concatenate(parts, axis=1))


@dataclass(frozen=True)
class Split:
    """Contiguous index ranges ``[start, stop)`` of the three splits.

    Parameters
    ----------
    train, val, test
        The ``(start, stop)`` sample ranges of the training, validation and test splits.
    """

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def sizes(self) -> dict[str, int]:
        """The number of samples in each split.

        Returns
        -------
        dict
            ``{"train": ..., "val": ..., "test": ...}``.
        """
        return {k: b - a for k, (a, b) in self.__dict__.items()}


def make_split(n: int, *, n_train=None, n_val=None, n_test=None, val_fraction=0.1, test_fraction=0.1,
               external_test: bool = False) -> Split:
    """Split ``n`` samples: train first, then validation, then test (the samples are i.i.d. by construction)."""
    test = 0 if external_test else (n_test if n_test is not None else max(1, round(test_fraction * n)))
    val = n_val if n_val is not None else max(1, round(val_fraction * n)) if val_fraction > 0 else 0
    train = n_train if n_train is not None else n - val - test
    if train < 1 or train + val + test > n:
        raise PdeforgeError(f"cannot split {n} samples into {train} train, {val} validation and {test} test")
    return Split((0, train), (train, train + val), (train + val, train + val + test))


def epoch_plan(blocks: list[tuple[int, int]], batch_size: int, *, shuffle_seed: tuple[int, int] | None = None,
               drop_last: bool = False) -> list[np.ndarray]:
    """The batches of one pass over ``blocks``, as arrays of sample indices: a pure function of its arguments.

    With ``shuffle_seed = (seed, epoch)``, a generator
    ``np.random.default_rng([seed, epoch])`` first permutes the blocks, then
    permutes the samples within each block, in the permuted block order;
    without it the samples come in storage order. The resulting sequence of
    indices is cut into consecutive batches of ``batch_size``: samples left
    over at the end of a block are carried into the next, so every batch but
    the last is full and touches at most two blocks per ``batch_size`` samples
    of a block.

    Parameters
    ----------
    blocks
        Contiguous ``[start, stop)`` storage blocks (shards) to visit.
    batch_size
        Samples per batch.
    shuffle_seed
        ``(seed, epoch)`` of the shuffle; ``None`` keeps storage order.
    drop_last
        Drop a final batch smaller than ``batch_size``.

    Returns
    -------
    list of ndarray
        One int64 array of sample indices per batch.

    Examples
    --------
    >>> [b.tolist() for b in epoch_plan([(0, 3), (3, 5)], 2)]
    [[0, 1], [2, 3], [4]]
    """
    rng = np.random.default_rng(list(shuffle_seed)) if shuffle_seed is not None else None
    if rng is not None:
        blocks = [blocks[i] for i in rng.permutation(len(blocks))]
    pieces = [lo + rng.permutation(hi - lo) if rng is not None else np.arange(lo, hi) for lo, hi in blocks]
    order = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, dtype=np.int64)
    plan = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and plan and len(plan[-1]) < batch_size:
        plan.pop()
    return plan


def rank_part(batch: np.ndarray, rank: int, world: int) -> np.ndarray:
    """The contiguous share of ``batch`` that process ``rank`` of ``world`` reads.

    Shares differ by at most one sample and, in rank order, concatenate to
    ``batch``: rank ``r`` gets ``batch[r * n // world : (r + 1) * n // world]``.

    Examples
    --------
    >>> [rank_part(np.arange(5), r, 2).tolist() for r in range(2)]
    [[0, 1], [2, 3, 4]]
    """
    n = len(batch)
    return batch[rank * n // world : (rank + 1) * n // world]


def auto_workers(cached: bool) -> int:
    """The loader's default worker processes: none for data in memory, 1 (2 from 4 cores) when streaming.

    Slicing tensors already in memory is cheaper than sending them from
    another process, so cached data are served by the training process
    itself. Streaming from shards, one or two workers read (and verify) the
    next batches while the model computes; more would only compete with
    the training threads for the cores.
    """
    if cached:
        return 0
    return 2 if (os.cpu_count() or 1) >= 4 else 1


@dataclass(frozen=True)
class _Failure:
    """A data error raised in a loader worker, sent back as a value so that it stays one line."""

    message: str


class _PlannedBatches(Dataset):
    """The map-style dataset of a loader: item ``rows`` (sample indices) is that batch, on the CPU."""

    def __init__(self, stream: SampleSource) -> None:
        self.stream = stream

    def __getitem__(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | _Failure:
        try:
            return self.stream.take(rows)
        except PdeforgeError as exc:
            return _Failure(str(exc))


class _Plan:
    """The batch sampler of a loader: the planned batches (this process's parts) of the current epoch."""

    def __init__(self, blocks: list[tuple[int, int]], batch_size: int, drop_last: bool, part: tuple[int, int]):
        self.blocks, self.batch_size, self.drop_last, self.part = blocks, batch_size, drop_last, part
        self.shuffle_seed: tuple[int, int] | None = None

    def batches(self) -> list[np.ndarray]:
        return epoch_plan(self.blocks, self.batch_size, shuffle_seed=self.shuffle_seed, drop_last=self.drop_last)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (rank_part(b, *self.part) for b in self.batches())

    def __len__(self) -> int:
        return len(self.batches())


class SampleSource:
    """Batches of ``(x, y)`` from an :class:`ArraySource`, checked for non-finite values.

    Every pass follows :func:`epoch_plan`, served by a
    :class:`torch.utils.data.DataLoader` whose batch sampler is the plan and
    whose map-style dataset reads one planned batch: from memory when the
    data are cached, else from the shards the batch touches (one open per
    shard per batch, so the HDF5 files are opened in the process that reads
    them and never inherited across a fork). Worker processes prefetch
    ``prefetch_factor`` batches each and live as long as the source (one
    torch thread each, as torch sets in its workers); tensors are moved to
    the device (and cast to ``dtype``) in the calling process, through pinned
    memory on CUDA.

    Parameters
    ----------
    source
        The data.
    layout
        How the named fields become channels.
    device
        Where batches are put.
    cache_mb
        The samples of ``span`` are read once and kept (on the CPU) when they
        take at most this many MiB; otherwise every read goes to storage.
    span
        The ``[start, stop)`` range this source will be asked for (default
        all samples): an evaluation of the test split caches the test split,
        not the whole dataset. Reads outside it go to storage.
    workers
        Loader worker processes; ``None`` chooses with :func:`auto_workers`.
    dtype
        Floating-point type of the batches on the device.
    prefetch_factor
        Batches each worker reads ahead.
    """

    def __init__(self, source: ArraySource, layout: FieldLayout, *, device: torch.device, cache_mb: int = 2048,
                 span: tuple[int, int] | None = None, workers: int | None = None,
                 dtype: torch.dtype = torch.float32, prefetch_factor: int = 2) -> None:
        self.source, self.layout, self.device, self.dtype = source, layout, device, dtype
        self.span = tuple(span) if span is not None else (0, len(source))
        per_sample = 4 * (layout.in_channels + layout.out_channels) * math.prod(layout.space)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        # a source that holds its data in memory itself (a trajectory view) is not cached twice
        in_memory = bool(getattr(source, "in_memory", False))
        self._cache_wanted = not in_memory and per_sample * (self.span[1] - self.span[0]) <= cache_mb * 2**20
        self._in_memory = in_memory
        self.workers, self.prefetch_factor = workers, prefetch_factor
        self._loaders: dict[tuple, tuple[DataLoader, _Plan]] = {}

    def _read(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._checked(np.arange(start, stop), *self.source.read(start, stop))

    def _checked(self, rows: np.ndarray, inputs: dict, outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.layout.stack(inputs, self.layout.inputs), self.layout.stack(outputs, self.layout.outputs)
        for name, t in (("input", x), ("output", y)):
            bad = ~torch.isfinite(t.flatten(1)).all(1)
            if bool(bad.any()):
                i = int(rows[int(bad.nonzero()[0, 0])])
                raise PdeforgeError(f"sample {i} of {self.source.path} has non-finite {name} values (NaN or Inf)")
        return x, y

    def _cached(self, start: int, stop: int) -> bool:
        """Whether ``[start, stop)`` is served from the cache (read now if it is wanted and not yet read)."""
        first, last = self.span
        if not (self._cache_wanted and first <= start <= stop <= last):
            return False
        if self._cache is None:
            self._cache = self._read(first, last)
        return True

    def read(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``[start, stop)`` on the device."""
        if self._cached(start, stop):
            x, y = (t[start - self.span[0] : stop - self.span[0]] for t in self._cache)  # type: ignore[union-attr]
        else:
            x, y = self._read(start, stop)
        return x.to(self.device, self.dtype), y.to(self.device, self.dtype)

    def take(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples ``rows`` (any order, no repeats), in that order, as float32 CPU tensors.

        From the cache when it holds them, else from storage in one read of
        the sorted rows (one open per shard), put back in the asked order.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and self._cache is not None and self.span[0] <= rows.min() and rows.max() < self.span[1]:
            local = torch.from_numpy(rows - self.span[0])
            return self._cache[0][local], self._cache[1][local]
        order = np.argsort(rows, kind="stable")
        x, y = self._checked(rows[order], *self.source.take(rows[order]))
        back = torch.from_numpy(np.argsort(order))  # row k of (x, y) is rows[order[k]]
        return x[back], y[back]

    def blocks(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The storage blocks intersected with ``[start, stop)``."""
        out = []
        for a, b in self.source.blocks():
            lo, hi = max(a, start), min(b, stop)
            if lo < hi:
                out.append((lo, hi))
        return out

    def plan(self, start: int, stop: int, batch_size: int, *, shuffle_seed: tuple[int, int] | None = None,
             drop_last: bool = False) -> list[np.ndarray]:
        """The :func:`epoch_plan` of ``[start, stop)``: what :meth:`batches` yields, as sample indices."""
        return epoch_plan(self.blocks(start, stop), batch_size, shuffle_seed=shuffle_seed, drop_last=drop_last)

    def _loader(self, start: int, stop: int, batch_size: int, drop_last: bool,
                part: tuple[int, int]) -> tuple[DataLoader, _Plan]:
        key = (start, stop, batch_size, drop_last, part)
        if key not in self._loaders:
            cached = self._cached(start, stop) or self._in_memory
            workers = auto_workers(cached) if self.workers is None else self.workers
            if workers:
                self.source.check_span(start, stop)  # the workers inherit the verified shards
            plan = _Plan(self.blocks(start, stop), batch_size, drop_last, part)
            loader = DataLoader(_PlannedBatches(self), batch_size=None, sampler=plan, num_workers=workers,
                                prefetch_factor=self.prefetch_factor if workers else None,
                                persistent_workers=workers > 0, pin_memory=self.device.type == "cuda")
            self._loaders[key] = (loader, plan)
        return self._loaders[key]

    def batches(self, start: int, stop: int, batch_size: int, *, shuffle_seed: tuple[int, int] | None = None,
                drop_last: bool = False, part: tuple[int, int] = (0, 1)) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches over ``[start, stop)`` in the order of :meth:`plan`; shuffled by ``(seed, epoch)`` if given.

        Parameters
        ----------
        start, stop
            The sample range.
        batch_size
            Samples per batch.
        shuffle_seed
            ``(seed, epoch)`` of the shuffle; ``None`` reads in storage order.
        drop_last
            Drop a final batch smaller than ``batch_size``.
        part
            ``(rank, world)``: yield only this process's :func:`rank_part` of
            every planned batch (possibly empty), for data-parallel training.

        Yields
        ------
        tuple of Tensor
            ``(x, y)``: inputs ``[batch, in_channels, *space]`` and outputs
            ``[batch, out_channels, *space]`` on the device.
        """
        loader, plan = self._loader(start, stop, batch_size, drop_last, part)
        plan.shuffle_seed = shuffle_seed
        non_blocking = self.device.type == "cuda"
        failure = None
        for item in loader:
            if isinstance(item, _Failure):
                failure = item.message
                break
            x, y = item
            yield (x.to(self.device, self.dtype, non_blocking=non_blocking),
                   y.to(self.device, self.dtype, non_blocking=non_blocking))
        if failure is not None:
            # Drop this frame's hold on the loader, which the error's traceback keeps: close() then
            # stops its workers at once rather than whenever the traceback is released.
            del loader, plan
            raise PdeforgeError(failure)

    def close(self) -> None:
        """Stop the loader worker processes (a later pass starts new ones)."""
        self._loaders.clear()


def is_periodic(source: ArraySource) -> bool:
    """Whether the data live on a periodic grid (decides how Sobolev norms are taken)."""
    if source.kind == "pdeforge" and source.problem in PROBLEMS:
        return PROBLEMS[source.problem].periodic
    return False  # foreign data: assume a bounded domain (norms are then taken with padding)
