"""Online training: the model trains on samples that solver workers produce meanwhile.

Producers (:mod:`pdeforge.distributed._producers`) solve chunk after chunk of
new indices of the training seed stream; the trainer offers every chunk it
takes in to a bounded :class:`~pdeforge.distributed.SampleBuffer` and draws
each optimisation batch from the buffer, so the model sees far more distinct
samples than fit in memory or on disk. Reference: Meyer, Ribés, Raffin et
al., "Training Deep Surrogate Models with Large Scale Online Learning",
ICML 2023 (the Melissa framework): section 3 (producers, buffer, trainer).

The run directory is that of offline training (``run.json`` with an
``online`` section, ``metrics.csv`` with the buffer's columns,
``test_metrics.json``, ``checkpoints/``), plus ``val_data/`` and
``test_data/``: the fixed validation and test sets, separately seeded
pdeforge datasets solved once at the start, so that ``pdeforge evaluate``
and ``report`` work on an online run as on any other.

Resume: every epoch's checkpoint records the buffer (the indices it holds,
its generators' states, its statistics) and the next index of the stream. A
resumed run solves the held indices again to rebuild the buffer (samples
are a pure function of ``(seed, index)``), and its producers continue from
the recorded index: the trainer never takes in an index twice.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from pydantic import ValidationError

from pdeforge._threads import adapt_threads
from pdeforge.data import ArraySource, open_dataset
from pdeforge.data._atomic import atomic_write_json
from pdeforge.distributed._buffer import SampleBuffer
from pdeforge.distributed._online_config import OnlineConfig, OnlineHooks
from pdeforge.distributed._producers import Chunk, DaskProducers, LocalProducers, default_producers
from pdeforge.distributed._stream_data import StreamDataset
from pdeforge.errors import PdeforgeError
from pdeforge.models import MODELS
from pdeforge.problems import PROBLEMS, Problem
from pdeforge.training import (
    EpochRecord,
    FieldLayout,
    SampleSource,
    Split,
    TrainConfig,
    learning_rate,
    load_checkpoint,
    load_weights,
    loss_for,
    read_metrics,
    run_epochs,
    save_checkpoint,
)
from pdeforge.training._loop import evaluate_loss
from pdeforge.training._run import (
    RUN_FILE,
    TEST_FILE,
    RecordedErrors,
    RunSpec,
    _write_metrics,
    best_weights_sha256,
    build_network,
    fit_normalisers,
    open_run_directory,
    per_sample_errors,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["train_online"]

METRICS = "metrics.csv"


def _problem(online: OnlineConfig) -> Problem:
    if online.problem not in PROBLEMS:
        raise PdeforgeError(f"unknown problem '{online.problem}' (known: {', '.join(sorted(PROBLEMS))})")
    cls = PROBLEMS[online.problem]
    try:
        config = cls.Config.model_validate(online.problem_config)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PdeforgeError(f"invalid problem setting '{'.'.join(map(str, first['loc']))}' of {online.problem}: "
                            f"{first['msg']}") from None
    return cls(config, device="cpu")


def _fixed_set(run: Path, given: str | None, name: str, problem: Problem, n: int, seed: int) -> Path:
    """The directory of a fixed set: the one given, or ``run/name`` solved once (kept across resumes)."""
    if given is not None:
        return Path(given).resolve()
    from pdeforge.data import generate

    out = run / name
    generate(problem, n=n, seed=seed, out=out, mode="resume")
    return out.resolve()


def _columns_to_tensors(layout: FieldLayout, columns: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = {k.split("/", 1)[1]: v for k, v in columns.items() if k.startswith("inputs/")}
    outputs = {k.split("/", 1)[1]: v for k, v in columns.items() if k.startswith("outputs/")}
    x, y = layout.stack(inputs, layout.inputs), layout.stack(outputs, layout.outputs)
    for what, t in (("input", x), ("output", y)):
        if not bool(torch.isfinite(t).all()):
            raise PdeforgeError(f"a produced sample has non-finite {what} values (NaN or Inf)")
    return x.to(device), y.to(device)


def _rebuild(buffer: SampleBuffer, state: dict, problem: Problem, seed: int, chunk: int, layout: FieldLayout,
             device: torch.device) -> None:
    """Solve the held indices again (contiguous runs, ``chunk`` at a time) and restore the buffer's state."""
    from pdeforge.data import solve_samples

    held = list(state["indices"])
    xs: dict[int, torch.Tensor] = {}
    ys: dict[int, torch.Tensor] = {}
    order = sorted(held)
    k = 0
    while k < len(order):
        stop = k + 1
        while stop < len(order) and order[stop] == order[stop - 1] + 1 and stop - k < chunk:
            stop += 1
        columns, _ = solve_samples(problem, seed=seed, start=order[k], stop=order[stop - 1] + 1)
        x, y = _columns_to_tensors(layout, columns, device)
        for j, index in enumerate(order[k:stop]):
            xs[index], ys[index] = x[j], y[j]
        k = stop
    if held:
        buffer.restore(state, torch.stack([xs[i] for i in held]), torch.stack([ys[i] for i in held]))


