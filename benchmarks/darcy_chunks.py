"""How many Darcy systems multigrid-CG should solve together: wall time per system by chunk size.

pdeforge's ``pcg-mg`` splits a batch into chunks that single-threaded workers solve
(``pdeforge.solvers._linear.CHUNK_VALUES`` sets the default). This script times one
batch of FNO-style Darcy systems at several chunk sizes, alternating them within each
repeat so that all see the same machine load, and prints the median per chunk size::

    .venv/bin/python benchmarks/darcy_chunks.py --resolution 257 --chunks 4 12 16 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from pdeforge.solvers._linear import pcg_mg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linear_solvers import darcy_systems  # noqa: E402 - the same systems as the Darcy benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=257, help="nodes per side (unknowns: resolution - 2)")
    parser.add_argument("--chunks", type=int, nargs="+", default=[4, 12, 16, 20], help="systems per chunk")
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    problem, op, b = darcy_systems(args.resolution, args.samples)
    pcg_mg(op.rows(slice(0, 4)), b[:4])  # warm-up: thread pool, allocator
    times: dict[int, list[float]] = {c: [] for c in args.chunks}
    for _ in range(args.repeats):
        for chunk in args.chunks:
            start = time.perf_counter()
            result = pcg_mg(op, b, rtol=problem.config.rtol, chunk=chunk)
            times[chunk].append((time.perf_counter() - start) / args.samples * 1e3)
            if not bool(result.converged.all()):
                raise SystemExit(f"chunk {chunk}: a system did not converge")
    for chunk, values in times.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"R={args.resolution} chunk={chunk}: median {statistics.median(values):.2f} ms/system ({runs})")


if __name__ == "__main__":
    main()
