"""A training run directory: configuration, split, metrics log, checkpoints, and exact resume.

    RUN/run.json           what was trained on what (config, data, fields, split, model), and status
    RUN/metrics.csv        one row per finished epoch
    RUN/test_metrics.json  per-sample test errors of the best checkpoint, and what they were computed from
    RUN/checkpoints/       see :mod:`pdeforge.training._checkpoint`

An interrupted run (no ``"finished"`` status) is resumed automatically from
its latest checkpoint when ``train`` is called again on the same directory
with the same configuration and data; the resumed loss trajectory equals
that of an uninterrupted run.

The test split is evaluated once. ``train`` ends by computing the per-sample
relative L2 and H1 errors of its best checkpoint on the test split (it reports
the test error, so it has to run the model there anyway) and records them in
``test_metrics.json`` with the sha256 of the weights they came from, the
test data's fingerprint (the manifest digest of a pdeforge dataset, which
lists every shard's sha256; path, size and mtime of a single file) and the
sample range. ``evaluate`` reuses those errors when all three still match and
only predicts the few samples it plots; if the weights, the data or the split
changed, or the file is absent (an interrupted run), it computes them again.
Keeping the test evaluation in ``train`` rather than leaving it to
``evaluate`` keeps ``train``'s one-line summary (and the benchmarks that read
``summary["test_rel_l2"]``) meaningful on its own.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from pdeforge import __version__
from pdeforge._threads import adapt_threads
from pdeforge.data import ArraySource
from pdeforge.data._atomic import atomic_path, atomic_write_json
from pdeforge.errors import PdeforgeError
from pdeforge.models import MODELS, MultigridPatching, build_model
from pdeforge.training._checkpoint import load_checkpoint, load_weights, save_checkpoint
from pdeforge.training._config import TrainConfig
from pdeforge.training._data import FieldLayout, SampleSource, Split, is_periodic
from pdeforge.training._loop import EpochRecord, check_shares, fit
from pdeforge.training._normalise import ChannelNormaliser, NormalisedModel
from pdeforge.training._tasks import Rollout, open_task_data, task_split
from pdeforge.training._team import SOLO, Team
from pdeforge.training.losses import loss_for, per_sample_metrics

__all__ = ["RecordedErrors", "RunSpec", "load_run", "per_sample_errors", "read_recorded_errors", "train"]

RUN_FILE = "run.json"
METRICS = "metrics.csv"
TEST_FILE = "test_metrics.json"


def _one_line(path: Path, what: str, exc: ValidationError) -> PdeforgeError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return PdeforgeError(f"{path} is not a {what} ({where or 'file'}: {first['msg']})")


class RunSpec(BaseModel):
    """The contents of ``run.json``: what was trained on what, and whether it finished.

    ``data`` and ``test_data`` are resolved paths; ``layout`` says how the
    named fields became channels; ``split`` holds the sample ranges.
    ``online`` describes an online run (``pdeforge.distributed``: its
    configuration and the samples the normalisers were fitted on); ``None``
    for training on a dataset.
    """

    model_config = ConfigDict(extra="forbid")

    format: Literal["pdeforge.run"] = "pdeforge.run"
    pdeforge_version: str = __version__
    status: Literal["running", "finished"] = "running"
    config: TrainConfig
    data: str
    test_data: str | None
    layout: FieldLayout
    split: Split
    periodic: bool
    online: dict[str, Any] | None = None

    def same_training(self, other: RunSpec) -> bool:
        """Whether ``other`` trains the same model on the same data (so a run may be resumed)."""
        return (self.config == other.config and self.data == other.data and self.test_data == other.test_data
                and self.layout == other.layout and self.split == other.split and self.online == other.online)


def read_spec(run: Path) -> RunSpec | None:
    """The :class:`RunSpec` in ``run/run.json``, ``None`` without one, or a one-line error if it is corrupt."""
    path = Path(run) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return RunSpec.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise _one_line(path, "pdeforge run description", exc) from None
    except (OSError, UnicodeDecodeError):
        raise PdeforgeError(f"{path} is not a pdeforge run description (unreadable)") from None


class RecordedErrors(BaseModel):
    """``test_metrics.json``: per-sample test errors and what they were computed from.

    Valid for the weights whose ``model.safetensors`` has ``weights_sha256``,
    data with ``data_fingerprint`` (:meth:`ArraySource.fingerprint`) and the
    samples ``span``.
    """

    model_config = ConfigDict(extra="forbid")

    weights_sha256: str
    data_fingerprint: str
    span: tuple[int, int]
    rel_l2: list[float]
    h1: list[float]


def best_weights_sha256(run: Path) -> str:
    """The sha256 that the ``best`` checkpoint pointer records for its weights."""
    path = Path(run) / "checkpoints" / "best.json"
    try:
        return json.loads(path.read_text())["sha256"]["model.safetensors"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise PdeforgeError(f"{path} is not a pdeforge checkpoint pointer") from None


def read_recorded_errors(run: Path, source: ArraySource, span: tuple[int, int]) -> RecordedErrors | None:
    """The test errors ``train`` recorded, if they belong to the current best weights, ``source`` and ``span``."""
    path = Path(run) / TEST_FILE
    if not path.is_file():
        return None
    try:
        record = RecordedErrors.model_validate_json(path.read_bytes())
    except (ValidationError, OSError, UnicodeDecodeError):
        return None  # an unusable record is recomputed, not trusted
    current = (best_weights_sha256(run), source.fingerprint(), tuple(span))
    if ((record.weights_sha256, record.data_fingerprint, record.span) != current
            or len(record.rel_l2) != span[1] - span[0]):
        return None
    return record


@torch.no_grad()
def per_sample_errors(model: torch.nn.Module, stream: SampleSource, span: tuple[int, int], batch_size: int, *,
                periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample relative L2 and H1 errors of ``model`` over samples ``span`` of ``stream``.

    Returns
    -------
    (rel_l2, rel_h1)
        Two float arrays ``[span[1] - span[0]]``; see
        :func:`pdeforge.training.losses.per_sample_metrics`.
    """
    model.eval()
    l2, h1 = [], []
    for x, y in stream.batches(*span, batch_size):
        metrics = per_sample_metrics(model(x), y, spatial_dims=stream.layout.spatial_dims, periodic=periodic)
        l2.append(metrics["rel_l2"].cpu())
        h1.append(metrics["rel_h1"].cpu())
    if not l2:
        return np.zeros(0), np.zeros(0)
    return torch.cat(l2).double().numpy(), torch.cat(h1).double().numpy()


