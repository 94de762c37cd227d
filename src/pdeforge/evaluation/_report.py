"""``report``: one self-contained HTML page per run (plots embedded, no external files)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

from pdeforge import __version__
from pdeforge.data._atomic import atomic_path
from pdeforge.errors import PdeforgeError
from pdeforge.evaluation._evaluate import METRICS_FILE
from pdeforge.training import read_metrics, read_spec

__all__ = ["write_report"]

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f6f6f6;padding:1px 4px}
"""


def _table(rows: Sequence[tuple[object, object]], header: tuple[str, str] | None = None) -> str:
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>" if header else ""
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{head}{body}</table>"


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _image(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_report(run: Path) -> Path:
    """Write ``run/report.html`` from ``run.json``, ``metrics.csv``, ``metrics.json`` and the plots."""
    run = Path(run)
    spec = read_spec(run)
    if spec is None:
        raise PdeforgeError(f"{run} is not a pdeforge run")
    metrics_path = run / METRICS_FILE
    if not metrics_path.is_file():
        raise PdeforgeError(f"{run} has not been evaluated yet; run `pdeforge evaluate {run}` first")
    metrics = json.loads(metrics_path.read_text())
    rows = read_metrics(run)
    c = spec.config
    parts = [f"<h1>pdeforge run <code>{html.escape(run.name)}</code></h1>",
             f"<p>Model <b>{html.escape(c.model)}</b> trained on <code>{html.escape(spec.data)}</code>; "
             f"pdeforge {html.escape(__version__)}.</p>", "<h2>Accuracy on the test split</h2>"]
    test = metrics["test"]
    parts.append(_table([
        ("relative L2 (mean)", _fmt(test["rel_l2"])), ("relative L2 (median)", _fmt(test["rel_l2_stats"]["median"])),
        ("relative L2 (max)", _fmt(test["rel_l2_stats"]["max"])), ("relative H1 (mean)", _fmt(test["h1"])),
        ("test samples", test["n"]), ("resolution", "x".join(map(str, metrics["resolution"]))),
    ], ("metric", "value")))
    if metrics.get("superres"):
        parts.append("<h2>Zero-shot super-resolution</h2>")
        parts.append(_table([(f"{k}: {'x'.join(map(str, v['resolution']))}",
                              f"rel L2 {_fmt(v['rel_l2'])}, H1 {_fmt(v['h1'])} ({v['n']} samples)")
                             for k, v in metrics["superres"].items()], ("resolution", "error")))
    th = metrics["throughput"]
    parts.append("<h2>Speed</h2>")
    parts.append(_table([
        ("device", th["device"]), ("inference samples/s", _fmt(th["inference_samples_per_second"])),
        ("generating solver, seconds/sample", _fmt(th["solver_seconds_per_sample"])),
        ("speed-up over the solver", _fmt(th["speedup_over_solver"])),
    ], ("quantity", "value")))
    for name, caption in (("samples.png", "input | truth | prediction | error on test samples"),
                          ("error_spectrum.png", "energy spectrum of truth and error"),
                          ("training.png", "training curves")):
        parts.append(_image(run / "plots" / name, caption))
    for key in metrics.get("superres", {}):
        parts.append(_image(run / "plots" / f"superres_{key}.png", f"super-resolution {key}"))
    if rows:
        parts.append("<h2>Training</h2>")
        last = rows[-1]
        parts.append(_table([("epochs", int(last["epoch"])), ("final train loss", _fmt(last["train_loss"])),
                             ("final validation loss", _fmt(last["val_loss"])),
                             ("seconds per epoch (median)", _fmt(sorted(r["seconds"] for r in rows)[len(rows) // 2]))]))
    parts.append("<h2>Configuration</h2>")
    parts.append(_table([(k, json.dumps(v)) for k, v in c.model_dump(mode="json").items()], ("key", "value")))
    parts.append(_table([(k, f"{a}..{b}") for k, (a, b) in spec.split.__dict__.items()], ("split", "sample range")))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>pdeforge run {html.escape(run.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    target = run / "report.html"
    with atomic_path(target) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return target
