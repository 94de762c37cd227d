"""The bounded sample buffer of online training: FIFO or reservoir replacement, uniform batch draws.

Samples arrive in the order of their index in the training seed stream and
are kept in at most ``capacity`` preallocated slots on the training device;
memory is therefore bounded however long the producers run. Two policies
decide which sample a newcomer replaces once the buffer is full:

``fifo``
    The oldest sample leaves: the buffer holds exactly the ``capacity``
    newest samples.
``reservoir``
    Reservoir sampling (Vitter, "Random sampling with a reservoir", ACM TOMS
    11(1), 1985, algorithm R): the ``t``-th sample seen replaces a uniformly
    chosen slot with probability ``capacity / t`` and is dropped otherwise, so
    the buffer is a uniform sample of everything produced so far.

Batches are drawn uniformly from the occupied slots (without replacement
within a batch) by a seeded generator whose state is part of
:meth:`SampleBuffer.state`, with the indices held, so that a checkpoint can
rebuild the buffer exactly: the samples themselves are a pure function of
``(seed, index)`` and are solved again on resume. The buffer follows Meyer
et al., "Training Deep Surrogate Models with Large Scale Online Learning",
ICML 2023, section 3.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

__all__ = ["BufferStats", "SampleBuffer"]

Policy = Literal["fifo", "reservoir"]


class BufferStats:
    """What a buffer has seen: samples offered, draws, the largest occupancy.

    Attributes
    ----------
    seen
        Samples offered to the buffer (kept or not).
    unique
        Samples whose index was above every index offered before (equal to
        ``seen`` when no index repeats, since samples arrive in index order).
    draws
        Samples drawn into batches, in total.
    max_draws
        The most times one sample was drawn.
    max_occupancy
        The largest number of samples held at once (never above the capacity).
    """

    def __init__(self) -> None:
        self.seen = 0
        self.unique = 0
        self.draws = 0
        self.max_draws = 0
        self.max_occupancy = 0

    def as_dict(self) -> dict[str, int]:
        """The statistics as a JSON-ready dict.

        Returns
        -------
        dict
            ``seen``, ``unique``, ``draws``, ``max_draws``, ``max_occupancy``.
        """
        return dict(self.__dict__)


class SampleBuffer:
    """At most ``capacity`` samples ``(x, y)`` of a stream, with their indices.

    Parameters
    ----------
    capacity
        Samples held at most.
    x_shape, y_shape
        Per-sample shapes ``[channels, *space]`` of inputs and outputs.
    policy
        ``"fifo"`` or ``"reservoir"`` (see the module docstring).
    seed
        Seeds the batch sampler and the reservoir's decisions.
    device
        Where the samples are kept (the training device).

    Examples
    --------
    >>> buffer = SampleBuffer(2, (1, 3), (1, 3), policy="fifo", seed=0)
    >>> buffer.add([0, 1, 2], torch.zeros(3, 1, 3), torch.ones(3, 1, 3))
    >>> sorted(buffer.indices())
    [1, 2]
    """

    def __init__(self, capacity: int, x_shape: tuple[int, ...], y_shape: tuple[int, ...], *, policy: Policy,
                 seed: int, device: torch.device | str = "cpu") -> None:
        if capacity < 1:
            raise ValueError("a buffer holds at least one sample")
        if policy not in ("fifo", "reservoir"):
            raise ValueError(f"unknown buffer policy {policy!r}")
        self.capacity, self.policy = capacity, policy
        self.x = torch.empty((capacity, *x_shape), device=device)
        self.y = torch.empty((capacity, *y_shape), device=device)
        self._index = np.full(capacity, -1, dtype=np.int64)  # sample index in each slot, -1 when empty
        self._drawn = np.zeros(capacity, dtype=np.int64)  # times the sample in each slot was drawn
        self._size = 0
        self._oldest = 0  # fifo: the slot the next newcomer replaces
        self._sampler = np.random.default_rng([seed, 0])
        self._reservoir = np.random.default_rng([seed, 1])
        self._highest = -1  # samples arrive in index order: an index at or below the highest one repeats
        self.stats = BufferStats()

    def __len__(self) -> int:
        return self._size

    def indices(self) -> list[int]:
        """The sample indices held, slot by slot.

        Returns
        -------
        list of int
            One index per occupied slot, in slot order.
        """
        return [int(i) for i in self._index[: self._size]]

    def _slot_for_newcomer(self) -> int | None:
        """Where the next sample goes, or ``None`` when the reservoir drops it."""
        if self._size < self.capacity:
            self._size += 1
            return self._size - 1
        if self.policy == "fifo":
            slot = self._oldest
            self._oldest = (self._oldest + 1) % self.capacity
            return slot
        # Algorithm R: the t-th sample (t = seen, 1-based) takes slot j ~ U{0..t-1} if j < capacity.
        j = int(self._reservoir.integers(0, self.stats.seen))
        return j if j < self.capacity else None

    def add(self, indices: list[int], x: torch.Tensor, y: torch.Tensor) -> None:
        """Offer samples (in stream order) to the buffer.

        Parameters
        ----------
        indices
            Their indices in the seed stream.
        x, y
            Their inputs ``[n, *x_shape]`` and outputs ``[n, *y_shape]``.
        """
        for k, index in enumerate(indices):
            self.stats.seen += 1
            if int(index) > self._highest:
                self._highest = int(index)
                self.stats.unique += 1
            slot = self._slot_for_newcomer()
            if slot is None:
                continue
            self.x[slot] = x[k]
            self.y[slot] = y[k]
            self._index[slot] = int(index)
            self._drawn[slot] = 0
        self.stats.max_occupancy = max(self.stats.max_occupancy, self._size)
        assert self._size <= self.capacity

    def draw(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch drawn uniformly from the held samples (without replacement within the batch).

        Parameters
        ----------
        batch_size
            Samples wanted; fewer when the buffer holds fewer.

        Returns
        -------
        tuple of Tensor
            ``(x, y)``, copies of the drawn samples.
        """
        if self._size == 0:
            raise ValueError("cannot draw from an empty buffer")
        chosen = self._sampler.choice(self._size, size=min(batch_size, self._size), replace=False)
        self._drawn[chosen] += 1
        self.stats.draws += len(chosen)
        self.stats.max_draws = max(self.stats.max_draws, int(self._drawn[chosen].max()))
        rows = torch.as_tensor(chosen, device=self.x.device)
        return self.x[rows], self.y[rows]

    def state(self) -> dict[str, Any]:
        """Everything but the sample values, as JSON: what a checkpoint needs to rebuild the buffer.

        Returns
        -------
        dict
            Held indices and draw counts per slot, the FIFO position, both
            generators' states and the statistics.
        """
        return {"indices": self.indices(), "drawn": [int(d) for d in self._drawn[: self._size]],
                "oldest": self._oldest, "sampler": self._sampler.bit_generator.state,
                "reservoir": self._reservoir.bit_generator.state, "stats": self.stats.as_dict(),
                "highest": self._highest}

    def restore(self, state: dict[str, Any], x: torch.Tensor, y: torch.Tensor) -> None:
        """Return to a :meth:`state`, given the held samples' values (solved again, in slot order).

        Parameters
        ----------
        state
            A dict from :meth:`state`.
        x, y
            The values of ``state["indices"]``, slot by slot.
        """
        held = list(state["indices"])
        if len(held) > self.capacity or len(x) != len(held) or len(y) != len(held):
            raise ValueError("the buffer state does not fit this buffer")
        self._size = len(held)
        self.x[: self._size] = x
        self.y[: self._size] = y
        self._index[:] = -1
        self._index[: self._size] = held
        self._drawn[:] = 0
        self._drawn[: self._size] = state["drawn"]
        self._oldest = int(state["oldest"])
        self._sampler.bit_generator.state = state["sampler"]
        self._reservoir.bit_generator.state = state["reservoir"]
        self.stats.__dict__.update({k: int(v) for k, v in state["stats"].items()})
        self._highest = int(state["highest"])