def build_network(spec: RunSpec) -> NormalisedModel | Rollout:
    """The untrained network of ``spec`` wrapped in identity normalisers (fitted or loaded later).

    A ``rollout`` task builds a one-step network (``k c -> c`` channels) and
    wraps it in a :class:`~pdeforge.training.Rollout`, which predicts the
    whole horizon by applying it recurrently.

    With ``config.patching``, the model is built for ``in_channels * (levels + 1)``
    channels and wrapped in :class:`~pdeforge.models.MultigridPatching`
    (periodic wrap for periodic data, mirror reflection otherwise), inside the
    normalisers, so that patches see normalised fields.
    """
    c, lay, patching = spec.config, spec.layout, spec.config.patching
    task = c.task
    out_channels = lay.out_channels // task.horizon if task.kind == "rollout" else lay.out_channels
    if patching is not None and task.kind == "rollout":
        raise PdeforgeError("multi-grid patching is not available for rollout tasks")
    if patching is None:
        net = build_model(c.model, lay.in_channels, out_channels, lay.spatial_dims, **c.model_options)
    else:
        if MODELS[c.model].fit is not None:
            raise PdeforgeError(f"model '{c.model}' fits a basis to whole output fields and cannot be patched")
        small = min(lay.space)
        if patching.patches > small:
            raise PdeforgeError(f"patching.patches={patching.patches} is more than the {small} points "
                                "of the data's shortest axis")
        inner = build_model(c.model, lay.in_channels * (patching.levels + 1), lay.out_channels, lay.spatial_dims,
                            **c.model_options)
        net = MultigridPatching(inner, patching.levels, patching.patches, patching.padding,
                                boundary="periodic" if spec.periodic else "reflect", chunks=patching.chunks)
    model = NormalisedModel(net, ChannelNormaliser(lay.in_channels, lay.spatial_dims),
                            ChannelNormaliser(out_channels, lay.spatial_dims))
    if task.kind == "rollout":
        return Rollout(model, task.history, task.horizon, out_channels)
    return model


