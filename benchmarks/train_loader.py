"""Training throughput (samples/s) of ``pdeforge train`` with the data cached in memory and streamed from shards.

Run:  .venv/bin/python benchmarks/train_loader.py [--n 1200] [--resolution 33] [--epochs 3] [--out DIR]

Generates demo-size Darcy data once (the demo's resolution and sample count
by default, in shards of ``--shard-size``), then trains the demo's FNO for
``--epochs`` epochs twice: with the data cached in memory (``cache_mb``
large) and streamed from the shards (``cache_mb=0``). Each line is the
median over epochs of the training samples per second that ``metrics.csv``
records (steps only; validation excluded) and the run's wall time.

To compare two versions of the code, run the same command with
``PYTHONPATH`` pointing at each checkout's ``src``: the script uses only
``pdeforge.data.generate`` and ``pdeforge.training.train``, so it runs on
code from before and after the DataLoader data path.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pdeforge.data import generate
from pdeforge.problems import Darcy, DarcyConfig
from pdeforge.training import TrainConfig, read_metrics, train

DEMO_FNO = {"modes": 12, "width": 32, "layers": 4}


def run(data: Path, out: Path, args: argparse.Namespace, cache_mb: int) -> tuple[float, float]:
    """Median training samples/s over the epochs, and the wall time of the whole run."""
    config = TrainConfig(model="fno", model_options=DEMO_FNO, epochs=args.epochs, batch_size=args.batch_size,
                         lr=3e-3, n_val=args.n // 12, n_test=args.n // 12, cache_mb=cache_mb)
    shutil.rmtree(out, ignore_errors=True)  # a run of another code version may not read as this one's
    t0 = time.perf_counter()
    train(out, config, data, device=torch.device("cpu"))
    seconds = time.perf_counter() - t0
    return statistics.median(r["samples_per_second"] for r in read_metrics(out)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1200, help="samples (the demo's 1200)")
    parser.add_argument("--resolution", type=int, default=33, help="grid points per axis (the demo's 33)")
    parser.add_argument("--shard-size", type=int, default=100, help="samples per shard")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="pdeforge-loader-"))
    data = work / f"darcy-{args.resolution}-{args.n}"
    if not (data / "manifest.json").is_file():
        generate(Darcy(DarcyConfig(resolution=args.resolution)), n=args.n, seed=0, out=data,
                 shard_size=args.shard_size, mode="overwrite" if data.exists() else "new")
    print(f"{args.n} samples {args.resolution}^2 in shards of {args.shard_size}, batch {args.batch_size}, "
          f"{args.epochs} epochs, torch threads {torch.get_num_threads()}")
    for name, cache_mb in (("cached", 1 << 20), ("streamed", 0)):
        rate, seconds = run(data, work / f"run-{name}", args, cache_mb)
        print(f"{name:9s} {rate:9.1f} samples/s   run {seconds:6.1f} s")
    if args.out is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
