"""Datasets: the manifest + HDF5 shard format, resumable generation, readers."""

from pdeforge.data._format import FORMAT_NAME, FORMAT_VERSION, Manifest, ShardRecord, read_manifest
from pdeforge.data._generate import generate, plan_manifest
from pdeforge.data._readers import ArraySource, NeuralopFile, PDEBenchFile, PdeforgeDataset, ShardStatus, open_dataset

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ArraySource",
    "Manifest",
    "NeuralopFile",
    "PDEBenchFile",
    "PdeforgeDataset",
    "ShardRecord",
    "ShardStatus",
    "generate",
    "open_dataset",
    "plan_manifest",
    "read_manifest",
]
