"""The pdeforge dataset format: a directory with ``manifest.json`` and HDF5 shards.

Layout (format version 1)::

    DIR/manifest.json
    DIR/shard-00000.h5      samples [0, shard_size)
    DIR/shard-00001.h5      samples [shard_size, 2 shard_size)
    ...

``manifest.json`` names the format and its version, the problem, the
dataset seed, the number of samples, the full generating config, the
pdeforge version, the stored fields and, per finished shard, its path,
first sample index, count, sha256 and solve time. Each shard is readable with plain
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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    """The file name of shard ``number``: ``shard-00000.h5``, ``shard-00001.h5``, ..."""
    return f"shard-{number:05d}.h5"


class ShardRecord(BaseModel):
    """The manifest's entry for one finished shard.

    Attributes
    ----------
    path
        The shard's file name inside the dataset directory: a plain name, never
        absolute, ``..`` or with a path separator (a manifest cannot point
        outside its dataset).
    first_index
        Index of the shard's first sample in the dataset.
    count
        Number of samples in the shard, ``[first_index, first_index + count)``.
    sha256
        Hex sha256 of the shard file's bytes.
    solve_seconds
        Wall-clock seconds spent drawing and solving the shard's samples
        (``None`` in manifests written before it was recorded). A timing,
        not data: it is kept out of the shard's bytes and out of
        :meth:`Manifest.digest`.
    """

    model_config = ConfigDict(extra="forbid")

    path: str
    first_index: int = Field(ge=0)
    count: int = Field(ge=1)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    solve_seconds: float | None = Field(default=None, ge=0)

    @field_validator("path")
    @classmethod
    def _inside(cls, path: str) -> str:
        """Refuse a path that could leave the dataset directory."""
        if (not path or path in (".", "..") or "/" in path or "\\" in path or "\0" in path
                or Path(path).is_absolute() or Path(path).drive):
            raise ValueError(f"shard path {path!r} is not a file name inside the dataset directory")
        return path


class FieldInfo(BaseModel):
    """A stored field as the manifest describes it: per-sample shape, axis names and dtype."""

    model_config = ConfigDict(extra="forbid")

    shape: list[int]
    axes: list[str]
    dtype: str


class Manifest(BaseModel):
    """The contents of a dataset's ``manifest.json`` (format version 1; see the module docstring).

    Attributes
    ----------
    format, format_version
        ``pdeforge.dataset`` and the version of the layout.
    pdeforge_version
        The pdeforge that wrote the data.
    problem
        The problem's command-line name.
    n_samples, seed, shard_size
        Samples the dataset has when complete, the dataset seed (sample ``i``
        depends only on ``(seed, i)``) and the samples per shard.
    config
        The full generating config, as JSON.
    inputs, outputs
        Every stored field by name.
    shards
        The finished shards, in sample order.
    complete
        Whether every planned shard is finished.
    """

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
        """sha256 of the canonical JSON without timings: it lists every shard's sha256, so it names the data.

        The shards' ``solve_seconds`` are left out: two runs that write the
        same bytes (serial or on a cluster, any batch size) have the same
        digest, and a manifest written before timings were recorded keeps
        its digest.
        """
        payload = self.model_dump(mode="json", exclude={"shards": {"__all__": {"solve_seconds"}}})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def same_dataset(self, other: Manifest) -> bool:
        """Whether ``other`` plans the same data: format, problem, config, ``n_samples``, seed and shard size.

        Versions of pdeforge, finished shards and completeness may differ
        (a resumed run continues such a dataset).
        """
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
    """The config as canonical JSON (sorted keys), as stored in every shard's ``config`` attribute."""
    return json.dumps(config, sort_keys=True)
