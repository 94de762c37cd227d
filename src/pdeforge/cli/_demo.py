"""``pdeforge demo``: the whole pipeline on a small Darcy problem, in a few minutes on a laptop CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from pdeforge.cli._progress import LazyProgress, stderr
from pdeforge.cli._train_commands import _print_metrics, run_training

DEMO_DATA = {"resolution": 33, "n": 1200, "seed": 0}
DEMO_TRAIN_OPTIONS = {
    "model": "fno",
    "model_options": {"modes": 12, "width": 32, "layers": 4},
    "epochs": 16,
    "batch_size": 20,
    "lr": 3e-3,
    "n_val": 100,
    "n_test": 100,
}
"""The demo's training settings (a :class:`~pdeforge.training.TrainConfig`'s fields)."""
TARGET = 0.05


def __getattr__(name: str) -> Any:
    """``DEMO_TRAIN``, the demo's :class:`~pdeforge.training.TrainConfig`, built on first use (it imports torch)."""
    if name == "DEMO_TRAIN":
        from pdeforge.training import TrainConfig

        return TrainConfig(**DEMO_TRAIN_OPTIONS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def demo_command(
    out: Annotated[
        Path, typer.Option("--out", help="directory for the data, the run and the report")
    ] = Path("pdeforge-demo"),
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda")] = "auto",
) -> None:
    """Generate Darcy data, train an FNO (~2-3 min on 2 CPU cores), evaluate, and write the report.

    Rerunning reuses what is already done (finished data and run) and resumes
    what was interrupted.
    """
    from pdeforge._device import choose_device
    from pdeforge.data import generate, read_manifest
    from pdeforge.evaluation import evaluate_run, write_report
    from pdeforge.problems import Darcy, DarcyConfig
    from pdeforge.training import TrainConfig, read_spec

    dev = choose_device(device)
    train_config = TrainConfig(**DEMO_TRAIN_OPTIONS)
    t0 = time.perf_counter()
    data = out / "data"
    problem = Darcy(DarcyConfig(resolution=DEMO_DATA["resolution"]), device=dev)
    done = data.exists() and (data / "manifest.json").exists() and read_manifest(data).complete
    if done:
        stderr.print(f"using the dataset in {data}")
    else:
        r = DEMO_DATA["resolution"]
        stderr.print(f"1/3 generating {DEMO_DATA['n']} Darcy samples at {r}x{r} into {data}")
        with LazyProgress("darcy", total=DEMO_DATA["n"]) as progress:
            generate(problem, n=DEMO_DATA["n"], seed=DEMO_DATA["seed"], out=data,
                     mode="resume" if data.exists() else "new", progress=progress)
    run = out / "run"
    spec = read_spec(run) if run.exists() else None
    if spec is not None and spec.status == "finished":
        stderr.print(f"using the trained run in {run}")
    else:
        stderr.print(f"2/3 training an FNO ({train_config.epochs} epochs) into {run}")
        run_training(run, train_config, data, None, dev, overwrite=False)
    stderr.print("3/3 evaluating (test split, zero-shot super-resolution at 2x and 4x, speed) and writing the report")
    with LazyProgress("evaluating", total=None, unit="steps") as progress:
        metrics = evaluate_run(run, device=dev, superres=[2, 4], n_superres=32, status=lambda s: progress(0, status=s),
                               notice=stderr.print,
                               progress=lambda what, done, total: progress(0, description=what, total=total,
                                                                           completed=done))
    report = write_report(run, target=TARGET)
    _print_metrics(metrics)
    error = metrics["test"]["rel_l2"]
    verdict = "meets" if error <= TARGET else "MISSES"
    stderr.print(f"test relative L2 {error:.4f} ({verdict} the demo's target {TARGET}); "
                 f"finished in {time.perf_counter() - t0:.0f} s")
    stderr.print(f"report: {report.resolve()}")
