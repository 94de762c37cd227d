"""One model of a comparison, in a process of its own: calibrate, train (or resume), evaluate, time, record.

``compare`` starts :func:`model_worker` in a fresh (spawned) process per
model, so that the peak resident memory of that process is the peak of that
model's training alone (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` read
right after training; on CUDA ``torch.cuda.max_memory_allocated``). The
worker reports progress to the parent through a pipe and writes what it
measured to a JSON file of its own (``OUT/measurements/<label>.json``),
atomically, beside the run's own records (``run.json``, ``metrics.csv``,
``metrics.json``).
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pdeforge.data._atomic import atomic_write_json
from pdeforge.errors import PdeforgeError
from pdeforge.evaluation._evaluate import INFERENCE_PASSES, inference_seconds, sync_device

__all__ = ["calibrate_epoch_seconds", "inference_seconds", "model_worker", "read_record"]

CALIBRATION_STEPS = 4
"""Timed optimiser steps of the calibration of a seconds budget (after one warm-up step)."""


def read_record(path: Path) -> dict[str, Any]:
    """The measurements in ``path`` (empty when absent or unreadable: they are then measured again)."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def calibrate_epoch_seconds(config, data: Path, test_data: Path | None, device: torch.device,
                            steps: int = CALIBRATION_STEPS) -> dict[str, float]:
    """Estimate the wall-clock seconds of one training epoch of ``config`` from a few timed steps.

    The network, optimiser, loss and batches are those :func:`pdeforge.training.train`
    uses; one untimed step warms up, then ``steps`` steps (forward, backward,
    AdamW update) and as many validation forward passes are timed. An epoch is
    ``steps_per_epoch`` median steps plus the validation batches.

    Parameters
    ----------
    config
        The run's :class:`~pdeforge.training.TrainConfig`.
    data, test_data
        The training data and the separate test data (if any), as for ``train``.
    device
        Where the run trains.
    steps
        Timed steps.

    Returns
    -------
    dict
        ``seconds_per_step``, ``seconds_per_val_batch``, ``steps_per_epoch``, ``val_batches`` and
        ``seconds_per_epoch``.
    """
    from pdeforge.models import MODELS
    from pdeforge.training._data import SampleSource, is_periodic
    from pdeforge.training._normalise import NormalisedModel
    from pdeforge.training._run import RunSpec, build_network, open_sources
    from pdeforge.training._tasks import task_split
    from pdeforge.training.losses import loss_for

    source, test, layout = open_sources(data, test_data, config)
    split = task_split(source, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test,
                       external_test=test is not None)
    spec = RunSpec(config=config, data=str(Path(data).resolve()), test_data=None, layout=layout, split=split,
                   periodic=is_periodic(source))
    torch.manual_seed(config.seed)
    model = build_network(spec).to(device)
    # enough samples for the timed batches and for a fit step (POD-DeepONet's basis needs a forward pass first)
    span = (split.train[0], min(split.train[1], split.train[0] + max((steps + 1) * config.batch_size, 256)))
    stream = SampleSource(source, layout, device=device, cache_mb=config.cache_mb, span=span)
    batches = list(stream.batches(*span, config.batch_size))
    fit = MODELS[config.model].fit
    if fit is not None and isinstance(model, NormalisedModel):  # any training outputs give a basis for timing
        fit(model.model, torch.cat([model.outputs.encode(y) for _, y in batches]))
    loss = loss_for(config.loss, spatial_dims=layout.spatial_dims, periodic=spec.periodic)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    step_times, val_times = [], []
    for i in range(steps + 1):
        x, y = batches[i % len(batches)]
        sync_device(device)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss(model(x), y).backward()
        optimizer.step()
        sync_device(device)
        if i:
            step_times.append(time.perf_counter() - t0)
            with torch.no_grad():
                t1 = time.perf_counter()
                model(x)
                sync_device(device)
                val_times.append(time.perf_counter() - t1)
    n_train = split.train[1] - split.train[0]
    n_val = split.val[1] - split.val[0]
    per_epoch, val_batches = max(1, math.ceil(n_train / config.batch_size)), math.ceil(n_val / config.batch_size)
    step, val = statistics.median(step_times), statistics.median(val_times)
    return {"seconds_per_step": step, "seconds_per_val_batch": val, "steps_per_epoch": per_epoch,
            "val_batches": val_batches, "seconds_per_epoch": per_epoch * step + val_batches * val}


