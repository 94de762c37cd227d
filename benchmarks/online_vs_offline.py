"""Online training (samples solved while the model trains) against offline training (generate, then train) on Darcy.

Run:  .venv/bin/python benchmarks/online_vs_offline.py [--resolution 33] [--n 400] [--epochs 16] [--seeds 0 1 2]

Both sides train the same FNO (``--width``, ``--modes``, ``--layers``; the
demo's size by default) with the same batch size, learning rate and cosine
schedule, and are scored by the relative L2 error of their best checkpoint
on one fixed test set (``--n-test`` samples of seed 2, solved once). Each
row is the median over ``--seeds`` (seed ``s``: model initialisation ``s``,
training samples from the stream ``100 + s``).

Offline: ``generate`` ``--n`` training samples plus ``--n-val`` validation
samples, then ``train`` for ``--epochs`` epochs of ``ceil(n / batch)`` steps.

Online (``train_online``, ``--producers`` local solver processes, a
``--capacity`` buffer with the ``--policy`` policy, ``--n-val`` validation
samples of seed 1) in two settings:

(a) **equal wall clock**: as many epochs of ``ceil(n / batch)`` steps as fit
    in the seconds offline took for generation plus training (a one-epoch
    probe run first measures online's start-up and seconds per epoch),
    production unbounded. Equal: seconds (both
    columns are printed), model, batch, schedule shape.
(b) **equal solver calls**: production stops after ``--n`` training samples
    (``max_solver_calls``), and the run takes as many optimisation steps as
    offline (``--epochs`` epochs of ``ceil(n / batch)`` steps). Equal:
    training solver calls (at most: a trainer faster than its producers
    finishes its steps before taking in all ``--n``; the column shows how many
    it took in), optimisation steps, batch, schedule. Offline sees every
    sample every epoch; online sees what its buffer held when it drew.

The "training samples" column is, for online runs, the samples taken into
the buffer (a few more may have been solved and discarded at the end, at
most the producers' queue bound).

Which samples an online run draws depends on timing (how fast producers
run against the trainer), so online rows vary from run to run more than
offline ones; the medians over seeds are the result.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pdeforge.data import generate
from pdeforge.distributed import OnlineConfig, train_online
from pdeforge.problems.darcy import Darcy, DarcyConfig
from pdeforge.training import TrainConfig, read_metrics, train

CPU = torch.device("cpu")


def train_config(args: argparse.Namespace, seed: int, epochs: int) -> TrainConfig:
    return TrainConfig(model="fno", model_options={"width": args.width, "modes": args.modes, "layers": args.layers},
                       epochs=epochs, batch_size=args.batch, lr=args.lr, seed=seed, n_train=args.n, n_val=args.n_val)


def online_config(args: argparse.Namespace, seed: int, root: Path, **changes) -> OnlineConfig:
    return OnlineConfig(problem="darcy", problem_config={"resolution": args.resolution}, seed=100 + seed,
                        val_data=str(root / "val"), test_data=str(root / "test"), capacity=args.capacity,
                        min_fill=min(args.capacity, args.min_fill, args.n), policy=args.policy,
                        producers=args.producers, chunk=args.chunk, steps_per_epoch=math.ceil(args.n / args.batch),
                        **changes)


def offline(args: argparse.Namespace, seed: int, root: Path) -> tuple[float, float]:
    """Test relative L2 and seconds (generation + training) of offline training."""
    problem = Darcy(DarcyConfig(resolution=args.resolution), device=CPU)
    t0 = time.perf_counter()
    generate(problem, n=args.n + args.n_val, seed=100 + seed, out=root / f"offline-data-{seed}")
    summary = train(root / f"offline-{seed}", train_config(args, seed, args.epochs), root / f"offline-data-{seed}",
                    test_data=root / "test", device=CPU)
    return summary["test_rel_l2"], time.perf_counter() - t0


def online(args: argparse.Namespace, seed: int, root: Path, name: str, epochs: int,
           **changes) -> tuple[float, float, int]:
    """Test relative L2, seconds and training samples produced of an online run."""
    t0 = time.perf_counter()
    summary = train_online(root / f"{name}-{seed}", online_config(args, seed, root, **changes),
                           train_config(args, seed, epochs), device=CPU)
    return summary["test_rel_l2"], time.perf_counter() - t0, summary["produced"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution", type=int, default=33)
    p.add_argument("--n", type=int, default=400, help="offline training samples (and online's in (b))")
    p.add_argument("--n-val", type=int, default=40)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--capacity", type=int, default=200, help="online buffer capacity (samples)")
    p.add_argument("--min-fill", type=int, default=100)
    p.add_argument("--policy", choices=["fifo", "reservoir"], default="reservoir")
    p.add_argument("--producers", type=int, default=1)
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=None, help="working directory (default: a temporary one, removed)")
    args = p.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="online-vs-offline-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        problem = Darcy(DarcyConfig(resolution=args.resolution), device=CPU)
        generate(problem, n=args.n_test, seed=2, out=root / "test", mode="resume")
        generate(problem, n=args.n_val, seed=1, out=root / "val", mode="resume")
        rows: dict[str, list[tuple[float, float, int, int]]] = {"offline": [], "online (a) equal wall clock": [],
                                                                "online (b) equal solver calls": []}
        steps = args.epochs * math.ceil(args.n / args.batch)
        for seed in args.seeds:
            l2, seconds = offline(args, seed, root)
            rows["offline"].append((l2, seconds, args.n, steps))
            # A one-epoch probe: its start-up (producers, buffer fill, test) and its epoch's seconds.
            _, probe, _ = online(args, seed, root, "probe", 1)
            epoch_seconds = read_metrics(root / f"probe-{seed}")[0]["seconds"]
            epochs = max(1, round((seconds - (probe - epoch_seconds)) / epoch_seconds))
            l2, seconds_a, produced = online(args, seed, root, "online-a", epochs)
            rows["online (a) equal wall clock"].append((l2, seconds_a, produced,
                                                        epochs * math.ceil(args.n / args.batch)))
            l2, seconds_b, produced = online(args, seed, root, "online-b", args.epochs, max_solver_calls=args.n)
            rows["online (b) equal solver calls"].append((l2, seconds_b, produced, steps))
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"Darcy {args.resolution}^2, FNO width {args.width} modes {args.modes} layers {args.layers}, batch "
          f"{args.batch}, {args.n} offline samples x {args.epochs} epochs, buffer {args.capacity} ({args.policy}), "
          f"{args.producers} producer(s), {torch.get_num_threads()} torch thread(s); test set {args.n_test} samples; "
          f"median over seeds {args.seeds}\n")
    print("| run | test rel L2 | seconds | training samples | optimisation steps |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in rows.items():
        l2s, secs, calls, steps_taken = zip(*values, strict=True)
        print(f"| {name} | {statistics.median(l2s):.4f} | {statistics.median(secs):.1f} | "
              f"{statistics.median(calls):.0f} | {statistics.median(steps_taken):.0f} |")


if __name__ == "__main__":
    main()
