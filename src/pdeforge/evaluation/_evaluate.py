"""``evaluate``: accuracy on the test split, zero-shot super-resolution, throughput, plots."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pdeforge.data import PdeforgeDataset, generate, open_dataset
from pdeforge.data._atomic import atomic_write_json
from pdeforge.errors import PdeforgeError
from pdeforge.evaluation._plots import plot_error_spectrum, plot_samples, plot_training_curves
from pdeforge.problems import PROBLEMS
from pdeforge.training import FieldLayout, RunSpec, SampleSource, load_run, read_metrics
from pdeforge.training.losses import per_sample_metrics

__all__ = ["evaluate_run", "METRICS_FILE"]

METRICS_FILE = "metrics.json"


def _summary(values: np.ndarray) -> dict:
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "std": float(values.std()),
        "max": float(values.max()),
    }


@torch.no_grad()
def _predict(model, stream: SampleSource, span: tuple[int, int], batch: int, spec: RunSpec, keep: int = 3):
    """Per-sample metrics over ``span`` and the first ``keep`` samples' fields for plots."""
    l2, h1, shown = [], [], None
    truth_all, pred_all = [], []
    for x, y in stream.batches(*span, batch):
        p = model(x)
        metrics = per_sample_metrics(p, y, spatial_dims=spec.layout.spatial_dims, periodic=spec.periodic)
        l2.append(metrics["rel_l2"].cpu())
        h1.append(metrics["rel_h1"].cpu())
        if shown is None:
            shown = tuple(t[:keep].cpu().numpy() for t in (x, y, p))
        if sum(len(t) for t in truth_all) < 256:
            truth_all.append(y.cpu().numpy())
            pred_all.append(p.cpu().numpy())
    if not l2:
        raise PdeforgeError("there are no samples to evaluate")
    l2, h1 = torch.cat(l2).numpy(), torch.cat(h1).numpy()
    return l2, h1, shown, np.concatenate(truth_all), np.concatenate(pred_all)


def _throughput(model, stream: SampleSource, span: tuple[int, int], batch: int, device: torch.device) -> float:
    """Inference samples per second on ``device`` (median of five timed passes after a warm-up)."""
    x, _ = next(stream.batches(span[0], min(span[1], span[0] + batch), batch))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.no_grad():
        model(x)
        times = []
        for _ in range(5):
            sync()
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - t0)
    return len(x) / statistics.median(times)


def _solver_seconds(source) -> float | None:
    if isinstance(source, PdeforgeDataset):
        wall = source.table("diagnostics").get("wall_seconds")
        if wall is not None and len(wall):
            return float(np.median(wall))
    return None


def _superres_dataset(run: Path, source: PdeforgeDataset, factor: int, n: int, device: torch.device) -> Path:
    """Fresh test data at ``factor`` times the training resolution, made by the same generator."""
    cls = PROBLEMS[source.problem]
    config = dict(source.config)
    base = cls(cls.Config.model_validate(config))
    fine = base.grid.refine(factor)
    config["resolution"] = fine.shape[0]
    if config.get("solver_resolution"):
        config["solver_resolution"] = config["solver_resolution"] * factor
    problem = cls(cls.Config.model_validate(config), device=device)
    out = run / "superres" / f"x{factor}"
    mode = "resume" if out.exists() else "new"
    generate(problem, n=n, seed=source.manifest.seed + 7919 * factor, out=out, mode=mode)
    return out


def evaluate_run(run: Path, *, device: torch.device, datasets: list[Path] = (), superres: list[int] = (2, 4),
                 n_superres: int = 32, batch_size: int = 32, status: Callable[[str], None] = lambda s: None) -> dict:
    """Evaluate a trained run; write ``metrics.json`` and plots into it; return the metrics."""
    run = Path(run)
    spec, model = load_run(run, device=device)
    plots = run / "plots"
    plots.mkdir(exist_ok=True)
    source = open_dataset(spec.test_data or spec.data)
    span = (0, len(source)) if spec.test_data else spec.split.test
    stream = SampleSource(source, spec.layout, device=device, cache_mb=spec.config.cache_mb)
    status("test split")
    l2, h1, shown, truth, pred = _predict(model, stream, span, batch_size, spec)
    metrics: dict = {
        "test": {"rel_l2": float(l2.mean()), "h1": float(h1.mean()), "n": int(len(l2)),
                 "rel_l2_stats": _summary(l2), "h1_stats": _summary(h1)},
        "per_sample": {"rel_l2": l2.tolist(), "h1": h1.tolist()},
        "resolution": list(spec.layout.space),
    }
    plot_samples(plots / "samples.png", *shown, title=f"test samples at {spec.layout.space}")
    if truth[0].ndim - 1 >= 1:
        plot_error_spectrum(plots / "error_spectrum.png", truth, pred)
    rows = read_metrics(run)
    if rows:
        plot_training_curves(plots / "training.png", rows)

    status("throughput")
    speed = _throughput(model, stream, span, batch_size, device)
    solver = _solver_seconds(open_dataset(spec.data))
    metrics["throughput"] = {
        "device": str(device),
        "inference_samples_per_second": speed,
        "inference_seconds_per_sample": 1.0 / speed,
        "solver_seconds_per_sample": solver,
        "speedup_over_solver": (solver * speed) if solver else None,
    }

    metrics["superres"] = {}
    train_source = open_dataset(spec.data)
    if superres and isinstance(train_source, PdeforgeDataset) and train_source.problem in PROBLEMS:
        for factor in superres:
            status(f"super-resolution x{factor}")
            data = _superres_dataset(run, train_source, factor, n_superres, device)
            fine = open_dataset(data)
            layout = FieldLayout.of(fine, list(spec.layout.inputs), list(spec.layout.outputs))
            fine_stream = SampleSource(fine, layout, device=device)
            l2f, h1f, shown_f, _, _ = _predict(model, fine_stream, (0, len(fine)), max(1, batch_size // factor), spec)
            metrics["superres"][f"x{factor}"] = {"resolution": list(layout.space), "rel_l2": float(l2f.mean()),
                                                 "h1": float(h1f.mean()), "n": int(len(l2f))}
            plot_samples(plots / f"superres_x{factor}.png", *shown_f,
                         title=f"zero-shot super-resolution: trained at {spec.layout.space}, evaluated at {layout.space}")

    metrics["datasets"] = {}
    for path in datasets:
        status(f"dataset {path}")
        other = open_dataset(path)
        same_names = set(spec.layout.inputs) <= set(other.input_shapes) and set(spec.layout.outputs) <= set(other.output_shapes)
        # Foreign files name their fields differently: then all their fields are used, in order.
        layout = FieldLayout.of(other, *((list(spec.layout.inputs), list(spec.layout.outputs)) if same_names else (None, None)))
        if (layout.in_channels, layout.out_channels, layout.spatial_dims) != (
                spec.layout.in_channels, spec.layout.out_channels, spec.layout.spatial_dims):
            raise PdeforgeError(f"{path} has {layout.in_channels} input / {layout.out_channels} output channels in "
                                f"{layout.spatial_dims}-D; the model expects {spec.layout.in_channels} / "
                                f"{spec.layout.out_channels} in {spec.layout.spatial_dims}-D")
        l2d, h1d, _, _, _ = _predict(model, SampleSource(other, layout, device=device), (0, len(other)), batch_size, spec)
        metrics["datasets"][str(path)] = {"resolution": list(layout.space), "rel_l2": float(l2d.mean()),
                                          "h1": float(h1d.mean()), "n": int(len(l2d))}
    atomic_write_json(run / METRICS_FILE, metrics)
    return metrics