def load_run(run: Path, *, device: torch.device,
             which: str = "best") -> tuple[RunSpec, NormalisedModel | Rollout]:
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
    """The rows of ``metrics.csv`` (one per finished epoch) as floats; empty without the file."""
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def unfinished_epochs(spec: RunSpec, rows: list[dict]) -> tuple[int, int] | None:
    """``(epochs done, epochs configured)`` of a run that stopped before its last epoch, else ``None``.

    A run is unfinished when ``run.json``'s status is not ``finished`` or
    ``metrics.csv`` holds fewer epochs than configured.

    Parameters
    ----------
    spec
        The run's ``run.json``.
    rows
        Its :func:`read_metrics` rows.

    Returns
    -------
    tuple of int, or None
        Epochs done and configured, or ``None`` for a finished run.
    """
    done, planned = (int(rows[-1]["epoch"]) if rows else 0), spec.config.epochs
    if spec.status == "finished" and done >= planned:
        return None
    return done, planned


def open_run_directory(run: Path, overwrite: bool) -> RunSpec | None:
    """Create, clear (``overwrite``) or reopen the run directory ``run``; the spec of the run it holds, if any.

    Refuses a path that is not a directory, a non-empty directory that holds
    no pdeforge run, and a finished run without ``overwrite``.

    Parameters
    ----------
    run
        The run directory.
    overwrite
        Replace whatever run ``run`` holds.

    Returns
    -------
    RunSpec or None
        The interrupted run's ``run.json``, or ``None`` for a new run.
    """
    if run.exists() and not run.is_dir():
        raise PdeforgeError(f"{run} exists and is not a directory")
    old = read_spec(run) if run.exists() else None
    if old is None:
        if run.exists() and any(run.iterdir()):
            raise PdeforgeError(f"{run} is not empty and holds no pdeforge run; choose another --out")
    elif overwrite:
        shutil.rmtree(run)
        old = None
    elif old.status == "finished":
        raise PdeforgeError(f"{run} already holds a finished run; "
                            "pass --overwrite to replace it or choose another --out")
    run.mkdir(parents=True, exist_ok=True)
    return old


def _prepare(run: Path, spec: RunSpec, overwrite: bool) -> RunSpec | None:
    """Clear or reopen ``run``; return the spec of an interrupted run to resume, else ``None``."""
    old = open_run_directory(run, overwrite)
    if old is None:
        return None
    if not old.same_training(spec):
        raise PdeforgeError(f"{run} holds an interrupted run with a different configuration or data; "
                            f"pass --overwrite to replace it")
    return old if (run / "checkpoints" / "latest.json").exists() else None


def open_sources(data: Path, test_data: Path | None,
                 config: TrainConfig) -> tuple[ArraySource, ArraySource | None, FieldLayout]:
    """Open the training data (and separate test data) once each, as the task's samples; their field layout."""
    source = open_task_data(data, config.task, cache_mb=config.cache_mb)
    test = open_task_data(test_data, config.task, cache_mb=config.cache_mb) if test_data is not None else None
    layout = FieldLayout.of(source, config.inputs, config.outputs)
    if test is not None:
        other = FieldLayout.of(test, config.inputs, config.outputs)
        if ((other.in_channels, other.out_channels, other.spatial_dims)
                != (layout.in_channels, layout.out_channels, layout.spatial_dims)):
            raise PdeforgeError(f"test data {test_data} do not have the fields of {data}")
    return source, test, layout


