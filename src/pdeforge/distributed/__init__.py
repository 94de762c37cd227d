"""Scale-out on existing engines: Dask-distributed generation, DDP training, online training.

This layer sits above ``training`` and ``evaluation`` and below ``cli``;
nothing beneath it imports it. It holds no cluster code of its own:
generation runs on ``dask.distributed`` and training on PyTorch DDP
launched by ``torchrun`` (see ``docs/distributed.md``).
"""

from __future__ import annotations

from pdeforge.distributed._cluster import cluster_client
from pdeforge.distributed._generate import dashboard_message, dask_shard_runner, generate_on_dask

__all__ = ["cluster_client", "dashboard_message", "dask_shard_runner", "generate_on_dask"]
