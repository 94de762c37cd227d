"""pdeforge's FNO on neuraloperator's real 16x16 Darcy files: test error against wall-clock.

Run:  .venv/bin/python benchmarks/neuralop_darcy16.py [--epochs 10 20 40] [--repeats 3]

Trains with pdeforge's own training loop (``pdeforge.training.train``) on
``darcy_train_16.pt`` (1000 samples) and tests on ``darcy_test_16.pt`` (50),
as shipped in the neuraloperator repository (``../shared/data/neuralop``).
For several epoch budgets, prints the wall-clock seconds of the whole run
(data loading, normalisation, training, checkpoints, testing) and the test
relative L2 reached, medians over seeds; the bar is 0.10 within 2 minutes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pdeforge.training import TrainConfig, train

DATA = Path(os.environ.get("PDEFORGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "neuralop"


def one_run(epochs: int, seed: int) -> tuple[float, float]:
    """Test relative L2 of the best-validation checkpoint, and the wall-clock seconds of the whole run."""
    cfg = TrainConfig(model="fno", model_options={"modes": 8, "width": 32, "layers": 4}, epochs=epochs,
                      batch_size=20, lr=3e-3, n_val=50, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = train(Path(tmp) / "run", cfg, DATA / "darcy_train_16.pt", test_data=DATA / "darcy_test_16.pt",
                        device=torch.device("cpu"))
        return summary["test_rel_l2"], time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; data {DATA}")
    print(f"{'epochs':>6s} {'seconds':>8s} {'test rel L2':>12s}   (medians of {args.repeats} seeds)")
    for epochs in args.epochs:
        runs = [one_run(epochs, seed) for seed in range(args.repeats)]
        err = statistics.median(r[0] for r in runs)
        sec = statistics.median(r[1] for r in runs)
        print(f"{epochs:>6d} {sec:>8.1f} {err:>12.4f}   {'<= 0.10' if err <= 0.10 else '> 0.10'}")


if __name__ == "__main__":
    main()
