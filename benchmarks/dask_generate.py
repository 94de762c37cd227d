"""Generation on a Dask LocalCluster against the serial in-process run: samples/s and the cost of a shard task.

Run:  .venv/bin/python benchmarks/dask_generate.py [--resolution 255] [--n 64] [--shard-size 4] [--repeats 3]

Times ``pdeforge.data.generate`` end to end (sampling, solving, writing and
checksumming shards, recording the manifest) for Darcy at ``--resolution``:
serially in this process (pdeforge's adaptive torch threads), then on an
embedded ``LocalCluster`` of 1 and 2 single-threaded worker processes, with
the same ``--n``, seed and shards, so every run writes the same bytes (checked).
Each configuration is run ``--repeats`` times into a fresh directory; the
table shows the median. A cluster is started once per worker count and
warmed up (torch imported, a problem built) before it is timed; its start-up
time is printed apart.

Two measures of what a task costs beyond solving:

* ``non-solve s/shard``: ``(wall * slots - sum of solve_seconds) / shards``,
  the time a worker slot (the serial process counts as one) spends per
  shard on anything but drawing and solving samples: writing, hashing,
  scheduling, the client's verification;
* ``task overhead``: a trivial shard (Poisson 8^2, one sample) written as a
  task on a 1-worker cluster minus the same shard written in-process,
  per shard, over ``--tiny-shards`` shards.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import torch

from pdeforge.data import Manifest, generate
from pdeforge.distributed import cluster_client, generate_on_dask
from pdeforge.problems import Darcy, DarcyConfig, Poisson, PoissonConfig

SEED = 0


def timed(run, repeats: int) -> tuple[float, list[Manifest]]:
    """Median seconds of ``run(out=...)`` into a fresh directory each time, and the manifests it wrote."""
    times, manifests = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            manifests.append(run(out=Path(tmp) / "ds"))
            times.append(time.perf_counter() - t0)
    return statistics.median(times), manifests


def non_solve_per_shard(seconds: float, slots: int, manifest: Manifest) -> float:
    """Seconds per shard a slot spends on anything but drawing and solving (see the module docstring)."""
    solving = sum(r.solve_seconds or 0.0 for r in manifest.shards)
    return (seconds * slots - solving) / len(manifest.shards)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=255)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tiny-shards", type=int, default=16)
    args = parser.parse_args()
    problem = Darcy(DarcyConfig(resolution=args.resolution))
    tiny = Poisson(PoissonConfig(resolution=8))
    options = {"n": args.n, "seed": SEED, "shard_size": args.shard_size}
    shards = -(-args.n // args.shard_size)
    print(f"Darcy {args.resolution}^2, n={args.n}, {shards} shards of {args.shard_size}, "
          f"median of {args.repeats}; torch {torch.__version__}")

    serial, manifests = timed(functools.partial(generate, problem, **options), args.repeats)
    reference = manifests[0].digest()
    rows = [("serial in-process", f"{torch.get_num_threads()} torch threads", serial, 1, manifests[-1])]
    tiny_options = {"n": args.tiny_shards, "seed": SEED, "shard_size": 1}
    tiny_serial, _ = timed(functools.partial(generate, tiny, **tiny_options), 3)
    tiny_dask = None
    for workers in args.workers:
        t0 = time.perf_counter()
        with cluster_client(workers) as client:
            assert client is not None
            started = time.perf_counter() - t0
            # warm-up: every worker imports torch and builds a problem before anything is timed
            timed(functools.partial(generate_on_dask, tiny, client, n=2 * workers, seed=SEED, shard_size=1), 1)
            seconds, manifests = timed(functools.partial(generate_on_dask, problem, client, **options), args.repeats)
            if any(m.digest() != reference for m in manifests):
                raise SystemExit(f"the {workers}-worker run wrote other bytes than the serial run")
            rows.append((f"LocalCluster x{workers}", f"started in {started:.1f} s", seconds, workers, manifests[-1]))
            if workers == 1:
                tiny_dask, _ = timed(functools.partial(generate_on_dask, tiny, client, **tiny_options), 3)

    print(f"\n{'run':20s} {'':24s} {'seconds':>8s} {'samples/s':>10s} {'vs serial':>10s} {'non-solve s/shard':>18s}")
    for name, note, seconds, slots, manifest in rows:
        print(f"{name:20s} {note:24s} {seconds:>8.2f} {args.n / seconds:>10.2f} {serial / seconds:>9.2f}x "
              f"{non_solve_per_shard(seconds, slots, manifest):>18.4f}")
    if tiny_dask is not None:
        per_task = (tiny_dask - tiny_serial) / args.tiny_shards
        print(f"\ntask overhead (Poisson 8^2, 1 sample a shard, {args.tiny_shards} shards, 1 worker): "
              f"{1e3 * per_task:.1f} ms per shard task ({1e3 * tiny_dask / args.tiny_shards:.1f} ms on dask, "
              f"{1e3 * tiny_serial / args.tiny_shards:.1f} ms in-process)")
    print("every run wrote the same bytes (manifest digests equal)")


if __name__ == "__main__":
    main()
