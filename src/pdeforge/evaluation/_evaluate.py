"""``evaluate``: accuracy on the test split, zero-shot super-resolution, throughput, plots."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from pdeforge._threads import adapt_threads
from pdeforge.data import PdeforgeDataset, _memory, generate, open_dataset, plan_manifest
from pdeforge.data._atomic import atomic_write_json
from pdeforge.errors import PdeforgeError
from pdeforge.evaluation._lead_time import BANDS, by_step, lead_time_errors, trajectory_steps
from pdeforge.evaluation._plots import (
    plot_error_spectrum,
    plot_lead_time,
    plot_lead_time_spectra,
    plot_lead_time_strip,
    plot_samples,
    plot_training_curves,
)
from pdeforge.grids import Grid
from pdeforge.problems import PROBLEMS
from pdeforge.training import FieldLayout, RunSpec, SampleSource, load_run, read_metrics
from pdeforge.training._run import per_sample_errors, read_recorded_errors
from pdeforge.training._tasks import TrajectoryView, open_task_data

__all__ = ["METRICS_FILE", "SUPERRES_BUDGET_SECONDS", "evaluate_run", "sign_bias", "superres_seconds"]

METRICS_FILE = "metrics.json"
PLOT_SAMPLES = 256
"""Test samples whose predictions feed the plots (the error spectrum averages over them)."""


def _summary(values: np.ndarray) -> dict:
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "std": float(values.std()),
        "max": float(values.max()),
    }


@torch.no_grad()
def _plotted(model, stream: SampleSource, span: tuple[int, int], batch: int,
             keep: int = 3) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
    """The first ``keep`` samples' ``(x, y, prediction)`` and up to ``PLOT_SAMPLES`` truths and predictions."""
    shown: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    truth, pred = [], []
    stop = min(span[1], span[0] + PLOT_SAMPLES)
    for x, y in stream.batches(span[0], stop, batch):
        p = model(x)
        if shown is None:
            shown = (x[:keep].cpu().numpy(), y[:keep].cpu().numpy(), p[:keep].cpu().numpy())
        truth.append(y.cpu().numpy())
        pred.append(p.cpu().numpy())
    if shown is None:
        raise PdeforgeError("there are no samples to plot")
    return shown, np.concatenate(truth), np.concatenate(pred)


def _errors(model, stream: SampleSource, span: tuple[int, int], batch: int, spec: RunSpec):
    """Per-sample relative L2 and H1 errors over ``span``; a one-line error when it is empty."""
    if span[1] <= span[0]:
        raise PdeforgeError("there are no samples to evaluate")
    return per_sample_errors(model, stream, span, batch, periodic=spec.periodic)


def _lead_time(source, spec: RunSpec, truth: np.ndarray, pred: np.ndarray, plots: Path) -> dict | None:
    """Errors against lead time, and their plots, when the output is one trajectory field; else ``None``.

    Computed on the plotted test samples (up to :data:`PLOT_SAMPLES`).
    """
    window_times = source.output_times() if isinstance(source, TrajectoryView) else None
    steps = len(window_times) if window_times is not None else trajectory_steps(source, spec.layout.outputs)
    if steps is None or truth.shape[1] % steps or len(set(spec.layout.space)) != 1:
        return None
    errors = lead_time_errors(truth, pred, steps, spec.layout.spatial_dims)
    times = (window_times if window_times is not None
             else np.asarray(source.coords().get("t", np.arange(1, steps + 1)), dtype=np.float64))
    plot_lead_time(plots / "lead_time.png", times, errors)
    dims = spec.layout.spatial_dims
    first_truth, first_pred = by_step(truth, steps, dims)[:, :, 0], by_step(pred, steps, dims)[:, :, 0]
    plot_lead_time_spectra(plots / "lead_time_spectra.png", times, first_truth, first_pred)
    plot_lead_time_strip(plots / "lead_time_strip.png", times, first_truth[0], first_pred[0])
    return {
        "t": times.tolist(),
        "n": len(truth),
        "rel_l2": errors["rel_l2"].mean(0).tolist(),
        "vrmse": errors["vrmse"].mean(0).tolist(),
        "spectral_mse": {band: errors["spectral_mse"][..., i].mean(0).tolist() for i, band in enumerate(BANDS)},
    }


