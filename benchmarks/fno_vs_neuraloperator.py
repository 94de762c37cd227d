"""pdeforge's FNO against neuraloperator's on the FNO paper's Darcy setting, in one process.

Run (in the benchmark venv, which has neuraloperator 2.0):

    .bench-venv/bin/python benchmarks/fno_vs_neuraloperator.py \
        --epochs 4 --threads 1 --out benchmarks/results/fno_vs_neuraloperator.md

Setting (Li et al. 2021, sec. 5.2): Darcy flow at s = 85, 1000 training and
100 test samples, FNO width 32, 4 Fourier layers, 12 modes, batch 20, Adam
lr 1e-3 with weight decay 1e-4 and the paper's StepLR(100, 0.5), pointwise
unit-Gaussian normalisation of inputs and outputs, relative L2 loss on the
decoded outputs. The data is made by pdeforge and cached in
``benchmarks/_work/``.

Both models see the same batches in the same order. Phase 1 trains both for
``--epochs`` epochs, alternating epoch by epoch so that load on the shared
machine hits both; phase 2 lets the faster model keep training until its
training wall-clock equals the slower one's, so the test errors can be
compared at equal wall-clock as well as at equal epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from pdeforge.data import generate, open_dataset
from pdeforge.models import FNO, DomainPadding, GridCoordinates
from pdeforge.problems import Darcy, DarcyConfig

WORK = Path(__file__).resolve().parent / "_work"
RUNS = WORK / "fno_vs_neuraloperator.json"
"""Per-epoch times and curves of the last run, so ``--render`` can rewrite the report without training."""


def load_darcy(n_train: int, n_test: int, resolution: int) -> tuple[torch.Tensor, ...]:
    path = WORK / f"darcy{resolution}"
    total = n_train + n_test
    if not (path / "manifest.json").exists():
        print(f"generating {total} Darcy samples at s={resolution} into {path} ...", flush=True)
        generate(Darcy(DarcyConfig(resolution=resolution)), n=total, seed=0, out=path)
    source = open_dataset(path)
    if len(source) < total:
        raise SystemExit(f"{path} holds {len(source)} samples, {total} needed; delete it to regenerate")
    inputs, outputs = source.read(0, total)
    a = torch.as_tensor(np.asarray(inputs["coefficient"]), dtype=torch.float32)[:, None]
    u = torch.as_tensor(np.asarray(outputs["solution"]), dtype=torch.float32)[:, None]
    return a[:n_train], u[:n_train], a[n_train:], u[n_train:]


class UnitGaussian:
    """Pointwise mean/std over the training samples (the FNO paper's UnitGaussianNormalizer)."""

    def __init__(self, x: torch.Tensor) -> None:
        self.mean, self.std = x.mean(0), x.std(0) + 1e-5

    def encode(self, x):
        return (x - self.mean) / self.std

    def decode(self, x):
        return x * self.std + self.mean


def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-sample relative L2 error, summed over the batch (the paper's LpLoss)."""
    diff = (pred - true).flatten(1).norm(dim=1)
    return (diff / true.flatten(1).norm(dim=1)).sum()


def build_models(modes: int, width: int, layers: int, pad: int, resolution: int):
    ours = FNO(1, 1, modes=modes, width=width, layers=layers, spatial_dims=2, projection_channels=4 * width,
               padding=DomainPadding(pad, symmetric=True), coordinates=GridCoordinates("periodic"))
    from neuralop.models import FNO as NeuralopFNO

    theirs = NeuralopFNO(n_modes=(2 * modes, 2 * modes - 2), in_channels=1, out_channels=1, hidden_channels=width,
                         n_layers=layers, lifting_channel_ratio=0, projection_channel_ratio=4,
                         use_channel_mlp=False, fno_skip="linear", domain_padding=pad / resolution,
                         positional_embedding="grid")
    return {"pdeforge": ours, "neuraloperator": theirs}


class Runner:
    def __init__(self, name, model, data, normalisers, lr, weight_decay):
        self.name, self.model = name, model
        self.data, (self.xn, self.yn) = data, normalisers
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=100, gamma=0.5)
        self.epoch_seconds: list[float] = []
        self.curve: list[tuple[int, float, float, float]] = []  # epoch, wall, train loss, test rel L2

    @property
    def wall(self) -> float:
        return sum(self.epoch_seconds)

    def train_epoch(self, order: torch.Tensor, batch: int) -> float:
        x_train, y_train = self.data[0], self.data[1]
        self.model.train()
        total = 0.0
        t0 = time.perf_counter()
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            x, y = x_train[idx], y_train[idx]
            self.opt.zero_grad(set_to_none=True)
            loss = relative_l2(self.yn.decode(self.model(x)), self.yn.decode(y))
            loss.backward()
            self.opt.step()
            total += loss.item()
        self.sched.step()
        self.epoch_seconds.append(time.perf_counter() - t0)
        return total / len(order)

    @torch.no_grad()
    def test(self, batch: int) -> float:
        self.model.eval()
        x_test, y_test = self.data[2], self.data[3]
        err = sum(float(relative_l2(self.yn.decode(self.model(x_test[i : i + batch])), y_test[i : i + batch]))
                  for i in range(0, len(x_test), batch))
        return err / len(x_test)

    def run_epoch(self, order, batch):
        train = self.train_epoch(order, batch)
        test = self.test(batch)
        self.curve.append((len(self.epoch_seconds), self.wall, train, test))
        e, w, tr, te = self.curve[-1]
        print(f"  {self.name:15s} epoch {e:3d}  {self.epoch_seconds[-1]:7.1f} s  wall {w:7.1f} s  "
              f"train {tr:.4f}  test rel L2 {te:.4f}", flush=True)


def at_wall(curve, wall):
    """Test error of the last epoch finished by ``wall`` seconds of training."""
    done = [c for c in curve if c[1] <= wall + 1e-9]
    return done[-1] if done else None


def report(runners, args, params) -> str:
    ours, theirs = runners["pdeforge"], runners["neuraloperator"]
    n = args.epochs
    med = {k: statistics.median(r.epoch_seconds[1:n]) for k, r in runners.items()}
    lines = [
        "## pdeforge FNO vs neuraloperator 2.0 FNO: Darcy s=85 (FNO paper sec. 5.2)",
        "",
        "Command: `.bench-venv/bin/python benchmarks/fno_vs_neuraloperator.py "
        f"--epochs {args.epochs}" + (f" --threads {args.threads}" if args.threads else "") + f" --out {args.out}`",
        "",
        f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} thread(s), CPU, on a "
        f"{os.cpu_count()}-core machine (load average {os.getloadavg()[0]:.1f} when the run ended); "
        f"{args.n_train} train / {args.n_test} test samples of pdeforge Darcy (piecewise 12/3 coefficient, s=85), "
        f"batch {args.batch}, Adam lr {args.lr} wd 1e-4, StepLR(100, 0.5), pointwise Gaussian normalisation, "
        f"relative-L2 loss. Width {args.width}, {args.layers} layers, paper modes {args.modes} "
        f"(neuraloperator `n_modes=({2 * args.modes}, {2 * args.modes - 2})`), padding {args.pad} cells per side "
        f"({85 + 2 * args.pad}^2 inside the layers), grid coordinates appended. Real parameter counts: "
        f"pdeforge {params['pdeforge']:,}, neuraloperator {params['neuraloperator']:,} "
        "(its complex weights counted twice).",
        "",
        f"Phase 1: both models {n} epochs, alternating epoch by epoch, same batches. "
        "Phase 2: the faster model keeps training until its training wall-clock equals the slower one's.",
        "",
        "| | pdeforge | neuraloperator | ratio |",
        "| --- | --- | --- | --- |",
        f"| seconds per epoch (median of epochs 2..{n}) | {med['pdeforge']:.1f} | {med['neuraloperator']:.1f} | "
        f"**{med['neuraloperator'] / med['pdeforge']:.2f}x** |",
        f"| test rel. L2 after {n} epochs | {ours.curve[n - 1][3]:.4f} | {theirs.curve[n - 1][3]:.4f} | |",
    ]
    slow, fast = (theirs, ours) if theirs.curve[n - 1][1] >= ours.curve[n - 1][1] else (ours, theirs)
    wall = slow.curve[n - 1][1]
    hit = at_wall(fast.curve, wall)
    lines.append(f"| test rel. L2 at {wall:.0f} s of training ({slow.name}'s {n} epochs) | "
                 + (f"{hit[3]:.4f} ({hit[0]} epochs)" if fast is ours else f"{slow.curve[n - 1][3]:.4f}")
                 + " | "
                 + (f"{slow.curve[n - 1][3]:.4f} ({n} epochs)" if fast is ours else f"{hit[3]:.4f} ({hit[0]} epochs)")
                 + " | |")
    lines += ["", "Test relative L2 against training wall-clock (seconds):", "",
              "| epoch | pdeforge wall | pdeforge test | neuraloperator wall | neuraloperator test |",
              "| --- | --- | --- | --- | --- |"]
    for e in range(max(len(ours.curve), len(theirs.curve))):
        a = ours.curve[e] if e < len(ours.curve) else None
        b = theirs.curve[e] if e < len(theirs.curve) else None
        lines.append(f"| {e + 1} | " + (f"{a[1]:.0f} | {a[3]:.4f}" if a else " | ") + " | "
                     + (f"{b[1]:.0f} | {b[3]:.4f}" if b else " | ") + " |")
    lines += ["", "Per-epoch seconds: "
              + "; ".join(f"{k}: " + ", ".join(f"{s:.1f}" for s in r.epoch_seconds) for k, r in runners.items()), ""]
    return "\n".join(lines)


