"""Scale-out on existing engines: Dask-distributed generation, DDP training, online training.

This layer sits above ``training`` and ``evaluation`` and below ``cli``;
nothing beneath it imports it. It holds no cluster code of its own:
generation runs on ``dask.distributed`` and training on PyTorch DDP
launched by ``torchrun`` (see ``docs/distributed.md``). Online training
(:func:`train_online`) trains on samples that solver processes or Dask
tasks produce while the model trains.
"""

from __future__ import annotations

from pdeforge.distributed._buffer import BufferStats, SampleBuffer
from pdeforge.distributed._online import train_online
from pdeforge.distributed._online_config import OnlineConfig, OnlineHooks
from pdeforge.distributed._producers import DaskProducers, LocalProducers, default_producers, solve_chunk
from pdeforge.distributed._stream_data import StreamDataset

__all__ = [
    "BufferStats",
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
