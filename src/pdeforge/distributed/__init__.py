"""Scale-out on existing engines: Dask-distributed generation, DDP training, online training.

This layer sits above ``training`` and ``evaluation`` and below ``cli``;
nothing beneath it imports it. It holds no cluster code of its own:
generation runs on ``dask.distributed`` and training on PyTorch DDP
launched by ``torchrun`` (see ``docs/distributed.md``). Online training
(:func:`train_online`) trains on samples that solver processes or Dask
tasks produce while the model trains.

The online-training names need the training layer; they are imported on
first use, so that the Dask generation backend does not load it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pdeforge.distributed._cluster import cluster_client
from pdeforge.distributed._generate import dashboard_message, dask_shard_runner, generate_on_dask

if TYPE_CHECKING:
    from pdeforge.distributed._buffer import BufferStats, SampleBuffer
    from pdeforge.distributed._online import train_online
    from pdeforge.distributed._online_config import OnlineConfig, OnlineHooks
    from pdeforge.distributed._producers import DaskProducers, LocalProducers, default_producers, solve_chunk
    from pdeforge.distributed._stream_data import StreamDataset

_HOMES = {
    "BufferStats": "_buffer",
    "SampleBuffer": "_buffer",
    "train_online": "_online",
    "OnlineConfig": "_online_config",
    "OnlineHooks": "_online_config",
    "DaskProducers": "_producers",
    "LocalProducers": "_producers",
    "default_producers": "_producers",
    "solve_chunk": "_producers",
    "StreamDataset": "_stream_data",
}


def __getattr__(name: str) -> Any:
    """The online-training names, imported from their modules on first use."""
    if name in _HOMES:
        return getattr(importlib.import_module(f"pdeforge.distributed.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BufferStats",
    "cluster_client",
    "dashboard_message",
    "dask_shard_runner",
    "generate_on_dask",
    "DaskProducers",
    "LocalProducers",
    "OnlineConfig",
    "OnlineHooks",
    "SampleBuffer",
    "StreamDataset",
    "default_producers",
    "solve_chunk",
    "train_online",
]
