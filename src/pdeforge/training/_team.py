"""Who trains: one process, or one rank of a data-parallel team.

:func:`~pdeforge.training.train` is written against the small :class:`Team`
protocol: the rank and world size, wrapping the trained module so that its
gradients are averaged over the ranks, sums over the ranks, broadcasts from
rank 0 and a barrier. :data:`SOLO` is the one-process team (every operation
is the identity). The torchrun team (PyTorch DDP over a ``torch.distributed``
process group) lives in :mod:`pdeforge.distributed` and is passed in by the
command line, because launching and joining a process group is scale-out
machinery that the layers below ``distributed`` should not own: training
only needs to know which share of each batch it reads, what to reduce and
who writes, which this protocol states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

__all__ = ["SOLO", "Solo", "Team"]


class Team(Protocol):
    """The processes that train one model together; rank 0 writes the run directory."""

    @property
    def rank(self) -> int:
        """The index of this process, ``0 <= rank < world``."""
        ...

    @property
    def world(self) -> int:
        """The number of processes."""
        ...

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` made data-parallel: a backward pass through it leaves the ranks' mean gradient."""
        ...

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``values`` over the ranks (every rank gets it)."""
        ...

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank 0's."""
        ...

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape and type on all ranks), in rank order."""
        ...

    def barrier(self) -> None:
        """Wait until every rank arrives."""
        ...


@dataclass(frozen=True)
class Solo:
    """The team of one process: nothing to reduce, broadcast or wait for.

    Parameters
    ----------
    rank, world
        Always 0 and 1.
    """

    rank: int = 0
    world: int = 1

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` itself."""
        return module

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` itself."""
        return values

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Nothing to do: this process is rank 0."""

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """``[tensor]``."""
        return [tensor]

    def barrier(self) -> None:
        """Nothing to wait for."""


SOLO = Solo()
"""The one-process :class:`Team`, the default of :func:`~pdeforge.training.train`."""
