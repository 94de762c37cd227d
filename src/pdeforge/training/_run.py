"""A training run directory: configuration, split, metrics log, checkpoints, and exact resume.

    RUN/run.json        what was trained on what (config, data, fields, split, model), and status
    RUN/metrics.csv     one row per finished epoch
    RUN/checkpoints/    see :mod:`pdeforge.training._checkpoint`

An interrupted run (no ``"finished"`` status) is resumed automatically from
its latest checkpoint when ``train`` is called again on the same directory
with the same configuration and data; the resumed loss trajectory equals
that of an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from pdeforge import __version__
from pdeforge.data import ArraySource, open_dataset
from pdeforge.data._atomic import atomic_path, atomic_write_json
from pdeforge.errors import PdeforgeError
from pdeforge.models import MODELS, build_model
from pdeforge.training._checkpoint import load_checkpoint, load_weights, save_checkpoint
from pdeforge.training._config import TrainConfig
from pdeforge.training._data import FieldLayout, SampleSource, Split, is_periodic, make_split
from pdeforge.training._loop import EpochRecord, evaluate_loss, fit
from pdeforge.training._normalise import ChannelNormaliser, NormalisedModel
from pdeforge.training.losses import loss_for

__all__ = ["RunSpec", "load_run", "train"]

RUN_FILE = "run.json"
METRICS = "metrics.csv"


@dataclass
class RunSpec:
    """The contents of ``run.json``."""

    config: TrainConfig
    data: str
    test_data: str | None
    layout: FieldLayout
    split: Split
    periodic: bool
    status: str = "running"
    pdeforge_version: str = __version__

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "pdeforge.run",
            "pdeforge_version": self.pdeforge_version,
            "status": self.status,
            "config": self.config.model_dump(mode="json"),
            "data": self.data,
            "test_data": self.test_data,
            "layout": {**asdict(self.layout), "inputs": list(self.layout.inputs), "outputs": list(self.layout.outputs),
                       "space": list(self.layout.space)},
            "split": {k: list(v) for k, v in asdict(self.split).items()},
            "periodic": self.periodic,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> "RunSpec":
        lay = payload["layout"]
        layout = FieldLayout(tuple(lay["inputs"]), tuple(lay["outputs"]), lay["spatial_dims"], lay["in_channels"],
                             lay["out_channels"], tuple(lay["space"]))
        split = Split(**{k: tuple(v) for k, v in payload["split"].items()})
        return cls(TrainConfig.model_validate(payload["config"]), payload["data"], payload["test_data"], layout, split,
                   payload["periodic"], payload["status"], payload["pdeforge_version"])

    def same_training(self, other: "RunSpec") -> bool:
        return (self.config == other.config and self.data == other.data and self.test_data == other.test_data
                and self.layout == other.layout and self.split == other.split)


def read_spec(run: Path) -> RunSpec | None:
    path = Path(run) / RUN_FILE
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
        if payload.get("format") != "pdeforge.run":
            raise KeyError("format")
        return RunSpec.from_json(payload)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError):
        raise PdeforgeError(f"{path} is not a pdeforge run description") from None


def build_network(spec: RunSpec) -> NormalisedModel:
    c, lay = spec.config, spec.layout
    net = build_model(c.model, lay.in_channels, lay.out_channels, lay.spatial_dims, **c.model_options)
    return NormalisedModel(net, ChannelNormaliser(lay.in_channels, lay.spatial_dims),
                           ChannelNormaliser(lay.out_channels, lay.spatial_dims))


def load_run(run: Path, *, device: torch.device, which: str = "best") -> tuple[RunSpec, NormalisedModel]:
    """A trained run's description and its model (weights verified, loaded without executing code)."""
    run = Path(run)
    if not run.is_dir():
        raise PdeforgeError(f"{run} is not a run directory")
    spec = read_spec(run)
    if spec is None:
        raise PdeforgeError(f"{run} is not a pdeforge run (no {RUN_FILE})")
    model = build_network(spec)
    weights = load_weights(run, which)
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise PdeforgeError(f"the checkpoint of {run} does not fit its model '{spec.config.model}'") from None
    return spec, model.to(device).eval()


