"""Forward plus backward time of Transform Once (T1) against the FNO, per batch, at several resolutions.

Run:  .venv/bin/python benchmarks/t1_vs_fno.py [--sizes 64 128 256] [--repeats 7] [--threads 1]

Both models come from the model table (``build_model``) with the same width,
kept modes per axis and layers, on 2-D fields of one input and one output
channel, in float32, in the same process; every repeat times one batch of
each model in turn (so load on a shared machine hits both) after one
warm-up step, and each cell is the median of ``--repeats``. ``modes`` means
the per-axis count of each model: the FNO keeps ``2m x m`` complex Fourier
coefficients per channel, T1 ``m x m`` real DCT-II coefficients.

Columns:

* ``fno``: ``y = FNO(x)``, then ``mean(y^2)`` differentiated.
* ``t1``: the same with ``y = T1(x)`` (its one transform and one inverse).
* ``t1 parseval``: the training step ``pdeforge train`` takes for T1, the
  relative L2 loss in frequency space (the transform of the target instead
  of the inverse of the prediction).

Poli et al. (NeurIPS 2022, abstract) report speed-ups of 3x to 10x over FNO-style models,
the gap growing with resolution.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pdeforge.models import build_model
from pdeforge.training import parseval_relative_l2


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, parseval: bool) -> float:
    """Wall time of one forward plus backward pass (gradients cleared first)."""
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    if parseval:
        target, outside = model.transform_target(y)
        loss = parseval_relative_l2(model.predict_coefficients(x), target, outside).mean()
    else:
        loss = model(x).square().mean()
    loss.backward()
    return time.perf_counter() - t0


def measure(size: int, args: argparse.Namespace) -> dict[str, float]:
    """Median seconds per batch of each column at ``size x size``."""
    torch.manual_seed(0)
    options = {"width": args.width, "layers": args.layers}
    fno = build_model("fno", 1, 1, 2, modes=args.modes, **options)
    t1 = build_model("t1", 1, 1, 2, modes=args.t1_modes or args.modes, **options)
    x = torch.randn(args.batch, 1, size, size)
    y = torch.randn(args.batch, 1, size, size)
    cases = {"fno": (fno, False), "t1": (t1, False), "t1 parseval": (t1, True)}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for model, parseval in cases.values():  # warm-up: allocator, FFT plans, cached DFT matrices
        step_seconds(model, x, y, parseval)
    for _ in range(args.repeats):
        for name, (model, parseval) in cases.items():
            times[name].append(step_seconds(model, x, y, parseval))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="grid sizes n (n x n)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--t1-modes", type=int, default=None,
                   help="T1's kept coefficients per axis (default: --modes; 2 x --modes keeps as many real "
                        "numbers per channel as the FNO's 2m x m complex ones, the table's defaults 24 vs 12)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per cell (the median is shown)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = p.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"batch {args.batch}, width {args.width}, modes fno {args.modes} / t1 {args.t1_modes or args.modes}, "
          f"layers {args.layers}, float32, "
          f"{torch.get_num_threads()} thread(s), median of {args.repeats}; forward + backward, ms per batch\n")
    print("| n | fno | t1 | t1 parseval | fno / t1 | fno / t1 parseval |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        r = measure(size, args)
        print(f"| {size} | {1e3 * r['fno']:.1f} | {1e3 * r['t1']:.1f} | {1e3 * r['t1 parseval']:.1f} | "
              f"{r['fno'] / r['t1']:.1f}x | {r['fno'] / r['t1 parseval']:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
