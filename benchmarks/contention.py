"""pdeforge on a shared machine: the demo's training epoch and a Darcy 255^2 batch, quiet and with a competitor.

Run:  .venv/bin/python benchmarks/contention.py [--repeats 3]

Each measurement runs in a fresh process (OpenMP reads its wait policy once,
when torch loads), with the thread settings of one variant:

* ``torch``: what torch does unaided, 2 intra-op threads with libgomp's
  default spin-then-sleep waiting (``GOMP_SPINCOUNT=300000`` is libgomp's
  documented default). This is the behaviour before pdeforge chose threads.
* ``passive``: 2 threads, ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep).
* ``spin10k``: 2 threads, ``GOMP_SPINCOUNT=10000`` (shorter spinning).
* ``one``: 1 intra-op thread.
* ``pdeforge``: nothing set; pdeforge's own policy (``pdeforge._threads``:
  as many threads as idle cores, re-checked between epochs and shards).

"Loaded" means one other CPU-bound process (a pure-Python busy loop, as a
compiler or a browser tab would be) runs for the whole measurement. The
variants and conditions are interleaved, and each cell is the median of
``--repeats`` runs; the ratio loaded/quiet is what a user on a shared machine
feels.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "torch": {"GOMP_SPINCOUNT": "300000", "PDEFORGE_THREADS": "torch"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "PDEFORGE_THREADS": "torch"},
    "spin10k": {"GOMP_SPINCOUNT": "10000", "PDEFORGE_THREADS": "torch"},
    "one": {"OMP_NUM_THREADS": "1", "PDEFORGE_THREADS": "torch"},
    "pdeforge": {},
}
CLEARED = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "PDEFORGE_THREADS")


def worker(workload: str, data: Path) -> dict:
    """One measurement in this process: seconds of the demo's epoch, or of generating one Darcy batch
    of 16 samples at 257^2 nodes (255^2 unknowns) end to end."""
    import torch

    import pdeforge
    from pdeforge.problems import Darcy, DarcyConfig

    if workload == "epoch":
        from pdeforge.cli._demo import DEMO_TRAIN
        from pdeforge.training import train

        seconds = []
        config = DEMO_TRAIN.model_copy(update={"epochs": 1})
        with tempfile.TemporaryDirectory() as tmp:
            train(Path(tmp) / "run", config, data, device=torch.device("cpu"),
                  on_epoch=lambda record: seconds.append(record.seconds))
        value = seconds[0]
    else:
        from pdeforge.data import generate

        problem = Darcy(DarcyConfig(resolution=257))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate(problem, n=16, seed=0, out=Path(tmp) / "darcy", batch_size=16)
            value = time.perf_counter() - t0
    policy = [f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ]
    return {"seconds": value, "threads": torch.get_num_threads(), "wait_policy": " ".join(policy) or "default",
            "version": pdeforge.__version__}


def measure(workload: str, variant: str, data: Path, loaded: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env.update(VARIANTS[variant])
    competitor = None
    if loaded:
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
    try:
        out = subprocess.run([sys.executable, __file__, "--worker", workload, "--data", str(data)], env=env,
                             check=True, capture_output=True, text=True).stdout
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    return json.loads(out.strip().splitlines()[-1])


def demo_data(root: Path) -> Path:
    """The demo's dataset (1,200 Darcy samples at 33^2), generated once."""
    from pdeforge.cli._demo import DEMO_DATA
    from pdeforge.data import generate
    from pdeforge.problems import Darcy, DarcyConfig

    out = root / "demo-data"
    if not (out / "manifest.json").exists():
        generate(Darcy(DarcyConfig(resolution=DEMO_DATA["resolution"])), n=DEMO_DATA["n"], seed=DEMO_DATA["seed"],
                 out=out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--workloads", default="epoch,darcy255")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data)))
        return
    variants = args.variants.split(",")
    workloads = args.workloads.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_data(Path(tmp))
        results: dict[tuple[str, str, bool], list[float]] = {}
        info: dict[str, dict] = {}
        for repeat in range(args.repeats):
            for workload in workloads:
                for variant in variants:
                    for loaded in (False, True):
                        got = measure(workload, variant, data, loaded)
                        results.setdefault((workload, variant, loaded), []).append(got["seconds"])
                        info[variant] = got
                        print(f"# repeat {repeat} {workload:9s} {variant:9s} {'loaded' if loaded else 'quiet':6s} "
                              f"{got['seconds']:8.2f} s", file=sys.stderr, flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}; median of {args.repeats} runs, seconds")
    print("| workload | variant | threads, wait policy | quiet | one competitor | loaded / quiet |")
    print("| --- | --- | --- | --- | --- | --- |")
    for workload in workloads:
        for variant in variants:
            quiet = statistics.median(results[(workload, variant, False)])
            loaded = statistics.median(results[(workload, variant, True)])
            settings = f"{info[variant]['threads']}, {info[variant]['wait_policy']}"
            print(f"| {workload} | {variant} | {settings} | {quiet:.2f} | {loaded:.2f} | {loaded / quiet:.2f}x |")


if __name__ == "__main__":
    main()