def check_mode_mapping(modes: int = 5, shape: tuple[int, int] = (24, 18)) -> str:
    """Experiment: our ``modes=m`` equals neuraloperator's ``n_modes=(2m, 2m-2)`` mode for mode.

    Copies the weights of a pdeforge :class:`SpectralConv` into a
    neuraloperator ``SpectralConv`` (their non-last axis runs over
    frequencies ``-m..m-1`` after an fftshift, ours over ``0..m-1, -m..-1``)
    and compares outputs on random input (their spectrum is complex64).
    On an odd-sized non-last axis neuraloperator 2.0.0 differs: it undoes
    its ``fftshift`` with a second ``fftshift`` instead of ``ifftshift``, so
    its output comes out one frequency lower along that axis (fixed upstream
    after 2.0.0, neuraloperator pull request 688).
    """
    from neuralop.layers.spectral_convolution import SpectralConv as TheirConv

    from pdeforge.models import SpectralConv

    ours = SpectralConv(3, 2, modes=(modes, modes)).double()
    theirs = TheirConv(3, 2, (2 * modes, 2 * modes - 2))
    w = ours.kernel.weight.detach()  # [2m, m, in, 2, out]
    w = torch.complex(w[..., 0, :], w[..., 1, :]).permute(2, 3, 0, 1)  # [in, out, 2m (ours), m]
    slots = [(j - modes) % (2 * modes) for j in range(2 * modes)]  # their index j is frequency j - m
    with torch.no_grad():
        theirs.weight.tensor.data = w[:, :, slots].to(torch.complex128)
        theirs.bias.zero_()
    theirs = theirs.double()
    x = torch.randn(4, 3, *shape, dtype=torch.float64)
    with torch.no_grad():
        diff = float((ours(x) - theirs(x)).abs().max() / ours(x).abs().max())
    return (f"mode mapping check: pdeforge modes=({modes}, {modes}) vs neuraloperator n_modes=({2 * modes}, "
            f"{2 * modes - 2}) on {shape}: max relative difference {diff:.1e}")


