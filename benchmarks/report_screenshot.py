"""The HTML report as a stranger sees it: a tiny run's report, screenshotted by headless Chromium at 1280 px.

Run:  .venv/bin/python benchmarks/report_screenshot.py [--out benchmarks/results/report_1280.png]

Needs Debian's ``chromium`` (``apt-get install -y chromium``). The script
generates 40 Darcy samples at 17^2, trains a small FNO for 2 epochs,
evaluates it (with 2x zero-shot super-resolution on 8 samples), writes the
report with the demo's target 0.05 and screenshots ``report.html`` in a
1280 px wide window. Look at the PNG: no table or figure may be wider than
the window, and every plot must say what it shows. The PNG is reduced to a
palette image when it would exceed 500 KB.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

LIMIT_BYTES = 500_000


def _browser() -> str:
    """The Chromium executable, or a one-line exit when there is none."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no chromium found: apt-get install -y chromium")


def make_report(root: Path) -> Path:
    """A tiny trained, evaluated and reported run under ``root``; the report's path."""
    import torch

    from pdeforge.data import generate
    from pdeforge.evaluation import evaluate_run, write_report
    from pdeforge.problems import Darcy, DarcyConfig
    from pdeforge.training import TrainConfig, train

    cpu = torch.device("cpu")
    data = root / "data"
    generate(Darcy(DarcyConfig(resolution=17)), n=40, seed=0, out=data, shard_size=20)
    run = root / "run"
    config = TrainConfig(model="fno", model_options={"modes": 4, "width": 8, "layers": 2}, epochs=2,
                         batch_size=8, lr=3e-3, n_val=8, n_test=8)
    train(run, config, data, device=cpu)
    evaluate_run(run, device=cpu, superres=[2], n_superres=8)
    return write_report(run, target=0.05)


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2400) -> Path:
    """Screenshot ``page`` in headless Chromium with a ``width`` x ``height`` window into ``out``."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        f"--screenshot={out.resolve()}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    if out.stat().st_size > LIMIT_BYTES:
        from PIL import Image

        with Image.open(out) as image:
            image.convert("RGB").quantize(colors=64).save(out, optimize=True)
    return out


def main() -> None:
    """Make the run, write its report, screenshot it and print where and how large the PNG is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "report_1280.png")
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = make_report(Path(tmp))
        png = screenshot(report, args.out)
    print(f"{png}: {png.stat().st_size / 1e3:.0f} KB, in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
