"""The pdeforge dataset format: a directory with ``manifest.json`` and HDF5 shards.

Layout (format version 1)::

    DIR/manifest.json
    DIR/shard-00000.h5      samples [0, shard_size)
    DIR/shard-00001.h5      samples [shard_size, 2 shard_size)
    ...

``manifest.json`` names the format and its version, the problem, the
dataset seed, the number of samples, the full generating config, the
pdeforge version, the stored fields and, per finished shard, its path,
first sample index, count and sha256. Each shard is readable with plain
h5py: root attributes ``format``, ``problem``, ``config`` (JSON),
``first_index``, ``count``; groups ``coords/``, ``inputs/``, ``outputs/``,
``params/`` and ``diagnostics/``, every per-sample array with the sample
axis first.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pdeforge.errors import PdeforgeError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "FieldInfo",
    "Manifest",
    "ShardRecord",
    "read_manifest",
    "shard_name",
]

FORMAT_NAME = "pdeforge.dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
GROUPS = ("coords", "inputs", "outputs", "params", "diagnostics")


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.h5"


class ShardRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    first_index: int = Field(ge=0)
    count: int = Field(ge=1)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")


class FieldInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shape: list[int]
    axes: list[str]
    dtype: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str
    format_version: int
    pdeforge_version: str
    problem: str
    n_samples: int = Field(ge=1)
    seed: int = Field(ge=0)
    shard_size: int = Field(ge=1)
    config: dict[str, Any]
    inputs: dict[str, FieldInfo]
    outputs: dict[str, FieldInfo]
    shards: list[ShardRecord] = Field(default_factory=list)
    complete: bool = False

    def planned_shards(self) -> list[tuple[int, int, int]]:
        """``(number, first_index, count)`` of every shard the dataset will have."""
        out = []
        for number, first in enumerate(range(0, self.n_samples, self.shard_size)):
            out.append((number, first, min(self.shard_size, self.n_samples - first)))
        return out

    def digest(self) -> str:
        """sha256 of the manifest's canonical JSON; it lists every shard's sha256, so it names the data."""
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()

    def same_dataset(self, other: "Manifest") -> bool:
        keys = ("format", "format_version", "problem", "n_samples", "seed", "shard_size", "config")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


def read_manifest(directory: Path) -> Manifest:
    """The manifest of a dataset directory, or a one-line :class:`PdeforgeError`."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise PdeforgeError(f"{directory} is not a pdeforge dataset (no {MANIFEST})")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PdeforgeError(f"{path} is unreadable: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise PdeforgeError(f"{path} is not a {FORMAT_NAME} manifest")
    if payload.get("format_version") != FORMAT_VERSION:
        raise PdeforgeError(
            f"{path} has format version {payload.get('format_version')}; this pdeforge reads version {FORMAT_VERSION}"
        )
    try:
        return Manifest.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PdeforgeError(f"{path} is malformed at '{where}': {first['msg']}") from None


def config_json(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True)