def train_online(run: Path, online: OnlineConfig, config: TrainConfig, *, device: torch.device,
                 client: Client | None = None, save_data: Path | None = None, overwrite: bool = False,
                 hooks: OnlineHooks | None = None) -> dict:
    """Train (or resume) an online run in ``run``; return a summary with the test error and the buffer statistics.

    Parameters
    ----------
    run
        The run directory (an interrupted online run there with the same settings is resumed).
    online, config
        The online settings and the training settings (``config.epochs`` epochs
        of ``online.steps(config.batch_size)`` steps).
    device
        Where the model and the buffer live.
    client
        A Dask client to produce on (``None``: local producer processes).
    save_data
        Write every training sample taken in as a pdeforge dataset there.
    overwrite
        Replace a run already in ``run``.
    hooks
        Observers (progress, tests).

    Returns
    -------
    dict
        ``epochs``, ``test_rel_l2``, ``best_val``, ``produced`` (samples taken
        in), ``next_index`` and the buffer's ``stats``.
    """
    run, hooks = Path(run), hooks or OnlineHooks()
    problem = _problem(online)
    online = online.model_copy(update={"problem_config": problem.config.model_dump(mode="json")})
    if config.batch_size > online.capacity:
        raise PdeforgeError(f"batch_size {config.batch_size} exceeds the buffer capacity {online.capacity}")
    adapt_threads(force=True)
    old = open_run_directory(run, overwrite)
    try:
        spec, val, test = _describe(run, online, config, problem, save_data)
        if old is not None and not old.same_training(spec):
            raise PdeforgeError(f"{run} holds an interrupted run with different settings; "
                                "pass --overwrite to replace it")
        torch.manual_seed(config.seed)
        model = build_network(spec).to(device)  # a bad model option is refused here
    except BaseException:
        if old is None:  # a new run that could not start leaves nothing behind
            for name, given in (("val_data", online.val_data), ("test_data", online.test_data)):
                if given is None:
                    shutil.rmtree(run / name, ignore_errors=True)
        raise
    layout = spec.layout
    resumed = old is not None and (run / "checkpoints" / "latest.json").exists()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    buffer = SampleBuffer(online.capacity, (layout.in_channels, *layout.space), (layout.out_channels, *layout.space),
                          policy=online.policy, seed=config.seed, device=device)
    start_epoch, first_loss, best_val, rows, next_index = 0, None, float("inf"), [], 0
    if resumed:
        ckpt = load_checkpoint(run, "latest")
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        if ckpt.rng is not None:
            torch.set_rng_state(ckpt.rng)
        start_epoch, first_loss, best_val = ckpt.state["epoch"], ckpt.state["first_loss"], ckpt.state["best_val"]
        next_index = ckpt.state["next_index"]
        _rebuild(buffer, ckpt.state["buffer"], problem, online.seed, online.chunk, layout, device)
        rows = [r for r in read_metrics(run) if r["epoch"] <= start_epoch]
    atomic_write_json(run / RUN_FILE, spec.model_dump(mode="json"))
    writer = (StreamDataset(save_data, problem, seed=online.seed, chunk=online.chunk,
                            resume_from=next_index if old is not None else None) if save_data is not None else None)
    per_epoch = online.steps(config.batch_size)
    loss = loss_for(config.loss, spatial_dims=layout.spatial_dims, periodic=spec.periodic)
    val_stream = SampleSource(val, layout, device=device, cache_mb=config.cache_mb)
    producers = _producers(online, client, next_index)

    def take_in(item: Chunk) -> tuple[torch.Tensor, torch.Tensor]:
        first, columns, seconds = item
        x, y = _columns_to_tensors(layout, columns, device)
        buffer.add(list(range(first, first + len(x))), x, y)
        if writer is not None:
            writer.add(first, columns, seconds)
        if hooks.chunk is not None:
            hooks.chunk(first, len(x))
        return x, y

    def pump() -> None:
        for _ in range(online.chunks_per_step):
            item = producers.take(block=False)
            if item is None:
                return
            take_in(item)

    def batches(epoch: int):
        for _ in range(per_epoch):
            pump()
            yield buffer.draw(config.batch_size)

    def objective(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = batch
        return loss(model(x), y), len(x)

    def record(entry: EpochRecord) -> None:
        nonlocal best_val, first_loss
        first_loss = first_loss if first_loss is not None else entry.train_loss
        stats = buffer.stats
        row = {**{k: float(v) for k, v in entry.row().items()}, "produced": float(producers.next_index),
               "unique": float(stats.unique), "buffer": float(len(buffer)), "max_occupancy": float(stats.max_occupancy),
               "draws": float(stats.draws), "max_draws": float(stats.max_draws)}
        adapt_threads()  # a competitor that started meanwhile takes a core: use one thread fewer
        rows.append(row)
        _write_metrics(run, rows)
        if writer is not None:
            writer.flush()  # before the checkpoint: the manifest never lacks a sample below its next index
        score = entry.val_loss
        better = score < best_val
        best_val = min(best_val, score)
        save_checkpoint(run, epoch=entry.epoch, model=model, optimizer=optimizer,
                        state={"step": entry.step, "first_loss": first_loss, "best_val": best_val,
                               "next_index": producers.next_index, "buffer": buffer.state()}, best=better)
        if hooks.epoch is not None:
            hooks.epoch(entry, row)

    with producers:
        if hooks.producers is not None:
            hooks.producers(producers)
        if not resumed:
            # Fill to min_fill; the normalisers see exactly the first min_fill samples, indices [0, min_fill).
            xs, ys = [], []
            while len(buffer) < online.min_fill:
                item = producers.take(block=True)
                if item is None:
                    raise PdeforgeError("the producers stopped before the buffer reached min_fill")
                x, y = take_in(item)
                xs.append(x)
                ys.append(y)
            fit_normalisers(model, [(torch.cat(xs)[: online.min_fill], torch.cat(ys)[: online.min_fill])],
                            MODELS[config.model].fit)
        if hooks.buffer is not None:
            hooks.buffer(buffer)
        if hooks.start is not None:
            hooks.start(start_epoch, per_epoch * config.batch_size)
        run_epochs(model, optimizer, batches, objective, lambda step: learning_rate(config, step, per_epoch),
                   epochs=config.epochs, steps_per_epoch=per_epoch, start_epoch=start_epoch, first_loss=first_loss,
                   divergence_factor=config.divergence_factor,
                   validate=lambda: evaluate_loss(model, val_stream, (0, len(val)), loss, config.batch_size),
                   on_epoch=[record], on_step=hooks.step, hint="lower the learning rate (--set lr=...)")
        produced = producers.next_index
    if writer is not None:
        writer.finish()
    return _finish(run, spec, layout, test, device, config, best_val, produced, buffer)


def _producers(online: OnlineConfig, client: Client | None, start: int) -> LocalProducers | DaskProducers:
    """The producers of the training stream from index ``start``: Dask tasks on ``client``, else local processes."""
    config = json.dumps(online.problem_config)
    if client is not None:
        workers = online.producers or max(1, len(client.scheduler_info().get("workers", {})))
        return DaskProducers(client, online.problem, config, online.seed, start=start, stop=online.max_solver_calls,
                             chunk=online.chunk, in_flight=workers * (online.queue_size + 1))
    return LocalProducers(online.problem, config, online.seed, start=start, stop=online.max_solver_calls,
                          chunk=online.chunk, producers=online.producers or default_producers(),
                          queue_size=online.queue_size)


def _describe(run: Path, online: OnlineConfig, config: TrainConfig, problem: Problem,
              save_data: Path | None) -> tuple[RunSpec, ArraySource, ArraySource]:
    """Solve (or reopen) the fixed validation and test sets; the run's ``run.json`` contents and both sets."""
    val_path = _fixed_set(run, online.val_data, "val_data", problem, online.n_val, online.val_seed)
    test_path = _fixed_set(run, online.test_data, "test_data", problem, online.n_test, online.test_seed)
    val, test = open_dataset(val_path), open_dataset(test_path)
    description = {"config": online.model_dump(mode="json"), "normalised_on": [0, online.min_fill],
                   "save_data": str(Path(save_data).resolve()) if save_data is not None else None}
    spec = RunSpec(config=config, data=str(val_path), test_data=str(test_path), layout=_layout(val, test, config),
                   split=Split((0, 0), (0, len(val)), (0, 0)), periodic=PROBLEMS[online.problem].periodic,
                   online=description)
    return spec, val, test


def _layout(val: ArraySource, test: ArraySource, config: TrainConfig) -> FieldLayout:
    layout = FieldLayout.of(val, config.inputs, config.outputs)
    other = FieldLayout.of(test, config.inputs, config.outputs)
    if (other.in_channels, other.out_channels, other.space) != (layout.in_channels, layout.out_channels, layout.space):
        raise PdeforgeError(f"the test data {test.path} do not have the fields of the validation data {val.path}")
    return layout


def _finish(run: Path, spec: RunSpec, layout: FieldLayout, test: ArraySource, device: torch.device,
            config: TrainConfig, best_val: float, produced: int, buffer: SampleBuffer) -> dict:
    """Mark the run finished, record the best checkpoint's per-sample test errors, summarise."""
    spec.status = "finished"
    atomic_write_json(run / RUN_FILE, spec.model_dump(mode="json"))
    best = build_network(spec).to(device)
    best.load_state_dict(load_weights(run, "best"))
    span = (0, len(test))
    stream = SampleSource(test, layout, device=device, cache_mb=config.cache_mb)
    l2, h1 = per_sample_errors(best, stream, span, config.batch_size, periodic=spec.periodic)
    atomic_write_json(run / TEST_FILE, RecordedErrors(weights_sha256=best_weights_sha256(run),
                                                      data_fingerprint=test.fingerprint(), span=span,
                                                      rel_l2=l2.tolist(), h1=h1.tolist()).model_dump(mode="json"))
    return {"epochs": config.epochs, "test_rel_l2": float(l2.mean()), "best_val": best_val, "produced": produced,
            "next_index": produced, "stats": buffer.stats.as_dict()}
