"""``pdeforge train``, ``evaluate`` and ``report``.

Only light modules are imported here; each command imports the layers it
needs (see :mod:`pdeforge.cli._main`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from pdeforge.cli._progress import LazyProgress, stderr
from pdeforge.errors import PdeforgeError

if TYPE_CHECKING:
    from pdeforge.training import Team, TrainConfig

stdout = Console()

DEFAULT_MODEL = "fno"
"""``TrainConfig``'s default model, named in ``--model``'s help without importing the model table (tested equal)."""


def run_training(out: Path, config: TrainConfig, data: Path, test_data: Path | None, device, overwrite: bool,
                 team: Team | None = None) -> dict:
    """Train with a progress bar (epoch, loss, samples/s, ETA); ranks other than 0 of a ``team`` show nothing."""
    from pdeforge.training import SOLO, train

    team = team if team is not None else SOLO
    if team.rank != 0:
        return train(out, config, data, test_data=test_data, device=device, overwrite=overwrite, team=team)
    with LazyProgress("training", total=None, unit="samples") as progress:

        def on_start(first_epoch: int, n_train: int) -> None:
            if first_epoch:
                stderr.print(f"resuming {out} from epoch {first_epoch}")
            progress(0, total=config.epochs * n_train, completed=first_epoch * n_train,
                     description=f"epoch {first_epoch + 1}/{config.epochs}")

        def on_epoch(record) -> None:
            progress(0, status=f"loss {record.train_loss:.4g}"
                     + (f"  val {record.val_loss:.4g}" if record.val_loss == record.val_loss else ""),
                     description=f"epoch {min(record.epoch + 1, config.epochs)}/{config.epochs}")

        summary = train(out, config, data, test_data=test_data, device=device, overwrite=overwrite,
                        on_start=on_start, on_epoch=on_epoch, on_step=lambda n, loss: progress(n), team=team)
    return summary


def run_online_training(out: Path, problem: str, overrides: dict, cfg: TrainConfig, device, overwrite: bool, *,
                        workers: int | None, scheduler: str | None, save_data: Path | None) -> dict:
    """Online training (``--online PROBLEM``) with a progress bar (epoch, loss, buffer fill, samples produced)."""
    from pdeforge.cli._config import build_config
    from pdeforge.distributed import OnlineConfig, OnlineHooks, train_online
    from pdeforge.distributed._cluster import cluster_client
    from pdeforge.problems import PROBLEMS

    if problem not in PROBLEMS:
        raise PdeforgeError(f"unknown problem '{problem}' for --online (known: {', '.join(sorted(PROBLEMS))})")
    problem_cfg = build_config(PROBLEMS[problem].Config, problem, overrides=overrides.pop("problem", None) or {})
    online_values = overrides.pop("online", None) or {}
    online = build_config(OnlineConfig, "online training", overrides={
        **online_values, "problem": problem, "problem_config": problem_cfg.model_dump(mode="json")})
    with (cluster_client(workers, scheduler) as client,
          LazyProgress("online training", total=None, unit="samples") as progress):
        def on_start(first_epoch: int, per_epoch: int) -> None:
            if first_epoch:
                stderr.print(f"resuming {out} from epoch {first_epoch}")
            progress(0, total=cfg.epochs * per_epoch, completed=first_epoch * per_epoch,
                     description=f"epoch {first_epoch + 1}/{cfg.epochs}")

        def on_epoch(record, row: dict) -> None:
            progress(0, status=f"loss {record.train_loss:.4g}  val {record.val_loss:.4g}  "
                               f"buffer {int(row['buffer'])}/{online.capacity}  produced {int(row['produced'])}",
                     description=f"epoch {min(record.epoch + 1, cfg.epochs)}/{cfg.epochs}")

        hooks = OnlineHooks(start=on_start, step=lambda n, loss: progress(n), epoch=on_epoch)
        return train_online(out, online, cfg, device=device, client=client, save_data=save_data,
                            overwrite=overwrite, hooks=hooks)


def train_command(
    out: Annotated[Path, typer.Option("--out", help="run directory (an interrupted run there is resumed)")],
    data: Annotated[Path | None, typer.Option(
        "--data", help="training data: pdeforge dataset, PDEBench .h5 or neuraloperator .pt")] = None,
    online: Annotated[str | None, typer.Option(
        "--online", help="train online on PROBLEM's samples, solved while the model trains (instead of --data); "
                         "--set problem.KEY=VALUE and online.KEY=VALUE configure it")] = None,
    save_data: Annotated[Path | None, typer.Option(
        "--save-data", help="with --online: write the training samples as a pdeforge dataset there")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", help="with --online: produce on an embedded Dask cluster of N worker processes")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="with --online: produce on the Dask cluster at this scheduler address")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", help=f"model name (default: {DEFAULT_MODEL}); `pdeforge models` lists them with their options",
    )] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file of training settings")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override a setting: key=value, e.g. epochs=50, model_options.width=64"),
    ] = None,
    test_data: Annotated[
        Path | None, typer.Option("--test-data", help="separate test data (else a split of --data)")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="require an interrupted run in OUT to continue")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the run in OUT")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda")] = "auto",
) -> None:
    """Train a neural operator on a dataset (or online on samples solved meanwhile); checkpoints every epoch.

    Started by ``torchrun`` (``torchrun --nproc_per_node=N -m pdeforge train ...``),
    the N processes train one model with PyTorch DDP, equal to one process
    with the same batch size; rank 0 alone writes the run and prints.
    """
    from pdeforge._device import choose_device
    from pdeforge.cli._config import build_config, parse_overrides
    from pdeforge.distributed._ddp import torchrun_env, torchrun_team
    from pdeforge.training import TrainConfig, read_spec

    if resume and overwrite:
        raise PdeforgeError("--resume and --overwrite exclude each other")
    if online is not None and data is not None:
        raise PdeforgeError("--online and --data exclude each other (online training solves its own samples)")
    if online is None and data is None:
        raise PdeforgeError("give --data DATASET, or --online PROBLEM to train on samples solved meanwhile")
    if online is None and (save_data is not None or workers is not None or scheduler is not None):
        raise PdeforgeError("--save-data, --workers and --scheduler need --online")
    if online is not None and test_data is not None:
        raise PdeforgeError("--test-data does not apply to --online (use --set online.test_data=DIR)")
    overrides = parse_overrides(set_)
    online_overrides = {k: overrides.pop(k) for k in ("problem", "online") if k in overrides}
    if online is None and online_overrides:
        raise PdeforgeError(f"--set {next(iter(online_overrides))}.KEY=... needs --online")
    cfg = build_config(TrainConfig, "training", file=config, overrides=overrides, explicit={"model": model})
    if resume:
        spec = read_spec(out) if out.exists() else None
        if spec is None or spec.status == "finished":
            raise PdeforgeError(f"there is no interrupted run in {out} to resume")
    if online is not None:
        if torchrun_env() is not None:
            raise PdeforgeError("--online does not run under torchrun: start it as one process "
                                "(its solver workers come from --workers or --scheduler)")
        summary = run_online_training(out, online, online_overrides, cfg, choose_device(device), overwrite,
                                      workers=workers, scheduler=scheduler, save_data=save_data)
        stderr.print(f"trained {cfg.model} online for {summary['epochs']} epochs: test relative L2 "
                     f"{summary['test_rel_l2']:.4f} ({summary['produced']} samples produced, buffer at most "
                     f"{summary['stats']['max_occupancy']}); run in {out}")
        return
    assert data is not None
    if torchrun_env() is not None:
        with torchrun_team(choose_device(device)) as team:
            summary = run_training(out, cfg, data, test_data, team.device, overwrite, team)
        if team.rank != 0:
            return
    else:
        summary = run_training(out, cfg, data, test_data, choose_device(device), overwrite)
    stderr.print(f"trained {cfg.model} for {summary['epochs']} epochs: test relative L2 {summary['test_rel_l2']:.4f} "
                 f"({summary['split']['train']} train samples); run in {out}")


def _print_metrics(metrics: dict) -> None:
    from rich.table import Table

    table = Table(title="evaluation", show_header=True)
    table.add_column("set")
    table.add_column("resolution")
    table.add_column("rel L2")
    table.add_column("rel H1")
    table.add_column("n")
    t = metrics["test"]
    table.add_row("test", "x".join(map(str, metrics["resolution"])), f"{t['rel_l2']:.4f}", f"{t['h1']:.4f}",
                  str(t["n"]))
    for key, v in {**metrics.get("superres", {}), **metrics.get("datasets", {})}.items():
        table.add_row(key, "x".join(map(str, v["resolution"])), f"{v['rel_l2']:.4f}", f"{v['h1']:.4f}", str(v["n"]))
    stdout.print(table)
    lead = metrics.get("lead_time")
    if lead:
        steps = ", ".join(f"t={t:.3g}: {e:.4f}" for t, e in zip(lead["t"], lead["rel_l2"], strict=True))
        stdout.print(f"test rel L2 per snapshot: {steps}", soft_wrap=True)
    th = metrics["throughput"]
    line = f"inference {th['inference_samples_per_second']:.1f} samples/s on {th['device']}"
    if th["speedup_over_solver"]:
        from pdeforge.evaluation._report import speedup_sentence

        line += (f"; {speedup_sentence(th['speedup_over_solver'])} "
                 f"(solver {1e3 * th['solver_seconds_per_sample']:.2f} ms/sample)")
    stdout.print(line)


def _factors(text: str) -> list[int]:
    if text.strip().lower() in ("", "none", "0"):
        return []
    try:
        factors = [int(f) for f in text.split(",")]
    except ValueError:
        raise PdeforgeError(f"--superres expects factors like 2,4 (or none), got '{text}'") from None
    if any(f < 2 for f in factors):
        raise PdeforgeError("--superres factors must be at least 2")
    return factors


def unfinished_note(run: Path) -> str | None:
    """One line saying that the run in ``run`` stopped before its last epoch, or ``None`` if it finished.

    Parameters
    ----------
    run
        A run directory.

    Returns
    -------
    str or None
        The note, with the command that finishes the run (see
        :func:`pdeforge.training.unfinished_epochs`).
    """
    from pdeforge.training import read_metrics, read_spec, unfinished_epochs

    spec = read_spec(run)
    stopped = None if spec is None else unfinished_epochs(spec, read_metrics(run))
    if stopped is None:
        return None
    done, planned = stopped
    return (f"note: this run stopped at epoch {done} of {planned}; rerun `pdeforge train` with the same --out "
            f"(and the same data and settings) to finish it")


def evaluate_command(
    run: Annotated[Path, typer.Argument(help="run directory")],
    data: Annotated[list[Path] | None, typer.Option("--data", help="extra data to evaluate on (repeatable)")] = None,
    superres: Annotated[
        str, typer.Option("--superres", help="resolution factors for zero-shot super-resolution, or none")
    ] = "2,4",
    n_superres: Annotated[int | None, typer.Option(
        "--n-superres", help="samples per super-resolution factor (default: up to 32 within 2 minutes of "
                             "estimated generation; giving it forces that many)")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda")] = "auto",
) -> None:
    """Measure accuracy (rel L2, H1), super-resolution and speed-up; write metrics.json and plots."""
    from pdeforge._device import choose_device
    from pdeforge.evaluation import evaluate_run

    if n_superres is not None and n_superres < 1:
        raise PdeforgeError("--n-superres must be positive")
    note = unfinished_note(run)
    if note is not None:
        stderr.print(note, highlight=False, markup=False, soft_wrap=True)
    with LazyProgress("evaluating", total=None, unit="steps") as progress:
        metrics = evaluate_run(run, device=choose_device(device), datasets=list(data or []),
                               superres=_factors(superres), n_superres=n_superres,
                               status=lambda s: progress(0, status=s), notice=stderr.print,
                               progress=lambda what, done, total: progress(0, description=what, total=total,
                                                                           completed=done))
    _print_metrics(metrics)
    stderr.print(f"metrics and plots written to {run}")


def refine_command(
    run: Annotated[Path, typer.Argument(help="a trained run of model stfno on task spacetime")],
    data: Annotated[Path | None, typer.Option("--data", help="Navier-Stokes data to refine on "
                                                             "(default: the run's test split)")] = None,
    samples: Annotated[int, typer.Option("--samples", help="inputs to refine, each separately")] = 4,
    steps: Annotated[int, typer.Option("--steps", help="Adam steps per input")] = 50,
    lr: Annotated[float, typer.Option("--lr", help="initial learning rate of the fine-tuning")] = 1e-3,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda")] = "auto",
) -> None:
    """Spectral-Refiner: fine-tune the last spectral layer, label-free, on the H^-1 Navier-Stokes residual."""
    from pdeforge._device import choose_device
    from pdeforge.evaluation import refine_run

    with LazyProgress("refining", total=samples, unit="inputs") as progress:
        result = refine_run(run, data=data, samples=samples, steps=steps, lr=lr, device=choose_device(device),
                            progress=lambda done, total: progress(0, total=total, completed=done))
    first, last = result["rel_l2"][0], result["rel_l2"][-1]
    r0, r1 = result["h_minus1"][0], result["h_minus1"][-1]
    stdout.print(f"refined {result['samples']} input(s) over {steps} steps: relative L2 {first:.4g} -> {last:.4g}, "
                 f"H^-1 residual {r0:.4g} -> {r1:.4g} ({result['seconds_per_sample']:.1f} s per input)",
                 highlight=False)
    stderr.print(f"refine.json and plots/refine.png written to {run}")


def report_command(run: Annotated[Path, typer.Argument(help="an evaluated run directory")]) -> None:
    """Write a self-contained HTML report of a run."""
    from pdeforge.evaluation import write_report

    note = unfinished_note(run)
    if note is not None:
        stderr.print(note, highlight=False, markup=False, soft_wrap=True)
    path = write_report(run)
    stdout.print(f"report: {path}")