def fit_normalisers(model: NormalisedModel | Rollout, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    fit_step: Callable[[torch.nn.Module, torch.Tensor], object] | None = None) -> None:
    """Fit the input and output normalisers (and the model table's fit step) in one pass over ``batches``.

    Inputs and outputs share their spatial shape, so one normaliser over the
    concatenated channels ``[x, y]`` gives each channel exactly the statistics
    two separate fits would; a model with a fit step (POD-DeepONet's basis)
    receives the normalised training outputs of that same pass.

    Parameters
    ----------
    model
        The network with its (identity) normalisers.
    batches
        ``(x, y)`` pairs ``[batch, channels, *space]``: the training split's
        batches offline, the first ``min_fill`` buffered samples online.
    fit_step
        The model table's fit step, if the model has one.
    """
    if isinstance(model, Rollout):
        if fit_step is not None:
            raise PdeforgeError("a model with a fit step cannot be rolled out")
        model.fit_normalisers(batches)
        return
    ins, outs = model.inputs.mean.numel(), model.outputs.mean.numel()
    joint = ChannelNormaliser(ins + outs, model.inputs.spatial_dims).to(dtype=model.inputs.mean.dtype)
    kept: list[torch.Tensor] = []

    def joined():
        for x, y in batches:
            if fit_step is not None:
                kept.append(y)
            yield torch.cat([x, y], dim=1)

    joint.fit(joined())
    for part, channels in ((model.inputs, slice(0, ins)), (model.outputs, slice(ins, None))):
        part.mean.copy_(joint.mean[channels])
        part.std.copy_(joint.std[channels])
    if fit_step is not None:
        fit_step(model.model, torch.cat([model.outputs.encode(y) for y in kept]))

DTYPES = {"float32": torch.float32, "float64": torch.float64}
"""``TrainConfig.precision`` to the torch type of weights and batches."""


def _prepare_on_rank0(run: Path, spec: RunSpec, overwrite: bool, team: Team) -> RunSpec | None:
    """:func:`_prepare` on rank 0 only; every rank learns whether to resume, or that rank 0 refused."""
    outcome, resumed, failure = torch.zeros(1, dtype=torch.int64), None, None
    if team.rank == 0:
        try:
            resumed = _prepare(run, spec, overwrite)
            outcome[0] = 1 if resumed is not None else 0
        except PdeforgeError as exc:
            outcome[0], failure = -1, exc
    team.broadcast([outcome])
    if failure is not None:
        raise failure
    if int(outcome[0]) < 0:
        raise PdeforgeError(f"rank 0 refused the run directory {run} (see its message)")
    return spec if int(outcome[0]) == 1 else None


def train(run: Path, config: TrainConfig, data: Path, *, test_data: Path | None = None, device: torch.device,
          overwrite: bool = False, on_epoch: Callable[[EpochRecord], None] | None = None,
          on_step: Callable[[int, float], None] | None = None,
          on_start: Callable[[int, int], None] | None = None, team: Team = SOLO) -> dict:
    """Train (or resume) the run in ``run``; return a summary with the test loss.

    Each dataset is opened once; a dataset that fits in ``config.cache_mb``
    is read from storage once for the whole run (normalisers, epochs, test).
    The test errors of the best checkpoint are written to
    ``test_metrics.json`` for ``evaluate`` to reuse (see the module docstring).
    ``on_start(first_epoch, samples_per_epoch)`` is called once before the
    first step (for progress bars).

    With a ``team`` of several processes (``torchrun``, see
    :mod:`pdeforge.distributed`), every rank calls ``train`` with the same
    arguments and its own ``device``: the run equals a one-process run with
    the same batch size (see :func:`~pdeforge.training.fit`). Every rank
    fits the normalisers (and a model's fit step) in the same pass, then
    takes rank 0's state. Only rank 0 touches ``run`` (it prepares the
    directory and writes ``run.json``, ``metrics.csv``, the checkpoints,
    with every rank's generator state, and ``test_metrics.json``); the other
    ranks only read the latest checkpoint to resume, and the callbacks are
    called on rank 0 only. The summary's test error is rank 0's.
    """
    run = Path(run)
    source, test, layout = open_sources(data, test_data, config)
    split = task_split(source, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test,
                       val_fraction=config.val_fraction, test_fraction=config.test_fraction,
                       external_test=test is not None)
    spec = RunSpec(config=config, data=str(Path(data).resolve()),
                   test_data=str(Path(test_data).resolve()) if test_data else None, layout=layout, split=split,
                   periodic=is_periodic(source))
    check_shares(split, config.batch_size, team.world)  # before the run directory, on every rank
    adapt_threads(force=True)
    torch.manual_seed(config.seed)
    dtype = DTYPES[config.precision]
    # before the run directory: a bad model option leaves nothing behind
    model = build_network(spec).to(device=device, dtype=dtype)
    resumed = _prepare_on_rank0(run, spec, overwrite, team)

    stream = SampleSource(source, layout, device=device, cache_mb=config.cache_mb, workers=config.loader_workers,
                          dtype=dtype)
    try:
        summary = _train_and_test(run, spec, model, stream, test, resumed is not None, team,
                                  on_epoch=on_epoch, on_step=on_step, on_start=on_start)
    finally:
        stream.close()
    team.barrier()  # nobody leaves (and tears the process group down) while rank 0 still tests
    return summary