INFERENCE_PASSES = 5
"""Timed passes of every inference time (after one warm-up pass)."""


def sync_device(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that a wall-clock time covers it; nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def inference_seconds(model: torch.nn.Module, inputs: list[torch.Tensor], device: torch.device,
                      passes: int = INFERENCE_PASSES) -> float:
    """Median wall-clock seconds of one pass of ``model`` over the batches ``inputs`` (eval mode, no grad).

    One untimed pass warms up (allocator, FFT plans, caches), then ``passes``
    passes are timed; the batches are on ``device`` already, so reading data
    is not timed.

    Parameters
    ----------
    model
        The trained model.
    inputs
        Input batches ``[batch, channel, *space]`` covering the test set.
    device
        Their device (CUDA is synchronised around each pass).
    passes
        Timed passes.

    Returns
    -------
    float
        Seconds per pass over all of ``inputs``.
    """
    model.eval()
    for x in inputs:
        model(x)
    times = []
    for _ in range(passes):
        sync_device(device)
        t0 = time.perf_counter()
        for x in inputs:
            model(x)
        sync_device(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _throughput(model, stream: SampleSource, span: tuple[int, int], batch: int, device: torch.device) -> float:
    """Inference samples per second on ``device``, timed on one batch by :func:`inference_seconds`."""
    x, _ = next(stream.batches(span[0], min(span[1], span[0] + batch), batch))
    return len(x) / inference_seconds(model, [x], device)


def _largest(model, space: list[int], stream: SampleSource, span: tuple[int, int], batch: int, source, *,
             device: torch.device) -> dict:
    """Solver and surrogate seconds per sample at the largest resolution evaluated, and their ratio."""
    surrogate = 1.0 / _throughput(model, stream, span, batch, device)
    base = source.base if isinstance(source, TrajectoryView) else source  # a task's samples come from here
    solver = _solver_seconds(base)  # per stored trajectory for a task's windows
    return {"resolution": space, "solver_seconds_per_sample": solver, "surrogate_seconds_per_sample": surrogate,
            "speedup_over_solver": solver / surrogate if solver else None}


def _solver_seconds(source) -> float | None:
    """Median wall-clock seconds the generating solver spent per sample, if the dataset recorded it."""
    if isinstance(source, PdeforgeDataset):
        wall = source.table("diagnostics").get("wall_seconds")
        if wall is not None and len(wall):
            return float(np.median(wall))
    return None


def sign_bias(truth: np.ndarray, pred: np.ndarray) -> dict:
    """How one-signed the error ``pred - truth`` is, over all samples and points.

    Parameters
    ----------
    truth, pred
        Arrays of the same shape ``[n, channel, *space]``.

    Returns
    -------
    dict
        ``mean_signed`` (mean of ``pred - truth``), ``mean_abs`` (mean of
        ``|pred - truth|``), ``ratio`` (their quotient, in ``[-1, 1]``: +-1 when
        the error has one sign everywhere, near 0 for noise), ``positive_fraction``
        (share of points where the prediction is too high) and
        ``relative_to_rms`` (``mean_signed`` over the RMS of ``truth``).

    Examples
    --------
    >>> truth = np.sin(np.linspace(0, 6, 100)).reshape(1, 1, 100)
    >>> round(sign_bias(truth, truth + 0.1)["ratio"], 6)
    1.0
    """
    err = np.asarray(pred, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    mean_abs = float(np.abs(err).mean())
    mean_signed = float(err.mean())
    rms = float(np.sqrt(np.mean(np.square(np.asarray(truth, dtype=np.float64)))))
    return {"mean_signed": mean_signed, "mean_abs": mean_abs,
            "ratio": mean_signed / mean_abs if mean_abs > 0 else 0.0,
            "positive_fraction": float((err > 0).mean()),
            "relative_to_rms": mean_signed / rms if rms > 0 else 0.0}


SUPERRES_BUDGET_SECONDS = 120.0
"""Default bound on the estimated time of generating all super-resolution data of one ``evaluate`` (2 minutes)."""
N_SUPERRES = 32
"""Default samples per super-resolution factor (fewer when the budget asks for it)."""
MIN_SUPERRES = 4
"""Fewer samples than this make no estimate of an error: such a factor is skipped instead."""


def _superres_problem(source: PdeforgeDataset, factor: int, device: torch.device):
    """The generating problem of ``source`` at ``factor`` times its resolution (nothing is allocated)."""
    assert source.problem is not None  # the caller checked that the problem is in PROBLEMS
    cls = PROBLEMS[source.problem]
    config = dict(source.config)
    base = cls(cls.Config.model_validate(config))
    grid = getattr(base, "grid", None)  # the problem families on a grid all name it `grid`
    if not isinstance(grid, Grid):
        raise PdeforgeError(f"problem '{source.problem}' has no grid to refine for super-resolution")
    fine = grid.refine(factor)
    config["resolution"] = fine.shape[0]
    if config.get("solver_resolution"):
        config["solver_resolution"] = getattr(base, "fine_grid", grid).refine(factor).shape[0]
    return cls(cls.Config.model_validate(config), device=device)


def superres_seconds(problem, solver_seconds: float, factor: int) -> float:
    """Estimated solver seconds per sample at ``factor`` times the resolution of data that took ``solver_seconds``.

    A steady problem's solve costs about one unit per grid point (multigrid),
    so ``factor^d`` on a ``d``-dimensional grid (``r^2`` in 2-D); a
    time-dependent one also takes ``factor`` times as many steps, as the
    CFL-limited step shrinks with the grid spacing: ``factor^(d + 1)``.
    """
    ndim = problem.grid.ndim
    power = ndim + 1 if problem.method_kind == "integrator" else ndim
    return solver_seconds * float(factor) ** power


def _superres_count(problem, factor: int, n: int | None, solver: float | None,
                    budget: float | None) -> tuple[int, str | None]:
    """Samples to generate at ``factor`` and, when that is fewer than asked, the line that says why.

    An explicit ``n`` is generated as asked. Otherwise up to
    :data:`N_SUPERRES` samples, as many as fit in ``budget`` seconds by the
    estimate of :func:`superres_seconds`, or none (the factor is skipped)
    when fewer than :data:`MIN_SUPERRES` fit or one sample does not fit in memory.
    """
    if n is not None:
        return n, None
    ask = f"--superres {factor} --n-superres N forces it"
    # A lone sample is solved beside a copy of itself: two samples must fit.
    need, free = 2 * _memory.sample_bytes(problem), _memory.available_memory()
    if need > free * _memory.MEMORY_SHARE:
        return 0, (f"super-resolution x{factor} skipped: a sample at {problem.config.resolution} needs about "
                   f"{_memory.memory_size(need)} of memory (estimate); {_memory.memory_size(free)} is available")
    if solver is None or budget is None:
        return N_SUPERRES, None
    each = superres_seconds(problem, solver, factor)
    fits = int(budget // each) if each > 0 else N_SUPERRES
    if fits >= N_SUPERRES:
        return N_SUPERRES, None
    estimate = f"{N_SUPERRES} samples at {problem.config.resolution} would take about {N_SUPERRES * each:.0f} s"
    if fits < MIN_SUPERRES:
        return 0, f"super-resolution x{factor} skipped: {estimate} (budget {budget:.0f} s); {ask}"
    return fits, (f"super-resolution x{factor} on {fits} samples: {estimate} (budget {budget:.0f} s); "
                  f"--superres {factor} --n-superres {N_SUPERRES} asks for all")


class _Counter:
    """A generation progress callback (samples just finished) that reports ``(phase, done, total)``."""

    def __init__(self, report: Callable[[str, int, int], None], phase: str, total: int) -> None:
        self.report, self.phase, self.total, self.done = report, phase, total, 0

    def __call__(self, finished: int) -> None:
        self.done += finished
        self.report(self.phase, self.done, self.total)


def _superres_dataset(run: Path, source: PdeforgeDataset, problem, factor: int, n: int,
                      progress: Callable[[int], None] | None = None) -> PdeforgeDataset:
    """Fresh test data at ``factor`` times the training resolution, made by the same generator.

    Data made by an earlier ``evaluate`` are reused as they are when their
    manifest is complete and is the one this call would plan.
    """
    out = run / "superres" / f"x{factor}"
    seed = source.manifest.seed + 7919 * factor
    if out.exists():
        try:
            made = PdeforgeDataset(out)
        except PdeforgeError:  # incomplete or unreadable: let generate resume or refuse it
            made = None
        if made is not None and made.manifest.same_dataset(
                plan_manifest(problem, n=n, seed=seed, shard_size=made.manifest.shard_size)):
            return made
        mode = "resume" if made is None else "overwrite"  # complete data of another plan (another n) are replaced
    else:
        mode = "new"
    try:
        generate(problem, n=n, seed=seed, out=out, mode=mode, progress=progress)
    except PdeforgeError as exc:
        if mode != "resume" or "different dataset" not in str(exc):
            raise
        generate(problem, n=n, seed=seed, out=out, mode="overwrite", progress=progress)
    return PdeforgeDataset(out)


def evaluate_run(run: Path, *, device: torch.device, datasets: Sequence[Path] = (), superres: Sequence[int] = (2, 4),
                 n_superres: int | None = None, batch_size: int = 32, status: Callable[[str], None] = lambda s: None,
                 superres_budget: float | None = SUPERRES_BUDGET_SECONDS,
                 progress: Callable[[str, int, int], None] | None = None,
                 notice: Callable[[str], None] = lambda s: None) -> dict:
    """Evaluate a trained run; write ``metrics.json`` and plots into it; return the metrics.

    Super-resolution data are generated for each factor of ``superres``:
    ``n_superres`` samples when it is given (then nothing bounds them but
    the memory check of :func:`~pdeforge.data.generate`), else up to
    :data:`N_SUPERRES`, scaled down or skipped so that the estimated
    generation time (the training data's recorded solver seconds per
    sample, scaled by :func:`superres_seconds`) stays within
    ``superres_budget`` seconds in total (``None``: no bound). What is scaled
    down or skipped is said in one line through ``notice`` and recorded
    under ``superres_skipped``; ``progress(phase, done, total)`` follows the
    generation sample by sample.

    The run's data are opened once (its separate test data once more), every
    shard is checksummed at most once per process, and only the test samples
    are read. The per-sample test errors are the ones ``train`` recorded in
    ``test_metrics.json`` when that record still names the current best
    weights, data and split (see :mod:`pdeforge.training._run`); then only the
    plotted samples are predicted. Otherwise they are computed here.
    """
    run = Path(run)
    adapt_threads(force=True)
    spec, model = load_run(run, device=device)
    plots = run / "plots"
    plots.mkdir(exist_ok=True)
    task, cache = spec.config.task, spec.config.cache_mb
    source = open_task_data(Path(spec.data), task, cache_mb=cache)
    test_source = open_task_data(Path(spec.test_data), task, cache_mb=cache) if spec.test_data else source
    span = (0, len(test_source)) if spec.test_data else spec.split.test
    if span[1] <= span[0]:
        raise PdeforgeError("there are no samples to evaluate")
    recorded = read_recorded_errors(run, test_source, span)
    needed = span if recorded is None else (span[0], min(span[1], span[0] + PLOT_SAMPLES))
    stream = SampleSource(test_source, spec.layout, device=device, cache_mb=spec.config.cache_mb, span=needed)
    status("test split")
    if recorded is not None:
        l2, h1 = np.asarray(recorded.rel_l2), np.asarray(recorded.h1)
    else:
        l2, h1 = _errors(model, stream, span, batch_size, spec)
    shown, truth, pred = _plotted(model, stream, span, batch_size)
    metrics: dict = {
        "test": {"rel_l2": float(l2.mean()), "h1": float(h1.mean()), "n": int(len(l2)),
                 "rel_l2_stats": _summary(l2), "h1_stats": _summary(h1),
                 "reused_from_training": recorded is not None},
        "per_sample": {"rel_l2": l2.tolist(), "h1": h1.tolist()},
        "resolution": list(spec.layout.space),
    }
    plot_samples(plots / "samples.png", *shown, title=f"test samples at {spec.layout.space}")
    lead = _lead_time(test_source, spec, truth, pred, plots)
    if lead is not None:
        metrics["lead_time"] = lead
    if truth[0].ndim - 1 >= 1:
        plot_error_spectrum(plots / "error_spectrum.png", truth, pred)
    rows = read_metrics(run)
    if rows:
        plot_training_curves(plots / "training.png", rows)

    status("throughput")
    speed = _throughput(model, stream, span, batch_size, device)
    base = source.base if isinstance(source, TrajectoryView) else source  # a task's samples come from here
    solver = _solver_seconds(base)  # per stored trajectory for a task's windows
    metrics["throughput"] = {
        "device": str(device),
        "inference_samples_per_second": speed,
        "inference_seconds_per_sample": 1.0 / speed,
        "solver_seconds_per_sample": solver,
        "speedup_over_solver": (solver * speed) if solver else None,
    }

    metrics["test"]["sign"] = sign_bias(truth, pred)
    largest = None  # without super-resolution the training resolution is the largest one: times known already
    metrics["superres"] = {}
    metrics["superres_skipped"] = {}
    if superres and isinstance(base, PdeforgeDataset) and base.problem in PROBLEMS:
        left = superres_budget
        for factor in superres:
            problem = _superres_problem(base, factor, device)
            count, why = _superres_count(problem, factor, n_superres, solver, left)
            if why is not None:
                notice(why)
                metrics["superres_skipped"][f"x{factor}"] = why
            if count == 0:
                continue
            if left is not None and solver is not None and n_superres is None:
                left -= count * superres_seconds(problem, solver, factor)
            phase = f"super-resolution x{factor}"
            status(phase)
            fine = _superres_dataset(run, base, problem, factor, count,
                                     None if progress is None else _Counter(progress, phase, count))
            if task.kind != "map":
                fine = TrajectoryView(fine, task, cache_mb=cache)
            layout = FieldLayout.of(fine, list(spec.layout.inputs), list(spec.layout.outputs))
            fine_stream = SampleSource(fine, layout, device=device)
            l2f, h1f = _errors(model, fine_stream, (0, len(fine)), max(1, batch_size // factor), spec)
            shown_f, truth_f, pred_f = _plotted(model, fine_stream, (0, len(fine)), max(1, batch_size // factor))
            metrics["superres"][f"x{factor}"] = {"resolution": list(layout.space), "rel_l2": float(l2f.mean()),
                                                 "h1": float(h1f.mean()), "n": int(len(l2f)),
                                                 "sign": sign_bias(truth_f, pred_f)}
            if factor == max(superres):
                largest = (list(layout.space), fine_stream, (0, len(fine)), max(1, batch_size // factor), fine)
            plot_samples(plots / f"superres_x{factor}.png", *shown_f,
                         title=f"zero-shot super-resolution: trained at {spec.layout.space}, "
                               f"evaluated at {layout.space}")

    if largest is None:
        metrics["throughput"]["largest_resolution"] = {
            "resolution": list(spec.layout.space), "solver_seconds_per_sample": solver,
            "surrogate_seconds_per_sample": 1.0 / speed, "speedup_over_solver": (solver * speed) if solver else None}
    else:
        status("throughput at the largest resolution")
        metrics["throughput"]["largest_resolution"] = _largest(model, *largest, device=device)

    metrics["datasets"] = {}
    for path in datasets:
        status(f"dataset {path}")
        other = open_dataset(path) if task.kind == "map" else open_task_data(path, task, cache_mb=cache)
        same_names = (set(spec.layout.inputs) <= set(other.input_shapes)
                      and set(spec.layout.outputs) <= set(other.output_shapes))
        # Foreign files name their fields differently: then all their fields are used, in order.
        if same_names:
            layout = FieldLayout.of(other, list(spec.layout.inputs), list(spec.layout.outputs))
        else:
            layout = FieldLayout.of(other)
        if (layout.in_channels, layout.out_channels, layout.spatial_dims) != (
                spec.layout.in_channels, spec.layout.out_channels, spec.layout.spatial_dims):
            raise PdeforgeError(f"{path} has {layout.in_channels} input / {layout.out_channels} output channels in "
                                f"{layout.spatial_dims}-D; the model expects {spec.layout.in_channels} / "
                                f"{spec.layout.out_channels} in {spec.layout.spatial_dims}-D")
        l2d, h1d = _errors(model, SampleSource(other, layout, device=device), (0, len(other)), batch_size, spec)
        metrics["datasets"][str(path)] = {"resolution": list(layout.space), "rel_l2": float(l2d.mean()),
                                          "h1": float(h1d.mean()), "n": int(len(l2d))}
    atomic_write_json(run / METRICS_FILE, metrics)
    return metrics
