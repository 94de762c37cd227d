"""Deep conjugate direction method (Kaneda et al., ICML 2023) on 2-D Poisson around random obstacles.

-Laplace p = f on the fluid cells of a 64 x 64 box, p = 0 on the box wall, dp/dn = 0 on the
obstacles (random discs and rectangles; unscaled five-point stencil, solid cells decoupled).

1. Training data: for each of L training layouts, m Ritz vectors of A from Lanczos, combined
   with N(0, 1) coefficients, those of the lowest m/2 + m/20 Ritz values times 9 (the paper's
   generator), normalised.
2. A small CNN (DirectionCNN) is trained on the unsupervised loss ||b - A q (q.b / q.Aq)||^2
   with Adam on the CPU in pdeforge.training's loop, checkpointed in its format (safetensors
   weights, sha256-verified pointers).
3. Evaluation on UNSEEN layouts: iterations (and seconds) to ||r|| <= 1e-6 ||b|| for DCDM
   (as in the paper, with 2 previous directions; and with 8 or 16 previous directions and a
   residual fallback safeguard), pdeforge's CG and multigrid-PCG
   (pcg_mg: CG + one geometric V-cycle), and the peers scipy CG and pyamg smoothed-aggregation
   PCG.

    .bench-venv/bin/python benchmarks/deep_conjugate_direction.py [--retrain]

Without --retrain the checkpoint saved in results/dcdm_n64/ is loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyamg  # noqa: E402
import scipy.sparse.linalg as spla  # noqa: E402
import torch  # noqa: E402

from pdeforge.grids import Grid  # noqa: E402
from pdeforge.learned_solvers import (  # noqa: E402
    DirectionCNN,
    dcdm,
    lanczos_ritz,
    learned_direction,
    load_direction_net,
    obstacle_poisson,
    random_obstacles,
    ritz_rhs,
    train_direction_net,
)
from pdeforge.solvers import cg, pcg_mg  # noqa: E402
from pdeforge.spectral import GaussianRandomField  # noqa: E402

RTOL = 1e-6


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def training_set(n: int, layouts: int, per_layout: int, m: int, seed: int):
    rng = np.random.default_rng(seed)
    fluid = torch.as_tensor(np.stack([random_obstacles(rng, n) for _ in range(layouts)]))
    rhs, owner = [], []
    for i in range(layouts):
        values, vectors = lanczos_ritz(obstacle_poisson(fluid[i:i + 1]), m, rng, support=fluid[i])
        rhs.append(ritz_rhs(values, vectors, per_layout, rng))
        owner += [i] * per_layout
    return fluid, torch.cat(rhs).float(), torch.tensor(owner)


def early(history: torch.Tensor, steps=(5, 20, 100)) -> list[float]:
    """Median relative residual after a few iterations (a converged system keeps its final value)."""
    h = history.numpy()
    return [float(np.median(h[min(k, len(h) - 1)])) for k in steps]


def scipy_cg(a, b, M=None):
    count = [0]

    def cb(_):
        count[0] += 1

    t = time.perf_counter()
    x, info = spla.cg(a, b, rtol=RTOL, atol=0.0, maxiter=20000, M=M, callback=cb)
    dt = time.perf_counter() - t
    return count[0], dt, np.linalg.norm(b - a @ x) / np.linalg.norm(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--train-layouts", type=int, default=8)
    ap.add_argument("--rhs-per-layout", type=int, default=300)
    ap.add_argument("--ritz", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--test-layouts", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--retrain", action="store_true", help="train even if saved weights exist")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--maxiter", type=int, default=1000, help="iteration cap of DCDM")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / f"dcdm_n{args.n}"  # a pdeforge.training checkpoint directory
    meta_path = args.out / f"dcdm_n{args.n}_training.json"

    if (weights / "checkpoints" / "latest.json").exists() and not args.retrain:
        net = load_direction_net(weights)
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        log(f"loaded {weights}")
    else:
        t0 = time.perf_counter()
        fluid, rhs, owner = training_set(args.n, args.train_layouts, args.rhs_per_layout, args.ritz, seed=0)
        t_data = time.perf_counter() - t0
        log(f"training data: {rhs.shape[0]} right-hand sides on {args.train_layouts} layouts, {t_data:.0f} s")
        torch.manual_seed(0)
        net = DirectionCNN(channels=args.channels, levels=args.levels, blocks=1)
        t1 = time.perf_counter()
        records = train_direction_net(
            net, fluid, rhs, owner, epochs=args.epochs, batch_size=16, lr=args.lr, run=weights,
            on_epoch=[lambda r: log(f"  epoch {r.epoch}: loss {r.train_loss:.4f} ({time.perf_counter() - t1:.0f} s)")])
        t_train = time.perf_counter() - t1
        losses = [r.train_loss for r in records]
        meta = {"data_seconds": t_data, "train_seconds": t_train, "losses": losses, "rhs": int(rhs.shape[0]),
                "layouts": args.train_layouts, "ritz": args.ritz, "epochs": args.epochs, "config": net.config,
                "parameters": sum(p.numel() for p in net.parameters())}
        meta_path.write_text(json.dumps(meta, indent=1))

    # Unseen layouts and right-hand sides.
    rng = np.random.default_rng(1000)
    fluid = torch.as_tensor(np.stack([random_obstacles(rng, args.n) for _ in range(args.test_layouts)]))
    op = obstacle_poisson(fluid)
    grf = GaussianRandomField(Grid((args.n, args.n), boundary="neumann"), scale=1.0, tau=3.0, alpha=2.0)
    sources = {
        "smooth (GRF)": grf.sample([np.random.default_rng([1000, i]) for i in range(args.test_layouts)]) * fluid,
        "white noise": torch.as_tensor(rng.standard_normal(fluid.shape)) * fluid,
    }
    direction = learned_direction(net, fluid)
    rows, curves, setups = [], {}, []
    # Each method is a function of the right-hand side batch, so the loop below passes `b` explicitly.
    methods = {
        "DCDM (paper: 2 previous directions)": lambda b: dcdm(op, b, rtol=RTOL, maxiter=args.maxiter, M=direction),
        "DCDM, 2 previous + residual fallback": lambda b: dcdm(op, b, rtol=RTOL, maxiter=args.maxiter, M=direction,
                                                               fallback=0.05),
        "DCDM, 8 previous + residual fallback": lambda b: dcdm(op, b, rtol=RTOL, maxiter=args.maxiter, M=direction,
                                                               memory=8, fallback=0.05),
        "DCDM, 16 previous + residual fallback": lambda b: dcdm(op, b, rtol=RTOL, maxiter=args.maxiter, M=direction,
                                                                memory=16, fallback=0.05),
        "CG (pdeforge)": lambda b: cg(op, b, rtol=RTOL, maxiter=5000),
        "MG-PCG (pdeforge pcg_mg)": lambda b: pcg_mg(op, b, rtol=RTOL, maxiter=500),
    }
    for kind, b in sources.items():
        res = {}
        for name, solve in methods.items():
            t = time.perf_counter()
            out = solve(b)
            dt = (time.perf_counter() - t) / args.test_layouts  # the batch is solved together
            res[name] = (out.iterations.numpy(), dt, out.converged.numpy(), early(out.history))
            curves[(kind, name)] = out.history[: int(out.iterations[0]) + 1, 0].numpy()
        its, times, amg_its, amg_times, setup = [], [], [], [], []
        for i in range(args.test_layouts):
            a = op.to_scipy(i).tocsr()
            bi = b[i].numpy().ravel()
            k, dt, _ = scipy_cg(a, bi)
            its.append(k)
            times.append(dt)
            t = time.perf_counter()
            ml = pyamg.smoothed_aggregation_solver(a)
            setup.append(time.perf_counter() - t)
            k, dt, _ = scipy_cg(a, bi, M=ml.aspreconditioner(cycle="V"))
            amg_its.append(k)
            amg_times.append(dt)
        res["peer: CG (scipy)"] = (np.array(its), float(np.median(times)), np.ones(len(its), bool), None)
        res["peer: AMG-PCG (pyamg SA V-cycle + scipy CG)"] = (np.array(amg_its), float(np.median(amg_times)),
                                                             np.ones(len(its), bool), None)
        setups += setup
        for name, (it, dt, conv, first) in res.items():
            rows.append((kind, name, it, dt, conv, first))

    print(f"\nDCDM on {args.n}x{args.n} Poisson with random obstacles; {args.test_layouts} unseen layouts; "
          f"rtol {RTOL:g}")
    if meta:
        print(f"net: {meta.get('config')} ({meta.get('parameters')} parameters); trained on {meta.get('rhs')} Ritz "
              f"right-hand sides from {meta.get('layouts')} layouts, {meta.get('epochs')} epochs, "
              f"data {meta.get('data_seconds', 0):.0f} s + training {meta.get('train_seconds', 0):.0f} s on the CPU; "
              f"loss per epoch {[round(x, 4) for x in meta.get('losses', [])]}")
    print("\n| right-hand side | method | iterations to 1e-6 (median [min, max]) | converged | "
          "median ||r||/||b|| after 5 / 20 / 100 it. | seconds per solve |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, name, it, dt, conv, first in rows:
        after = " / ".join(f"{v:.2e}" for v in first) if first is not None else "-"
        print(f"| {kind} | {name} | {int(np.median(it))} [{it.min()}, {it.max()}] | {int(conv.sum())}/{len(conv)} | "
              f"{after} | {dt:.3f} |")

    print(f"\n(pyamg setup, not included above: median {np.median(setups):.3f} s per system; pdeforge's batched "
          f"methods solve all {args.test_layouts} systems together, seconds are per system)")

    plt.switch_backend("agg")  # headless: the backend is chosen where the figure is made
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    axes[0].imshow(~fluid[0].numpy(), cmap="gray_r")
    axes[0].set_title("unseen test layout 0 (black = solid)")
    for ax, kind in zip(axes[1:], sources, strict=True):
        for name in ("DCDM (paper: 2 previous directions)", "DCDM, 16 previous + residual fallback", "CG (pdeforge)",
                     "MG-PCG (pdeforge pcg_mg)"):
            ax.semilogy(curves[(kind, name)], label=name)
        ax.axhline(RTOL, color="k", lw=0.5)
        ax.set_xlabel("iteration")
        ax.set_ylabel("||r|| / ||b||")
        ax.set_title(f"layout 0, {kind} source")
        ax.legend(fontsize=8)
    fig.tight_layout()
    png = args.out / "deep_conjugate_direction.png"
    fig.savefig(png, dpi=110)
    print(f"\nplot: {png}\nweights: {weights}")


if __name__ == "__main__":
    main()