def _write_metrics(run: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(run / METRICS) as tmp:
        tmp.write_text(buffer.getvalue())


def read_metrics(run: Path) -> list[dict]:
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _prepare(run: Path, spec: RunSpec, overwrite: bool) -> RunSpec | None:
    """Clear or reopen ``run``; return the spec of an interrupted run to resume, else ``None``."""
    if run.exists() and not run.is_dir():
        raise PdeforgeError(f"{run} exists and is not a directory")
    old = read_spec(run) if run.exists() else None
    if old is None:
        if run.exists() and any(run.iterdir()):
            raise PdeforgeError(f"{run} is not empty and holds no pdeforge run; choose another --out")
        run.mkdir(parents=True, exist_ok=True)
        return None
    if overwrite:
        shutil.rmtree(run)
        run.mkdir(parents=True)
        return None
    if old.status == "finished":
        raise PdeforgeError(f"{run} already holds a finished run; pass --overwrite to replace it or choose another --out")
    if not old.same_training(spec):
        raise PdeforgeError(f"{run} holds an interrupted run with a different configuration or data; "
                            f"pass --overwrite to replace it")
    return old if (run / "checkpoints" / "latest.json").exists() else None


def open_sources(data: Path, test_data: Path | None, config: TrainConfig) -> tuple[ArraySource, ArraySource | None, FieldLayout]:
    source = open_dataset(data)
    test = open_dataset(test_data) if test_data is not None else None
    layout = FieldLayout.of(source, config.inputs, config.outputs)
    if test is not None:
        other = FieldLayout.of(test, config.inputs, config.outputs)
        if (other.in_channels, other.out_channels, other.spatial_dims) != (layout.in_channels, layout.out_channels, layout.spatial_dims):
            raise PdeforgeError(f"test data {test_data} do not have the fields of {data}")
    return source, test, layout


def train(run: Path, config: TrainConfig, data: Path, *, test_data: Path | None = None, device: torch.device,
          overwrite: bool = False, on_epoch: Callable[[EpochRecord], None] | None = None,
          on_step: Callable[[int, float], None] | None = None, on_start: Callable[[int, int], None] | None = None) -> dict:
    """Train (or resume) the run in ``run``; return a summary with the test loss.

    ``on_start(first_epoch, samples_per_epoch)`` is called once before the
    first step (for progress bars).
    """
    run = Path(run)
    source, test, layout = open_sources(data, test_data, config)
    split = make_split(len(source), n_train=config.n_train, n_val=config.n_val, n_test=config.n_test,
                       val_fraction=config.val_fraction, test_fraction=config.test_fraction, external_test=test is not None)
    spec = RunSpec(config, str(Path(data).resolve()), str(Path(test_data).resolve()) if test_data else None, layout, split,
                   is_periodic(source))
    resumed = _prepare(run, spec, overwrite)

    torch.manual_seed(config.seed)
    model = build_network(spec).to(device)
    stream = SampleSource(source, layout, device=device, cache_mb=config.cache_mb)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, first_loss, best_val, rows = 0, None, float("inf"), []
    if resumed is not None:
        ckpt = load_checkpoint(run, "latest")
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        if ckpt.rng is not None:
            torch.set_rng_state(ckpt.rng)
        start_epoch, first_loss, best_val = ckpt.state["epoch"], ckpt.state["first_loss"], ckpt.state["best_val"]
        rows = [r for r in read_metrics(run) if r["epoch"] <= start_epoch]
    else:
        model.inputs.fit(x for x, _ in stream.batches(*split.train, 256))
        model.outputs.fit(y for _, y in stream.batches(*split.train, 256))
        if (fit_step := MODELS[config.model].fit) is not None:  # e.g. POD-DeepONet's basis: (normalised) training outputs only
            fit_step(model.model, torch.cat([model.outputs.encode(y) for _, y in stream.batches(*split.train, 256)]))
    atomic_write_json(run / RUN_FILE, spec.to_json())
    loss = loss_for(config.loss, spatial_dims=layout.spatial_dims, periodic=spec.periodic)

    def record(entry: EpochRecord) -> None:
        nonlocal best_val, first_loss
        first_loss = first_loss if first_loss is not None else entry.train_loss
        rows.append({k: float(v) for k, v in entry.row().items()})
        _write_metrics(run, rows)
        score = entry.val_loss if entry.val_loss == entry.val_loss else entry.train_loss
        better = score < best_val
        best_val = min(best_val, score)
        save_checkpoint(run, epoch=entry.epoch, model=model, optimizer=optimizer,
                        state={"step": entry.step, "first_loss": first_loss, "best_val": best_val}, best=better)
        if on_epoch is not None:
            on_epoch(entry)

    if on_start is not None:
        on_start(start_epoch, split.sizes()["train"])
    fit(model, optimizer, stream, split, config, loss, start_epoch=start_epoch, first_loss=first_loss,
        on_epoch=[record], on_step=on_step)

    spec.status = "finished"
    atomic_write_json(run / RUN_FILE, spec.to_json())
    best_model = build_network(spec).to(device)
    best_model.load_state_dict(load_weights(run, "best"))
    test_stream = SampleSource(test, layout, device=device, cache_mb=config.cache_mb) if test is not None else stream
    span = (0, len(test)) if test is not None else split.test
    test_loss = evaluate_loss(best_model, test_stream, span, loss_for("l2", spatial_dims=layout.spatial_dims,
                                                                       periodic=spec.periodic), config.batch_size)
    return {"epochs": config.epochs, "test_rel_l2": test_loss, "best_val": best_val, "split": split.sizes()}
