"""all2all against next-step training of scOT on Navier-Stokes trajectories, at equal optimisation steps.

Run:  .venv/bin/python benchmarks/all2all_study.py [--sizes 16 32 64 128] [--steps 400] [--out runs/all2all]

Poseidon (Herde et al., NeurIPS 2024, sec. 3) trains its scOT on every pair
``i <= j`` of a trajectory's snapshots (all2all: ``(K + 1)(K + 2) / 2`` pairs)
instead of the next-step pairs ``i -> i + 1`` only. This script trains the
same scOT both ways on ``N`` trajectories for each ``N`` of ``--sizes``, with
the same optimisation steps (``--steps``; epochs are rounded, the steps taken
are printed), batch, learning rate and cosine schedule, and tests both on one
fixed set of ``--n-test`` trajectories drawn with another seed:

* **final**: the last snapshot predicted from the initial one, the all2all
  model queried once at lead time ``t_K``, the next-step model rolled out
  ``K`` steps of ``dt`` (each model used the way it was trained);
* **all pairs**: the mean relative L2 over every pair ``i <= j`` of the test
  trajectories, each model queried once at the pair's lead time (what the
  all2all model is trained for; the next-step model has only seen ``dt``).

A finished run in ``OUT`` with the same configuration is reused (only evaluated again).

The data are Navier-Stokes (FNO forcing, ``nu = 1e-3``, the FNO data code's
initial vorticity) at 32x32 solved at 64x64, ``K = 10`` snapshots to
``t = 10``; generated into ``OUT/data`` and ``OUT/test`` unless present.
Prints a table and writes ``OUT/all2all.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from pdeforge.data import generate, open_dataset
from pdeforge.problems import NavierStokes, NavierStokesConfig
from pdeforge.training import TrainConfig, load_run, train
from pdeforge.training._data import FieldLayout, SampleSource
from pdeforge.training._run import per_sample_errors, read_spec
from pdeforge.training._tasks import TaskConfig, TrajectoryView

MODEL = {"patch_size": 2, "embed_dim": 32, "depths": [2, 2], "heads": [2, 4], "window": 4, "conditioned": True}


def _data(path: Path, n: int, seed: int) -> Path:
    if not (path / "manifest.json").exists():
        problem = NavierStokes(NavierStokesConfig(resolution=32, solver_resolution=64, t_final=10.0, n_times=10))
        generate(problem, n=n, seed=seed, out=path, mode="overwrite")
    return path


@torch.no_grad()
def _final_error(run: Path, test: Path, pairs: str) -> float:
    """Mean relative L2 of the last snapshot predicted from the first, each model the way it was trained."""
    _, model = load_run(run, device=torch.device("cpu"))
    source = open_dataset(test)
    inputs, outputs = source.read(0, len(source))
    w0 = torch.from_numpy(inputs["w0"]).float()[:, None]
    truth = torch.from_numpy(outputs["w"][:, -1]).float()[:, None]
    times = np.concatenate([[0.0], source.coords()["t"]])

    def query(state: torch.Tensor, lead: float) -> torch.Tensor:
        return model(torch.cat([state, torch.full_like(state, lead)], dim=1))

    if pairs == "all":
        pred = query(w0, float(times[-1]))
    else:
        pred = w0
        for a, b in zip(times[:-1], times[1:], strict=True):
            pred = query(pred, float(b - a))
    err = torch.linalg.vector_norm((pred - truth).flatten(1), dim=1) / torch.linalg.vector_norm(truth.flatten(1), dim=1)
    return float(err.mean())


def _all_pairs_error(run: Path, test: Path) -> float:
    """Mean relative L2 over every pair ``i <= j`` of the test trajectories, one query at the pair's lead time."""
    _, model = load_run(run, device=torch.device("cpu"))
    view = TrajectoryView(open_dataset(test), TaskConfig(kind="all2all"))
    stream = SampleSource(view, FieldLayout.of(view), device=torch.device("cpu"))
    l2, _ = per_sample_errors(model, stream, (0, len(view)), 256, periodic=True)
    return float(l2.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--steps", type=int, default=400, help="optimisation steps of every run")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-test", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("runs/all2all"))
    args = parser.parse_args()
    data = _data(args.out / "data", max(args.sizes), seed=7)
    test = _data(args.out / "test", args.n_test, seed=8)
    snapshots = 11
    rows = []
    for n in args.sizes:
        # whole all2all epochs nearest to --steps; next-step epochs nearest to that many steps (their epochs are
        # 6.6x shorter, so the two step counts differ by at most half a next-step epoch)
        target = max(1, round(args.steps / math.ceil(n * snapshots * (snapshots + 1) // 2 / args.batch_size)))
        target *= math.ceil(n * snapshots * (snapshots + 1) // 2 / args.batch_size)
        for pairs in ("all", "next"):
            per_trajectory = snapshots * (snapshots + 1) // 2 if pairs == "all" else snapshots - 1
            per_epoch = math.ceil(n * per_trajectory / args.batch_size)
            epochs = max(1, round(target / per_epoch))
            config = TrainConfig.model_validate({
                "task": {"kind": "all2all", "pairs": pairs}, "model": "scot", "model_options": MODEL,
                "epochs": epochs, "batch_size": args.batch_size, "lr": args.lr, "schedule": "cosine",
                "n_train": n, "n_val": 0})
            run = args.out / f"{pairs}-{n}"
            t0 = time.perf_counter()
            old = read_spec(run) if run.is_dir() else None
            if old is None or old.status != "finished" or old.config != config:
                train(run, config, data, test_data=test, device=torch.device("cpu"), overwrite=True)
            seconds = time.perf_counter() - t0
            row = {"trajectories": n, "pairs": pairs, "steps": epochs * per_epoch, "epochs": epochs,
                   "final_rel_l2": _final_error(run, test, pairs), "all_pairs_rel_l2": _all_pairs_error(run, test),
                   "seconds": seconds}
            rows.append(row)
            print(f"N={n:4d} {pairs:4s} steps={row['steps']:4d} final={row['final_rel_l2']:.4f} "
                  f"all-pairs={row['all_pairs_rel_l2']:.4f} ({seconds:.0f} s)", flush=True)
    (args.out / "all2all.json").write_text(json.dumps(rows, indent=1))
    print("\n| trajectories | all2all final | next-step final | all2all all-pairs | next-step all-pairs | steps |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in args.sizes:
        a, b = (next(r for r in rows if r["trajectories"] == n and r["pairs"] == p) for p in ("all", "next"))
        print(f"| {n} | {a['final_rel_l2']:.4f} | {b['final_rel_l2']:.4f} | {a['all_pairs_rel_l2']:.4f} | "
              f"{b['all_pairs_rel_l2']:.4f} | {a['steps']} / {b['steps']} |")


if __name__ == "__main__":
    main()
