"""Datasets: the manifest + HDF5 shard format, resumable generation, readers.

The generator (:func:`generate`, :func:`plan_manifest`, and the pieces a
cluster backend plugs into it: :class:`ShardJob`, :data:`ShardRunner`,
:func:`write_shard`, :func:`job_problem`) needs the problems and solvers,
hence torch; it is imported on first use so that reading a pdeforge dataset
(``pdeforge info``) starts without torch.
"""

from typing import TYPE_CHECKING, Any

from pdeforge.data._format import FORMAT_NAME, FORMAT_VERSION, Manifest, ShardRecord, read_manifest
from pdeforge.data._readers import ArraySource, NeuralopFile, PDEBenchFile, PdeforgeDataset, ShardStatus, open_dataset

if TYPE_CHECKING:
    from pdeforge.data._generate import (
        ShardJob,
        ShardRunner,
        generate,
        job_problem,
        plan_manifest,
        solve_samples,
        write_samples_shard,
        write_shard,
    )

_GENERATOR = ("ShardJob", "ShardRunner", "generate", "job_problem", "plan_manifest", "solve_samples",
              "write_samples_shard", "write_shard")


def __getattr__(name: str) -> Any:
    """The generator's names (:func:`generate`, :class:`ShardJob`, ...), imported from it on first use."""
    if name in _GENERATOR:
        from pdeforge.data import _generate

        return getattr(_generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ArraySource",
    "Manifest",
    "NeuralopFile",
    "PDEBenchFile",
    "PdeforgeDataset",
    "ShardJob",
    "ShardRecord",
    "ShardRunner",
    "ShardStatus",
    "generate",
    "job_problem",
    "open_dataset",
    "plan_manifest",
    "read_manifest",
    "solve_samples",
    "write_samples_shard",
    "write_shard",
]
