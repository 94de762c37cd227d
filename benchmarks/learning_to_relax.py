"""Learning to relax (Khodak et al., ICLR 2024, sec. 6): tune SOR's omega online.

T instances A_t = L + c_t I (10 x 10 five-point Laplacian, c_t = -0.15 + 0.6 Beta(0.5, 1.5)
in the high-variance setting, Beta(2, 6) in the low-variance one), b_t a radially truncated
Gaussian, x0 = 0, SOR to ||r|| < 1e-8 ||b|| (cap 10 000 sweeps). Learners pick omega from
20 values in [1, 1.95] and hear back only their own iteration count.

Prints total iterations (mean +- std over trials) for every fixed omega, the best fixed omega
in hindsight, Tsallis-INF, ChebCB, binned Tsallis-INF (the paper's Tsallis-INF-CB), uniform
random omega, Young's instance-optimal omega*(A_t), and the per-instance best grid omega;
writes a plot of cumulative iterations against instances.

    .venv/bin/python benchmarks/learning_to_relax.py --trials 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from pdeforge.learned_solvers import (  # noqa: E402
    BinnedTsallisINF,
    ChebCB,
    RunningMeanScale,
    ShiftedLaplacianSequence,
    TsallisINF,
    optimal_sor_omega,
    play,
    sor_cost_table,
    sor_iterations,
)

SETTINGS = {"high": (0.5, 1.5), "low": (2.0, 6.0)}
CONTEXT_BOUNDS = (-0.15, 0.65)  # the interval the authors give ChebCB and the binned learner


def run_trial(seq: ShiftedLaplacianSequence, T: int, seed: int, omegas: torch.Tensor) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    c, b = seq.sample(rng, T)
    t0 = time.perf_counter()
    table = sor_cost_table(seq.operator, c, b, omegas).numpy()
    young = np.concatenate([
        sor_iterations(seq.operator(c[s:s + 1000]), b[s:s + 1000],
                       optimal_sor_omega(seq.operator(c[s:s + 1000]))).numpy()
        for s in range(0, T, 1000)])
    solve_time = time.perf_counter() - t0
    k = len(omegas)
    learners = {
        "Tsallis-INF": TsallisINF(k, rng=np.random.default_rng([seed, 1]), scale=RunningMeanScale(1.0)),
        "ChebCB": ChebCB(k, CONTEXT_BOUNDS, rng=np.random.default_rng([seed, 2]), degree=6),
        "Tsallis-INF-CB (5 bins)": BinnedTsallisINF(k, CONTEXT_BOUNDS, rng=np.random.default_rng([seed, 3]), bins=5),
    }
    out = {f"omega={w:.2f}": table[:, i] for i, w in enumerate(omegas.tolist())}
    t1 = time.perf_counter()
    for name, learner in learners.items():
        out[name] = play(learner, table, c.numpy())[1]
    learn_time = time.perf_counter() - t1
    out["best fixed omega (hindsight)"] = table[:, np.argmin(table.sum(0))]
    out["uniform random omega (expected)"] = table.mean(1)
    out["instance-optimal omega* (Young)"] = young
    out["per-instance best grid omega"] = table.min(1)
    out["_best_omega"] = np.array([float(omegas[np.argmin(table.sum(0))])])
    print(f"  trial seed {seed}: SOR cost table {solve_time:.1f} s ({table.sum() + young.sum():,} sweeps), "
          f"learners {learn_time:.1f} s", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="high")
    ap.add_argument("--instances", type=int, default=5000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seq = ShiftedLaplacianSequence(n=10, low=-0.15, width=0.6, beta=SETTINGS[args.setting])
    omegas = torch.linspace(1.0, 1.95, 20, dtype=torch.float64)
    t0 = time.perf_counter()
    trials = [run_trial(seq, args.instances, args.seed + i, omegas) for i in range(args.trials)]
    names = [n for n in trials[0] if not n.startswith("_")]
    totals = {n: np.array([tr[n].sum() for tr in trials]) for n in names}
    best_omegas = [float(tr["_best_omega"][0]) for tr in trials]
    ref = totals["best fixed omega (hindsight)"].mean()

    print(f"\nLearning to relax, {args.setting}-variance shifts c = -0.15 + 0.6 Beta{SETTINGS[args.setting]}, "
          f"T = {args.instances}, {args.trials} trials, total {time.perf_counter() - t0:.0f} s")
    print(f"best fixed omega per trial: {best_omegas}\n")
    print("| policy | total SOR iterations (mean +- std) | vs best fixed omega |")
    print("|---|---:|---:|")
    for n in names:
        m, s = totals[n].mean(), totals[n].std()
        print(f"| {n} | {m:,.0f} +- {s:,.0f} | {m / ref:.3f} |")

    args.out.mkdir(parents=True, exist_ok=True)
    plt.switch_backend("agg")  # headless: the backend is chosen where the figure is made
    fig, ax = plt.subplots(figsize=(8, 5.5))
    x = np.arange(1, args.instances + 1)
    curve = lambda n: np.mean([np.cumsum(tr[n]) for tr in trials], axis=0)  # noqa: E731
    for w in (1.0, 1.2, 1.4, 1.6, 1.8):
        ax.plot(x, curve(f"omega={w:.2f}"), "--", lw=1.2, label=f"fixed $\\omega$={w:.1f}")
    styles = {"Tsallis-INF": "k-", "ChebCB": "C3-", "Tsallis-INF-CB (5 bins)": "C4-",
              "best fixed omega (hindsight)": "C7:", "instance-optimal omega* (Young)": "C2-."}
    for n, st in styles.items():
        ax.plot(x, curve(n), st, lw=2, label=n.replace("omega", "$\\omega$"))
    ax.set_xlabel("instances solved")
    ax.set_ylabel("cumulative SOR iterations")
    ax.set_yscale("log")
    ax.set_title(f"SOR on 10x10 Laplacian + cI, {args.setting}-variance c ({args.trials} trials)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    png = args.out / f"learning_to_relax_{args.setting}.png"
    fig.savefig(png, dpi=120)
    print(f"\nplot: {png}")


if __name__ == "__main__":
    main()