def profile(models, x: torch.Tensor, y: torch.Tensor, steps: int = 3) -> str:
    """torch.profiler tables (self CPU time) of a few training steps of each model."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    out = []
    for name, model in models.items():
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(2):  # warm-up: caches, allocator
            opt.zero_grad(); relative_l2(model(x), y).backward(); opt.step()  # noqa: E702
        with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(steps):
                opt.zero_grad(); relative_l2(model(x), y).backward(); opt.step()  # noqa: E702
        table = prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=28, max_shapes_column_width=60)
        out.append(f"### {name}: {steps} training steps, batch {len(x)}\n\n```\n{table}\n```\n")
    return "\n".join(out)


def step_times(resolution: int, pad: int, args, repeats: int = 7) -> str:
    """Median seconds per training step of both models on random data at ``resolution``, interleaved."""
    models = build_models(args.modes, args.width, args.layers, pad, resolution)
    if pad == 0:  # neuraloperator takes domain_padding=None for no padding; ours no DomainPadding
        models["pdeforge"].padding = None
    x = torch.randn(args.batch, 1, resolution, resolution)
    y = torch.randn(args.batch, 1, resolution, resolution)
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    times = {k: [] for k in models}
    for r in range(repeats + 1):
        for k, m in (models.items() if r % 2 == 0 else reversed(list(models.items()))):
            t0 = time.perf_counter()
            opts[k].zero_grad()
            relative_l2(m(x), y).backward()
            opts[k].step()
            if r:  # the first round warms up
                times[k].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    steps = -(-args.n_train // args.batch)
    return (f"s={resolution}, padding {pad}/side, {torch.get_num_threads()} thread(s): seconds per step (median of "
            f"{repeats}) pdeforge {med['pdeforge']:.2f}, neuraloperator {med['neuraloperator']:.2f} "
            f"(x{steps} steps: {steps * med['pdeforge']:.0f} vs {steps * med['neuraloperator']:.0f} s/epoch), "
            f"ratio {med['neuraloperator'] / med['pdeforge']:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=8, help="epochs both models train (phase 1)")
    p.add_argument("--max-extra", type=int, default=40, help="cap on phase-2 epochs")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=100)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--modes", type=int, default=12)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--pad", type=int, default=5, help="zero padding cells per side (symmetric)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=str, default="", help="write the markdown section here")
    p.add_argument("--profile", action="store_true", help="only profile a few training steps of each model")
    p.add_argument("--speed-only", type=int, default=0, metavar="S",
                   help="only time training steps on random data at resolution S (with --pad cells per side)")
    p.add_argument("--render", action="store_true", help=f"only rewrite the report from {RUNS.name}")
    args = p.parse_args()
    if args.render:
        saved = json.loads(RUNS.read_text())
        runners = {k: SimpleNamespace(name=k, epoch_seconds=v["epoch_seconds"], curve=[tuple(c) for c in v["curve"]])
                   for k, v in saved["runs"].items()}
        text = report(runners, SimpleNamespace(**{**saved["args"], "out": args.out or saved["args"]["out"]}),
                      saved["params"])
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.speed_only:
        print(step_times(args.speed_only, args.pad, args))
        return
    x_train, y_train, x_test, y_test = load_darcy(args.n_train, args.n_test, 85)
    xn, yn = UnitGaussian(x_train), UnitGaussian(y_train)
    data = (xn.encode(x_train), yn.encode(y_train), xn.encode(x_test), y_test)
    models = build_models(args.modes, args.width, args.layers, args.pad, 85)
    params = {k: sum(q.numel() * (2 if q.is_complex() else 1) for q in m.parameters()) for k, m in models.items()}
    for shape in ((24, 18), (86, 85), (85, 86)):
        print(check_mode_mapping(5, shape), flush=True)
    if args.profile:
        text = profile(models, data[0][: args.batch], data[1][: args.batch])
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return
    runners = {k: Runner(k, m, data, (xn, yn), args.lr, 1e-4) for k, m in models.items()}
    gen = torch.Generator().manual_seed(1)
    orders = []
    print("phase 1", flush=True)
    for epoch in range(args.epochs):
        orders.append(torch.randperm(args.n_train, generator=gen))
        names = list(runners) if epoch % 2 == 0 else list(runners)[::-1]  # alternate who goes first
        for k in names:
            runners[k].run_epoch(orders[epoch], args.batch)
    slow = max(runners.values(), key=lambda r: r.wall)
    fast = min(runners.values(), key=lambda r: r.wall)
    print(f"phase 2: {fast.name} trains until {slow.wall:.0f} s", flush=True)
    epoch = args.epochs
    while (fast.wall + statistics.median(fast.epoch_seconds) <= slow.wall * 1.02
           and epoch < args.epochs + args.max_extra):
        orders.append(torch.randperm(args.n_train, generator=gen))
        fast.run_epoch(orders[epoch], args.batch)
        epoch += 1
    RUNS.parent.mkdir(exist_ok=True)
    RUNS.write_text(json.dumps({"args": vars(args), "params": params, "runs": {
        k: {"epoch_seconds": r.epoch_seconds, "curve": r.curve} for k, r in runners.items()}}))
    text = report(runners, args, params)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
