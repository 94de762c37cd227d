"""From datasets on disk to batches of tensors ``[batch, channel, *space]``.

Batches are streamed one storage block (a shard) at a time, so memory stays
bounded whatever the dataset size; a dataset smaller than ``cache_mb`` is
read once and kept. Either way the order is the same: each epoch visits the
blocks in an order drawn from ``(seed, epoch)`` and shuffles the samples
within a block, so results do not depend on whether the data were cached.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from pdeforge.data import ArraySource, PdeforgeDataset
from pdeforge.errors import PdeforgeError
from pdeforge.problems import PROBLEMS

__all__ = ["FieldLayout", "Split", "SampleSource", "make_split"]


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
    def of(cls, source: ArraySource, inputs: list[str] | None = None, outputs: list[str] | None = None) -> FieldLayout:
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


class SampleSource:
    """Batches of ``(x, y)`` from an :class:`ArraySource`, checked for non-finite values.

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
    """

    def __init__(self, source: ArraySource, layout: FieldLayout, *, device: torch.device, cache_mb: int = 2048,
                 span: tuple[int, int] | None = None) -> None:
        self.source, self.layout, self.device = source, layout, device
        self.span = tuple(span) if span is not None else (0, len(source))
        per_sample = 4 * (layout.in_channels + layout.out_channels) * math.prod(layout.space)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._cache_wanted = per_sample * (self.span[1] - self.span[0]) <= cache_mb * 2**20

    def _read(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, outputs = self.source.read(start, stop)
        x, y = self.layout.stack(inputs, self.layout.inputs), self.layout.stack(outputs, self.layout.outputs)
        for name, t in (("input", x), ("output", y)):
            bad = ~torch.isfinite(t.flatten(1)).all(1)
            if bool(bad.any()):
                i = start + int(bad.nonzero()[0, 0])
                raise PdeforgeError(f"sample {i} of {self.source.path} has non-finite {name} values (NaN or Inf)")
        return x, y

    def read(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``[start, stop)`` on the device."""
        first, last = self.span
        if self._cache_wanted and first <= start <= stop <= last:
            if self._cache is None:
                self._cache = self._read(first, last)
            x, y = self._cache[0][start - first : stop - first], self._cache[1][start - first : stop - first]
        else:
            x, y = self._read(start, stop)
        return x.to(self.device), y.to(self.device)

    def blocks(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The storage blocks intersected with ``[start, stop)``."""
        out = []
        for a, b in self.source.blocks():
            lo, hi = max(a, start), min(b, stop)
            if lo < hi:
                out.append((lo, hi))
        return out

    def batches(self, start: int, stop: int, batch_size: int, *, shuffle_seed: tuple[int, int] | None = None,
                drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches over ``[start, stop)``; shuffled by ``(seed, epoch)`` when ``shuffle_seed`` is given.

        A shuffle permutes the storage blocks and the samples within each
        block (one read per block); samples left over at the end of a block
        are carried into the next, so every batch but the last is full.

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

        Yields
        ------
        tuple of Tensor
            ``(x, y)``: inputs ``[batch, in_channels, *space]`` and outputs
            ``[batch, out_channels, *space]`` on the device.
        """
        blocks = self.blocks(start, stop)
        rng = np.random.default_rng(list(shuffle_seed)) if shuffle_seed is not None else None
        if rng is not None:
            blocks = [blocks[i] for i in rng.permutation(len(blocks))]
        carry: tuple[torch.Tensor, torch.Tensor] | None = None  # the samples left over from earlier blocks
        for lo, hi in blocks:
            x, y = self.read(lo, hi)
            if rng is not None:
                order = torch.as_tensor(rng.permutation(hi - lo), device=x.device)
                x, y = x[order], y[order]
            if carry is not None:
                x, y = torch.cat([carry[0], x]), torch.cat([carry[1], y])
            full = (len(x) // batch_size) * batch_size
            for i in range(0, full, batch_size):
                yield x[i : i + batch_size], y[i : i + batch_size]
            carry = (x[full:], y[full:]) if full < len(x) else None
        if carry is not None and not drop_last:
            yield carry


def is_periodic(source: ArraySource) -> bool:
    """Whether the data live on a periodic grid (decides how Sobolev norms are taken)."""
    if isinstance(source, PdeforgeDataset) and source.problem in PROBLEMS:
        return PROBLEMS[source.problem].periodic
    return False  # foreign data: assume a bounded domain (norms are then taken with padding)