def _peak_memory(device: torch.device) -> dict[str, Any]:
    """The peak memory of this process's training so far, and what was measured."""
    if device.type == "cuda":
        return {"peak_memory_bytes": int(torch.cuda.max_memory_allocated(device)),
                "memory_kind": "torch.cuda.max_memory_allocated"}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return {"peak_memory_bytes": int(peak * scale), "memory_kind": "peak RSS of the training process"}


def _write(path: Path, record: dict[str, Any]) -> None:
    atomic_write_json(path, record)


def finish_model(job: dict[str, Any], send) -> dict[str, Any]:
    """Bring the run of one model to the end: calibrate, train or resume, evaluate, time, record.

    Parameters
    ----------
    job
        ``run``, ``record`` (the measurements file), ``config`` (a TrainConfig as JSON, its ``epochs`` used as is
        unless ``seconds`` is set), ``data``, ``test_data``, ``device``,
        ``seconds`` (the wall-clock budget, or ``None``).
    send
        ``send(message)``: progress tuples for the parent.

    Returns
    -------
    dict
        The measurements written to ``job["record"]``.
    """
    from pdeforge._device import choose_device
    from pdeforge.evaluation._evaluate import METRICS_FILE, evaluate_run
    from pdeforge.training import TrainConfig, load_run, read_metrics, read_spec, train, unfinished_epochs
    from pdeforge.training._data import SampleSource
    from pdeforge.training._run import best_weights_sha256
    from pdeforge.training._tasks import open_task_data

    run, path = Path(job["run"]), Path(job["record"])
    device = choose_device(job["device"])
    data, test_data = Path(job["data"]), (Path(job["test_data"]) if job["test_data"] else None)
    config = TrainConfig.model_validate(job["config"])
    record = read_record(path)
    spec = read_spec(run) if run.is_dir() else None
    if job["seconds"] is not None:
        if spec is not None:
            epochs = spec.config.epochs  # the run's own record of what was decided
        elif "calibration" in record:
            epochs = record["epochs"]
        else:
            send(("phase", "calibrating"))
            calibration = calibrate_epoch_seconds(config, data, test_data, device)
            epochs = max(1, math.floor(job["seconds"] / calibration["seconds_per_epoch"]))
            record = {"budget_seconds": job["seconds"], "calibration": calibration, "epochs": epochs}
            _write(path, record)
        config = config.model_copy(update={"epochs": epochs})
    if spec is None or unfinished_epochs(spec, read_metrics(run)) is not None:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        train(run, config, data, test_data=test_data, device=device,
              on_start=lambda first, n: send(("start", first, n, config.epochs)),
              on_epoch=lambda r: send(("epoch", r.epoch, config.epochs, r.train_loss)),
              on_step=lambda n, loss: send(("step", n)))
        record = {**record, "epochs": config.epochs, **_peak_memory(device),
                  "training_threads": torch.get_num_threads()}
        _write(path, record)
    if not (run / METRICS_FILE).is_file():
        send(("phase", "evaluating"))
        evaluate_run(run, device=device, superres=())
    send(("phase", "timing inference"))
    spec, model = load_run(run, device=device)
    source = open_task_data(Path(spec.test_data or spec.data), spec.config.task, cache_mb=spec.config.cache_mb)
    span = (0, len(source)) if spec.test_data else spec.split.test
    stream = SampleSource(source, spec.layout, device=device, cache_mb=spec.config.cache_mb, span=span)
    inputs = [x for x, _ in stream.batches(*span, spec.config.batch_size)]
    seconds = inference_seconds(model, inputs, device)
    record = {**record, "epochs": spec.config.epochs, "weights_sha256": best_weights_sha256(run),
              "parameters": sum(p.numel() for p in model.parameters()),  # normalisers hold buffers only
              "inference_ms_per_sample": 1e3 * seconds / max(1, span[1] - span[0]),
              "inference_passes": INFERENCE_PASSES, "inference_threads": torch.get_num_threads(),
              "device": str(device), "test_span": list(span)}
    _write(path, record)
    return record


def model_worker(job: dict[str, Any], conn) -> None:
    """The body of a model's process: :func:`finish_model`, its outcome sent as the last message on ``conn``.

    A :class:`~pdeforge.errors.PdeforgeError` is sent as ``("error", line)``;
    Ctrl-C (which reaches this process with its parent) ends it quietly, the
    run's checkpoints being written atomically.

    Parameters
    ----------
    job
        See :func:`finish_model`.
    conn
        The sending end of a :func:`multiprocessing.Pipe`.
    """
    def send(message) -> None:
        try:
            conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            pass

    try:
        send(("done", finish_model(job, send)))
    except PdeforgeError as exc:
        send(("error", str(exc)))
    except KeyboardInterrupt:
        send(("interrupted",))
    finally:
        conn.close()
