"""Spectral-Refiner: label-free fine-tuning of an ST-FNO's last spectral layer on the PDE residual.

Cao, Brarda, Li, Xi, "Spectral-Refiner: Accurate Fine-Tuning of
Spatiotemporal Fourier Neural Operator for Turbulent Flows", ICLR 2025: an
ST-FNO trained briefly is refined, for each evaluation input separately, by
replacing its last spectral convolution with an untruncated copy (trained
low modes copied in, new modes zero: the same function) and fine-tuning only
that copy on the :math:`H^{-1}` norm of the Navier-Stokes residual of the
predicted trajectory (:class:`~pdeforge.problems.navier_stokes.VorticityResidual`,
consistent with pdeforge's own solver). No target is used; the truth only
measures the error along the way.

Steps are Adam steps with a safeguard: a step that raises the residual is
undone and the learning rate halved, so the residual recorded against the
step never increases (the refined trajectory is never further from solving
the equation than the trained one).

``RUN/refine.json`` records, per fine-tuning step, the mean relative L2
error against the truth and the mean :math:`H^{-1}` residual over the
refined samples, and ``RUN/plots/refine.png`` plots both.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pdeforge._threads import adapt_threads
from pdeforge.data import PdeforgeDataset
from pdeforge.data._atomic import atomic_write_json
from pdeforge.errors import PdeforgeError
from pdeforge.evaluation._plots import plot_refinement
from pdeforge.models import STFNO
from pdeforge.problems.navier_stokes import NavierStokes, NavierStokesConfig, VorticityResidual
from pdeforge.solvers import choose_method
from pdeforge.training import SampleSource, load_run
from pdeforge.training._normalise import NormalisedModel
from pdeforge.training._tasks import TrajectoryView, open_task_data
from pdeforge.training.losses import relative_lp_error

__all__ = ["REFINE_FILE", "refine_run", "refine_sample"]

REFINE_FILE = "refine.json"


def _relative_l2(pred: torch.Tensor, truth: torch.Tensor) -> float:
    return float(relative_lp_error(pred.detach(), truth, 2.0).mean())


def refine_sample(model: NormalisedModel, x: torch.Tensor, residual: VorticityResidual, *, steps: int,
                  lr: float, truth: torch.Tensor | None = None) -> dict[str, list[float]]:
    """Fine-tune ``model``'s untruncated last layer on one input ``x [1, k, *space]``; the history of the run.

    ``model`` (a normalised :class:`~pdeforge.models.STFNO`) is changed in
    place: its last spectral convolution becomes the untruncated copy and
    ends at the weights of the smallest residual seen. The residual is that
    of the trajectory ``[x's last snapshot, prediction]``.

    Parameters
    ----------
    model
        The normalised ST-FNO of a ``spacetime`` run.
    x
        One history ``[1, k, *space]`` (physical units).
    residual
        The residual on the snapshots' grid and interval.
    steps
        Adam steps.
    lr
        Initial learning rate.
    truth
        The true future ``[1, m, *space]``, to record the error (never used to fine-tune).

    Returns
    -------
    dict
        ``h_minus1`` (and ``rel_l2`` with ``truth``): ``steps + 1`` values, before and after every step.
    """
    net = model.model
    if not isinstance(net, STFNO):
        raise PdeforgeError(f"Spectral-Refiner fine-tunes an ST-FNO (model 'stfno'), not {type(net).__name__}")
    for p in model.parameters():
        p.requires_grad_(False)
    wide = net.untruncate(tuple(x.shape[2:]))
    params = list(wide.parameters())
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(params, lr=lr)

    def objective() -> tuple[torch.Tensor, torch.Tensor]:
        pred = model(x)
        return residual.h_minus1(torch.cat([x[:, -1:], pred], dim=1)).pow(2).mean(), pred

    history: dict[str, list[float]] = {"h_minus1": []}
    if truth is not None:
        history["rel_l2"] = []
    best, best_pred = float("inf"), torch.zeros(0)
    best_params: list[torch.Tensor] = []
    best_grads: list[torch.Tensor | None] = []
    for step in range(steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss, pred = objective()
        value = float(loss.detach())
        if value <= best:
            best, best_pred = value, pred.detach()
            if step < steps:
                loss.backward()
            best_params = [p.detach().clone() for p in params]
            best_grads = [None if p.grad is None else p.grad.clone() for p in params]
        else:  # undo the step that raised the residual, retry from the best point with half the rate
            with torch.no_grad():
                for p, kept, grad in zip(params, best_params, best_grads, strict=True):
                    p.copy_(kept)
                    p.grad = None if grad is None else grad.clone()
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
        history["h_minus1"].append(best ** 0.5)
        if truth is not None:
            history["rel_l2"].append(_relative_l2(best_pred, truth))
        if step < steps:
            optimizer.step()
    with torch.no_grad():
        for p, kept in zip(params, best_params, strict=True):
            p.copy_(kept)
    return history


def _residual_for(view: TrajectoryView, x: torch.Tensor, device: torch.device) -> VorticityResidual:
    base = view.base
    if not isinstance(base, PdeforgeDataset) or base.problem != "navier-stokes":
        raise PdeforgeError(f"Spectral-Refiner needs Navier-Stokes data (the residual is that equation's); "
                            f"{base.describe()} is {base.problem or 'foreign data'}")
    gaps = np.diff(view.times)
    if not np.allclose(gaps, gaps[0], rtol=1e-9):
        raise PdeforgeError(f"Spectral-Refiner needs equally spaced snapshots; {base.path} has gaps {gaps.tolist()}")
    problem = NavierStokes(NavierStokesConfig.model_validate(base.config), device=device)
    return VorticityResidual.for_data(problem.config, problem.grid, x, choose_method(problem).run, device=device)


def refine_run(run: Path, *, data: Path | None = None, samples: int = 4, steps: int = 50, lr: float = 1e-3,
               device: torch.device, progress: Callable[[int, int], None] | None = None) -> dict:
    """Refine a ``spacetime`` ST-FNO run on its first ``samples`` test inputs; write ``refine.json`` and a plot.

    Parameters
    ----------
    run
        A trained run of model ``stfno`` with task ``spacetime`` on Navier-Stokes data.
    data
        Other Navier-Stokes data to refine on (default: the run's test split).
    samples
        How many inputs to refine, each separately.
    steps
        Adam steps per input.
    lr
        Initial learning rate.
    device
        Where to compute.
    progress
        Called as ``progress(done, total)`` after each input.

    Returns
    -------
    dict
        What ``refine.json`` holds: mean and per-sample histories, and the seconds per input.
    """
    if samples < 1 or steps < 0 or not lr > 0:
        raise PdeforgeError("refine needs samples >= 1, steps >= 0 and a positive learning rate")
    run = Path(run)
    adapt_threads(force=True)
    spec, model = load_run(run, device=device)
    task = spec.config.task
    if task.kind != "spacetime" or spec.config.model != "stfno" or not isinstance(model, NormalisedModel):
        raise PdeforgeError(f"{run} trains model '{spec.config.model}' on task '{task.kind}'; Spectral-Refiner "
                            "needs model 'stfno' on task 'spacetime'")
    path = Path(data) if data is not None else Path(spec.test_data or spec.data)
    view = open_task_data(path, task, cache_mb=spec.config.cache_mb)
    if not isinstance(view, TrajectoryView):
        raise PdeforgeError("Spectral-Refiner refines trajectory windows")
    span = (0, len(view)) if data is not None or spec.test_data else spec.split.test
    count = min(samples, span[1] - span[0])
    if count < 1:
        raise PdeforgeError("there are no samples to refine")
    stream = SampleSource(view, spec.layout, device=device, dtype=torch.float32, span=(span[0], span[0] + count))
    x_all, y_all = stream.read(span[0], span[0] + count)
    residual = _residual_for(view, x_all, device)
    per_sample, seconds = [], []
    for i in range(count):
        t0 = time.perf_counter()
        tuned = copy.deepcopy(model)
        per_sample.append(refine_sample(tuned, x_all[i : i + 1], residual, steps=steps, lr=lr,
                                        truth=y_all[i : i + 1]))
        seconds.append(time.perf_counter() - t0)
        if progress is not None:
            progress(i + 1, count)
    result = {
        "steps": steps, "lr": lr, "samples": count, "data": str(path), "substeps": residual.substeps,
        "interval": residual.interval,
        "rel_l2": np.mean([h["rel_l2"] for h in per_sample], axis=0).tolist(),
        "h_minus1": np.mean([h["h_minus1"] for h in per_sample], axis=0).tolist(),
        "per_sample": per_sample,
        "seconds_per_sample": float(np.median(seconds)),
    }
    atomic_write_json(run / REFINE_FILE, result)
    (run / "plots").mkdir(exist_ok=True)
    plot_refinement(run / "plots" / "refine.png", result["rel_l2"], result["h_minus1"])
    return result
