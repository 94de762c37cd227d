"""Multi-grid patching on 255x255 Darcy: peak training memory and test error vs levels, against the plain TFNO.

Run:  .venv/bin/python benchmarks/mg_patching.py [--n 100] [--epochs 3] [--patches 2 4] [--levels 0 1 2]
Smoke: .venv/bin/python benchmarks/mg_patching.py --resolution 33 --n 12 --epochs 1 --width 4 --modes 2 \\
           --patches 2 --levels 0 1

Data: ``pdeforge generate darcy --resolution 257`` (docs/conventions.md:
``R = 257`` nodes per axis hold 255^2 unknowns; the stored fields are
257 x 257 with the boundary nodes). Darcy is not periodic, so the patches are
padded by mirror reflection, and since 257 is not a multiple of 2 or 4 the
last patch of each axis runs past the end and is cropped (see
:class:`pdeforge.models.MultigridPatching`). ``--data DIR`` reuses a dataset.

Configurations: the plain TFNO, then for every ``--patches P`` (P x P
patches) and ``--levels L`` the TFNO wrapped in multi-grid patching
(``--set patching.patches=P --set patching.levels=L``). All share the model
options, optimiser, epochs, batch, split and seed. Each configuration is
trained by ``pdeforge.training.train`` (the pipeline of ``pdeforge train``) in
a fresh Python process, which reports:

* peak memory: on CPU the process's peak resident set (``resource``
  ``ru_maxrss``), with the peak of the same process just before training
  (torch and pdeforge imported, nothing trained) shown beside it, so the
  difference is what training added; on CUDA ``torch.cuda.max_memory_allocated``;
* the test relative L2 of the best checkpoint (``summary["test_rel_l2"]``);
* the training wall-clock.

What to expect: with ``chunks = 1`` the wrapper runs every patch of a sample
in the same step, so the inner network sees ``(1 + 2 padding)^2`` times as
many points as the whole field and the activation memory does not fall.
``--chunks K`` (``patching.chunks``) trains on the patches in ``K`` groups
whose activations are recomputed in the backward pass, which is where
training on patches saves memory; every patched configuration is run with
each value of ``--chunks``. The table measures what the wrapper costs and
what the coarse levels buy in accuracy at equal budget.

Prints a markdown table. The defaults (100 samples: 80 train, 10 validation,
10 test; 3 epochs; width 16; padding 0.125) aim at about 10 minutes on 2 quiet
CPU cores. That is an estimate from timing single training steps at 257^2
on a loaded machine (a patched step cost about 3 to 4 times an unpatched one
at padding 0.25, about 2.4 times as many points), not a measured full run;
``--epochs`` and ``--n`` scale it linearly.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(request: dict) -> dict:
    """Train one configuration in this process; its memory, error and time."""
    import torch

    from pdeforge.training import TrainConfig, train

    device = torch.device(request["device"])
    config = TrainConfig.model_validate(request["config"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    summary = train(Path(request["run"]), config, Path(request["data"]), device=device, overwrite=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    cuda_peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"test_rel_l2": summary["test_rel_l2"], "seconds": seconds, "rss_before_mib": before / 1024,
            "rss_peak_mib": peak / 1024, "cuda_peak_mib": None if cuda_peak is None else cuda_peak / 2 ** 20}


def generate(out: Path, resolution: int, n: int) -> None:
    """A Darcy dataset at ``resolution`` nodes per axis through the command line."""
    subprocess.run([sys.executable, "-m", "pdeforge", "generate", "darcy", "--resolution", str(resolution),
                    "--n", str(n), "--out", str(out)], check=True)


def configurations(args: argparse.Namespace) -> list[tuple[str, dict | None]]:
    """``(label, patching)`` for the plain TFNO and every patches x levels pair."""
    rows: list[tuple[str, dict | None]] = [("TFNO, whole field", None)]
    for patches in args.patches:
        for levels in args.levels:
            for chunks in args.chunks:
                rows.append((f"{patches}x{patches} patches, {levels} levels, {chunks} chunk(s)",
                             {"patches": patches, "levels": levels, "padding": args.padding, "chunks": chunks}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=257, help="Darcy nodes per axis (257: 255^2 unknowns)")
    parser.add_argument("--n", type=int, default=100,
                        help="samples (generated, or in --data); n // 5, at most 10, each validate and test")
    parser.add_argument("--data", type=Path, default=None, help="reuse this Darcy dataset instead of generating")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--width", type=int, default=16, help="TFNO width")
    parser.add_argument("--modes", type=int, default=12, help="TFNO modes per axis (on a patch, for patched runs)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--patches", type=int, nargs="+", default=[2, 4], help="patches per axis to try")
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2], help="coarse levels to try")
    parser.add_argument("--padding", type=float, default=0.125, help="patch padding as a fraction of the patch")
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 4],
                        help="groups the patches are trained in (activation checkpointing per group)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(json.loads(args.child))))
        return

    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    held = min(10, max(1, args.n // 5))
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "darcy"
            generate(data, args.resolution, args.n)
        options = {"width": args.width, "modes": args.modes, "layers": args.layers}
        results = []
        for label, patching in configurations(args):
            config = {"model": "tfno", "model_options": options, "epochs": args.epochs,
                      "batch_size": args.batch_size, "lr": args.lr, "n_val": held, "n_test": held, "seed": 0,
                      "patching": patching}
            request = {"config": config, "data": str(data), "run": str(Path(tmp) / "run"), "device": args.device}
            out = subprocess.run([sys.executable, __file__, "--child", json.dumps(request)], check=True,
                                 capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results.append((label, result))
            print(f"{label}: {result}", file=sys.stderr)

    cuda = args.device.startswith("cuda")
    print(f"\nDarcy {args.resolution}x{args.resolution} nodes, TFNO width {args.width}, modes {args.modes}, "
          f"{args.layers} layers, {args.epochs} epochs, batch {args.batch_size}, padding {args.padding}, "
          f"device {args.device}\n")
    memory = "peak CUDA MiB" if cuda else "peak RSS MiB (before training)"
    print(f"| configuration | {memory} | test rel. L2 | train s |")
    print("| --- | --- | --- | --- |")
    for label, r in results:
        mem = (f"{r['cuda_peak_mib']:.0f}" if cuda
               else f"{r['rss_peak_mib']:.0f} ({r['rss_before_mib']:.0f})")
        print(f"| {label} | {mem} | {r['test_rel_l2']:.4f} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
