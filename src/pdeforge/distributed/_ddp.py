"""PyTorch DDP training under ``torchrun``: the process group, the rank's device, and the team of ranks.

``torchrun --nproc_per_node=N -m pdeforge train ...`` starts ``N`` processes
per node with ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the rendezvous
(``MASTER_ADDR``, ``MASTER_PORT``) in their environment. :func:`torchrun_team`
joins them in one ``torch.distributed`` process group (NCCL on CUDA, one GPU
per local rank; gloo on the CPU) and returns a :class:`TorchrunTeam`, the
:class:`~pdeforge.training.Team` that :func:`~pdeforge.training.train` is
given: it wraps the training objective in ``DistributedDataParallel`` and
performs the sums, broadcasts and gathers of the run.

This lives here, not in ``pdeforge.training``, because joining a process
group is scale-out machinery: training states what it needs from a team (a
protocol with a one-process default) and never imports ``torch.distributed``'s
launcher conventions; the command line, above both, picks the team.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pdeforge.errors import PdeforgeError

__all__ = ["TorchrunTeam", "torchrun_env", "torchrun_team"]

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
"""The environment variables by which ``torchrun`` tells each process its place."""


def torchrun_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, int] | None:
    """``(rank, world, local_rank)`` when this process was started by ``torchrun``, else ``None``.

    Parameters
    ----------
    environ
        The environment to read (default ``os.environ``).

    Returns
    -------
    tuple of int, or None
        The process's rank, the number of processes and its rank on this node.

    Examples
    --------
    >>> torchrun_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    (2, 4, 0)
    >>> torchrun_env({}) is None
    True
    """
    env = os.environ if environ is None else environ
    if not all(name in env for name in TORCHRUN_VARIABLES):
        return None
    try:
        rank, world, local = (int(env[name]) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise PdeforgeError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if not (0 <= rank < world and 0 <= local):
        raise PdeforgeError(f"RANK={rank} is not within WORLD_SIZE={world}")
    return rank, world, local


@dataclass(frozen=True)
class TorchrunTeam:
    """The ranks of a ``torch.distributed`` process group, as a :class:`~pdeforge.training.Team`.

    Parameters
    ----------
    rank, world
        This process's rank and the group's size.
    device
        This rank's device; the collectives' tensors are put there (NCCL
        communicates GPU tensors only).
    """

    rank: int
    world: int
    device: torch.device

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in ``DistributedDataParallel``: gradients averaged over the ranks in the backward pass.

        Buffers are synchronised once, at the start, not before every forward
        (``forward_sync_buffers=False``): the only buffers are the normalisers,
        equal on every rank and not trained.
        """
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)

    def all_sum(self, values: torch.Tensor) -> torch.Tensor:
        """The sum of ``values`` over the ranks, on ``values``' device."""
        out = values.detach().to(self.device, copy=True)
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out.to(values.device)

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Overwrite ``tensors`` in place with rank 0's."""
        for t in tensors:
            if t.device == self.device:
                dist.broadcast(t, src=0)
            else:
                moved = t.to(self.device)
                dist.broadcast(moved, src=0)
                t.copy_(moved)

    def gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor``, in rank order, on ``tensor``'s device."""
        mine = tensor.to(self.device)
        out = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(out, mine)
        return [t.to(tensor.device) for t in out]

    def barrier(self) -> None:
        """Wait for every rank."""
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()


@contextmanager
def torchrun_team(device: torch.device, *, timeout_minutes: float = 30) -> Iterator[TorchrunTeam]:
    """Join the ``torchrun`` process group for the block; leave it at the end.

    On CUDA each process takes the GPU of its local rank (``cuda:LOCAL_RANK``)
    and the group uses NCCL; on the CPU it uses gloo.

    Parameters
    ----------
    device
        The device the command chose (``cpu`` or ``cuda``); its index is
        replaced by the local rank.
    timeout_minutes
        How long a collective may wait for the other ranks.

    Yields
    ------
    TorchrunTeam
        This rank's team, with its device.
    """
    place = torchrun_env()
    if place is None:
        raise PdeforgeError("not started by torchrun (WORLD_SIZE, RANK and LOCAL_RANK are not set)")
    rank, world, local = place
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise PdeforgeError(f"local rank {local} has no GPU ({torch.cuda.device_count()} visible); "
                                "start at most one process per GPU (--nproc_per_node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(minutes=timeout_minutes),
                            device_id=device if device.type == "cuda" else None)
    try:
        yield TorchrunTeam(rank, world, device)
    finally:
        dist.destroy_process_group()