def _train_and_test(run: Path, spec: RunSpec, model: NormalisedModel | Rollout, stream: SampleSource,
                    test: ArraySource | None, resume: bool, team: Team, *,
                    on_epoch: Callable[[EpochRecord], None] | None, on_step: Callable[[int, float], None] | None,
                    on_start: Callable[[int, int], None] | None) -> dict:
    """The epochs and the test evaluation of :func:`train`, once the run directory is prepared."""
    config, split, main = spec.config, spec.split, team.rank == 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, first_loss, best_val, rows = 0, None, float("inf"), []
    if resume:
        ckpt = load_checkpoint(run, "latest")
        model.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        rng = ckpt.rng_of(team.rank)
        if rng is not None:
            torch.set_rng_state(rng)
        start_epoch, first_loss, best_val = ckpt.state["epoch"], ckpt.state["first_loss"], ckpt.state["best_val"]
        rows = [r for r in read_metrics(run) if r["epoch"] <= start_epoch]
    else:
        # Every rank takes the same pass (a fit step may size buffers, as POD's basis); rank 0's result is then
        # broadcast so that the ranks start from bitwise equal weights, normalisers and basis.
        fit_normalisers(model, stream.batches(*split.train, 256), MODELS[config.model].fit)
        team.broadcast(list(model.state_dict().values()))
    if main:
        atomic_write_json(run / RUN_FILE, spec.model_dump(mode="json"))
    loss = loss_for(config.loss, spatial_dims=spec.layout.spatial_dims, periodic=spec.periodic)

    def record(entry: EpochRecord) -> None:
        nonlocal best_val, first_loss
        first_loss = first_loss if first_loss is not None else entry.train_loss
        adapt_threads()  # a competitor that started meanwhile takes a core: use one thread fewer
        score = entry.val_loss if entry.val_loss == entry.val_loss else entry.train_loss
        better = score < best_val
        best_val = min(best_val, score)
        rngs = team.gather(torch.get_rng_state()) if team.world > 1 else []
        if not main:
            return
        rows.append({k: float(v) for k, v in entry.row().items()})
        _write_metrics(run, rows)
        save_checkpoint(run, epoch=entry.epoch, model=model, optimizer=optimizer,
                        state={"step": entry.step, "first_loss": first_loss, "best_val": best_val}, best=better,
                        rank_rngs=rngs)
        if on_epoch is not None:
            on_epoch(entry)

    if on_start is not None and main:
        on_start(start_epoch, split.sizes()["train"])
    fit(model, optimizer, stream, split, config, loss, start_epoch=start_epoch, first_loss=first_loss,
        on_epoch=[record], on_step=on_step if main else None, team=team)
    summary = {"epochs": config.epochs, "test_rel_l2": float("nan"), "best_val": best_val, "split": split.sizes()}
    if not main:
        return summary

    spec.status = "finished"
    atomic_write_json(run / RUN_FILE, spec.model_dump(mode="json"))
    best_model = build_network(spec).to(device=stream.device, dtype=stream.dtype)
    best_model.load_state_dict(load_weights(run, "best"))
    test_source = test if test is not None else stream.source
    test_stream = stream
    if test is not None:
        test_stream = SampleSource(test, spec.layout, device=stream.device, cache_mb=config.cache_mb,
                                   workers=config.loader_workers, dtype=stream.dtype)
    span = (0, len(test)) if test is not None else split.test
    try:
        l2, h1 = per_sample_errors(best_model, test_stream, span, config.batch_size, periodic=spec.periodic)
    finally:
        test_stream.close()
    atomic_write_json(run / TEST_FILE, RecordedErrors(weights_sha256=best_weights_sha256(run),
                                                  data_fingerprint=test_source.fingerprint(), span=span,
                                                  rel_l2=l2.tolist(), h1=h1.tolist()).model_dump(mode="json"))
    summary["test_rel_l2"] = float(l2.mean()) if len(l2) else 0.0
    return summary
