"""Checkpoints that can never execute code: safetensors for tensors, JSON for the rest.

Layout inside a run directory::

    checkpoints/epoch-000012/model.safetensors       weights (and normaliser buffers)
    checkpoints/epoch-000012/optimizer.safetensors   optimiser tensors + the RNG state
    checkpoints/epoch-000012/state.json              epoch, step, optimiser scalars, metrics
    checkpoints/latest.json                          pointer: directory + sha256 of every file
    checkpoints/best.json                            pointer to the best validation epoch

A checkpoint directory is complete before the pointer that names it is
atomically replaced, and every file is checked against the pointer's sha256
before it is loaded; a truncated, corrupt or foreign checkpoint is refused
with one line.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pdeforge.data._atomic import atomic_write_json, fsync_directory, sha256_file
from pdeforge.errors import PdeforgeError

__all__ = ["Checkpoint", "load_checkpoint", "save_checkpoint", "load_weights"]

FILES = ("model.safetensors", "optimizer.safetensors", "state.json")


@dataclass
class Checkpoint:
    """A verified checkpoint as loaded by :func:`load_checkpoint`.

    Parameters
    ----------
    model
        The model's ``state_dict`` (weights and buffers).
    optimizer
        The optimiser's ``state_dict``, ready for ``optimizer.load_state_dict``.
    state
        The JSON state saved with it: ``epoch``, ``step`` and the loop's metrics.
    rng
        The CPU random-number-generator state at saving time, if recorded.
    rank_rngs
        The CPU generator states of ranks ``1, 2, ...`` of a data-parallel
        run, by rank (empty for a one-process run).
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    state: dict[str, Any]
    rng: torch.Tensor | None
    rank_rngs: dict[int, torch.Tensor] = field(default_factory=dict)

    def rng_of(self, rank: int) -> torch.Tensor | None:
        """The generator state that rank ``rank`` saved (rank 0's is :attr:`rng`), if recorded."""
        return self.rng if rank == 0 else self.rank_rngs.get(rank)


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": state_dict["param_groups"]}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("state."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entry in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(directory: Path, *, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], best: bool, rank_rngs: Sequence[torch.Tensor] = ()) -> None:
    """Write the checkpoint of ``epoch`` and point ``latest`` (and ``best`` if asked) at it.

    ``rank_rngs`` are the CPU generator states of every rank of a
    data-parallel run, in rank order (rank 0's, this process's, is saved
    anyway); they are kept beside it for :attr:`Checkpoint.rank_rngs`.
    """
    root = Path(directory) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch:06d}"
    target = root / name
    if target.exists():
        shutil.rmtree(target)
    staging = root / f".{name}.partial"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    opt_tensors["rng.cpu"] = torch.get_rng_state()
    for rank, rng in enumerate(rank_rngs):
        if rank:
            opt_tensors[f"rng.cpu.{rank}"] = rng
    save_file(weights, str(staging / "model.safetensors"))
    save_file({k: v.cpu() for k, v in opt_tensors.items()}, str(staging / "optimizer.safetensors"))
    (staging / "state.json").write_text(json.dumps({**state, "epoch": epoch, "optimizer": opt_meta}, indent=1))
    for file in FILES:
        with open(staging / file, "rb+") as fh:
            os.fsync(fh.fileno())
    staging.rename(target)
    fsync_directory(root)
    pointer = {"directory": name, "epoch": epoch, "sha256": {f: sha256_file(target / f) for f in FILES}}
    atomic_write_json(root / "latest.json", pointer)
    if best:
        atomic_write_json(root / "best.json", pointer)
    keep = {json.loads((root / p).read_text())["directory"]
            for p in ("latest.json", "best.json") if (root / p).exists()}
    for old in root.glob("epoch-*"):
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)


def _pointer(run: Path, which: str) -> tuple[Path, dict]:
    path = Path(run) / "checkpoints" / f"{which}.json"
    if not path.is_file():
        raise PdeforgeError(f"{run} has no {which} checkpoint")
    try:
        pointer = json.loads(path.read_text())
        folder = path.parent / pointer["directory"]
        sums = pointer["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise PdeforgeError(f"{path} is not a pdeforge checkpoint pointer") from None
    for file in FILES:
        f = folder / file
        if not f.is_file():
            raise PdeforgeError(f"checkpoint {folder} is incomplete ({file} is missing)")
        if sha256_file(f) != sums.get(file):
            raise PdeforgeError(f"checkpoint file {f} is corrupt or truncated (checksum mismatch)")
    return folder, pointer


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise PdeforgeError(f"{path} is not a readable safetensors file ({exc})") from None


def load_checkpoint(run: Path, which: str = "latest") -> Checkpoint:
    """Load and verify a run's ``latest`` (or ``best``) checkpoint.

    Every file is checked against the sha256 sums in the pointer before it is
    read; a missing, truncated or corrupt file ends in a one-line
    :class:`~pdeforge.errors.PdeforgeError`.

    Parameters
    ----------
    run
        The run directory (holding ``checkpoints/``).
    which
        ``"latest"`` or ``"best"``.

    Returns
    -------
    Checkpoint
        Weights, optimiser state, saved state and RNG state.
    """
    folder, _ = _pointer(run, which)
    opt_tensors = _load_tensors(folder / "optimizer.safetensors")
    try:
        state = json.loads((folder / "state.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise PdeforgeError(f"{folder / 'state.json'} is not valid JSON") from None
    rng = opt_tensors.pop("rng.cpu", None)
    ranks = {int(k.rsplit(".", 1)[1]): opt_tensors.pop(k) for k in list(opt_tensors) if k.startswith("rng.cpu.")}
    optimizer = _unflatten_optimizer(opt_tensors, state.pop("optimizer"))
    return Checkpoint(model=_load_tensors(folder / "model.safetensors"), optimizer=optimizer, state=state, rng=rng,
                      rank_rngs=ranks)


def load_weights(run: Path, which: str = "best") -> dict[str, torch.Tensor]:
    """The verified model weights of a run's ``best`` (or ``latest``) checkpoint."""
    folder, _ = _pointer(run, which)
    return _load_tensors(folder / "model.safetensors")

