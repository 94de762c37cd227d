"""``report``: one self-contained HTML page per run (plots embedded, no external files).

The page is written for someone who did not make the run: it names the
problem and its equation, defines every metric in one line, shows the target
when there is one, writes speed-ups as "N x faster/slower than the solver",
says when the run stopped before its configured epochs, and points out a
systematic sign of the error (a bias) where there is one.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path

from pdeforge import __version__
from pdeforge.data import read_manifest
from pdeforge.data._atomic import atomic_path, atomic_write_json
from pdeforge.errors import PdeforgeError
from pdeforge.evaluation._evaluate import METRICS_FILE
from pdeforge.problems import PROBLEMS
from pdeforge.training import RunSpec, read_metrics, read_spec, unfinished_epochs

__all__ = ["bias_sentence", "speedup_sentence", "write_report", "TARGET_FILE", "BIAS_RATIO"]

TARGET_FILE = "target.json"
"""Where :func:`write_report` keeps a run's target, so later reports show it too."""
BIAS_RATIO = 0.5
"""The error is called one-signed when ``|mean signed error| > BIAS_RATIO * mean |error|``."""

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0;max-width:100%}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3}img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
code{background:#f6f6f6;padding:1px 4px;overflow-wrap:anywhere}
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:.5em 1em}
.finding{background:#e8f1ff;border-left:4px solid #3a78d8;padding:.5em 1em}
dt{font-weight:bold}dd{margin:0 0 .5em 1.5em}
"""

METRICS = (
    ("relative L2", "||prediction - truth||_2 / ||truth||_2 over all grid points and output channels of a sample, "
                    "averaged over the test samples (0 is exact, 1 is as large as the solution itself)."),
    ("relative H1", "the same ratio in the Sobolev H1 norm, which also weighs gradients: each field's Fourier "
                    "coefficients c_k are summed as sum (1 + |k|^2) |c_k|^2 with angular wavenumbers k; fields on "
                    "a non-periodic grid are first extended to a periodic one by even reflection."),
    ("super-resolution error", "the relative L2 and H1 errors on fresh samples that the same solver made at 2x or "
                               "4x the training resolution, predicted by the model trained at the training "
                               "resolution without retraining (zero-shot)."),
    ("throughput", "test samples the trained model predicts per second on the device (median of five timed "
                   "batches after a warm-up)."),
    ("speed-up", "the generating solver's median seconds per sample divided by the model's seconds per sample at "
                 "the same resolution: above 1 the model is faster, below 1 the solver is."),
)


def speedup_sentence(speedup: float | None) -> str:
    """The speed-up as words: ``0.74`` is "1.4x slower than the solver at this size", ``2.3`` "2.3x faster ...".

    Parameters
    ----------
    speedup
        Solver time over surrogate time per sample; ``None`` when the solver's time is not known.

    Examples
    --------
    >>> speedup_sentence(0.74)
    '1.4x slower than the solver at this size'
    >>> speedup_sentence(2.3)
    '2.3x faster than the solver at this size'
    """
    if speedup is None or not speedup > 0:
        return "not known (the data do not record the solver's time per sample)"
    if speedup >= 1:
        return f"{speedup:.1f}x faster than the solver at this size"
    return f"{1 / speedup:.1f}x slower than the solver at this size"


def bias_sentence(sign: dict | None) -> str | None:
    r"""A sentence on a systematic sign of the error, or ``None`` when the error is not clearly one-signed.

    Parameters
    ----------
    sign
        The ``sign`` record of ``metrics.json`` (see :func:`pdeforge.evaluation._evaluate.sign_bias`).

    Examples
    --------
    >>> found = bias_sentence({"ratio": 0.9, "relative_to_rms": -0.031, "positive_fraction": 0.04})
    >>> print(*found.split(": "), sep="\n")
    the error has a systematic sign (prediction too low on average by 3.1% of the solution's RMS)
    a bias, not noise; the prediction is too high at 4% of the points
    >>> bias_sentence({"ratio": 0.1, "relative_to_rms": 0.001, "positive_fraction": 0.52}) is None
    True
    """
    if not sign or abs(sign.get("ratio", 0.0)) <= BIAS_RATIO:
        return None
    way = "high" if sign["relative_to_rms"] > 0 else "low"
    share = sign.get("positive_fraction")
    where = f"; the prediction is too high at {share:.0%} of the points" if share is not None else ""
    return (f"the error has a systematic sign (prediction too {way} on average by "
            f"{abs(sign['relative_to_rms']):.1%} of the solution's RMS): a bias, not noise{where}")


def _speedup_cell(speedup: float | None) -> str:
    """The speed-up in words, and the ratio itself when it is known."""
    words = speedup_sentence(speedup)
    return words if speedup is None else f"{words} (solver time / model time = {_fmt(speedup)})"


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


def _seconds(value: float | None) -> str:
    if value is None:
        return "not recorded"
    if value < 1e-3:
        return f"{value * 1e6:.3g} microseconds"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def _image(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure style='margin:1em 0'><img style='max-width:100%;height:auto' alt='{html.escape(caption)}' "
            f"src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}</figcaption></figure>")


def _size(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _patching(patching) -> str:
    """The run's multi-grid patching in words, or nothing without it."""
    if patching is None:
        return ""
    return (f" on multi-grid patches ({patching.patches} per axis, {patching.levels} coarse levels, "
            f"padding {patching.padding:g} of a patch)")


def _problem(spec: RunSpec) -> list[str]:
    """What is known about the problem behind the run's data: name, equation, fields, key configuration."""
    data = Path(spec.data)
    fields = (f"input <code>{html.escape(', '.join(spec.layout.inputs))}</code> -&gt; output "
              f"<code>{html.escape(', '.join(spec.layout.outputs))}</code> on a "
              f"{_size(spec.layout.space)} grid ({spec.layout.in_channels} -&gt; {spec.layout.out_channels} "
              f"channels)")
    if data.is_dir():
        try:
            manifest = read_manifest(data)
        except PdeforgeError as exc:
            return [f"<p>The data at <code>{html.escape(str(data))}</code> cannot be read now "
                    f"({html.escape(str(exc))}); the model maps {fields}.</p>"]
        cls = PROBLEMS.get(manifest.problem)
        name = html.escape(cls.summary if cls is not None else manifest.problem)
        parts = [f"<p>Problem <b>{html.escape(manifest.problem)}</b>: {name}.</p>"]
        equation = getattr(cls, "equation", None)
        if equation:
            parts.append(f"<p>Equation: <code>{html.escape(equation)}</code></p>")
        parts.append(f"<p>The model maps {fields}. {manifest.n_samples} samples, seed {manifest.seed}.</p>")
        config = dict(manifest.config)
        resolution = config.pop("resolution", None)
        rows = [("resolution", resolution)] if resolution is not None else []
        rows += [(k, json.dumps(v)) for k, v in config.items()]
        parts.append("<p>The dataset's configuration:</p>" + _table(rows, ("parameter", "value")))
        return parts
    kind = {".h5": "a PDEBench HDF5 file", ".hdf5": "a PDEBench HDF5 file",
            ".pt": "a neuraloperator .pt file"}.get(data.suffix.lower(), "a foreign data file")
    return [f"<p>The data are {kind}, <code>{html.escape(data.name)}</code>; such files do not record which equation "
            f"made them or its parameters, so only their fields are known: the model maps {fields}.</p>"]


def _unfinished(run: Path, spec: RunSpec, rows: list[dict]) -> str:
    """The note that a run stopped before its configured epochs, or ``""`` for a finished run."""
    stopped = unfinished_epochs(spec, rows)
    if stopped is None:
        return ""
    done, planned = stopped
    best = None
    pointer = run / "checkpoints" / "best.json"
    if pointer.is_file():
        try:
            best = int(json.loads(pointer.read_text())["epoch"])
        except (ValueError, KeyError, TypeError):
            best = None
    which = f"epoch {best}'s best checkpoint" if best is not None else "its best checkpoint so far"
    return (f"<p class='note'><b>Unfinished run.</b> This run stopped at epoch {done} of {planned} "
            f"configured; its numbers are those of {which}. Rerun <code>pdeforge train</code> on the same "
            f"directory to finish it.</p>")


def _target(run: Path, target: float | None) -> float | None:
    """The target given now (stored in ``run/target.json``) or the one stored by an earlier report."""
    path = run / TARGET_FILE
    if target is not None:
        atomic_write_json(path, {"rel_l2": float(target)})
        return float(target)
    if path.is_file():
        try:
            return float(json.loads(path.read_text())["rel_l2"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def write_report(run: Path, target: float | None = None) -> Path:
    """Write ``run/report.html`` from ``run.json``, ``metrics.csv``, ``metrics.json`` and the plots.

    Parameters
    ----------
    run
        An evaluated run directory.
    target
        A test relative L2 error the run is meant to reach (the demo's 0.05).
        It is kept in ``run/target.json``, so later reports on the run show it
        too; ``None`` shows a stored target, if any.

    Returns
    -------
    Path
        The report's path.
    """
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
    goal = _target(run, target)
    test = metrics["test"]
    parts = [f"<h1>pdeforge run <code>{html.escape(run.name)}</code></h1>", _unfinished(run, spec, rows),
             "<h2>What was learned</h2>", *_problem(spec),
             f"<p>Model <b>{html.escape(c.model)}</b>{_patching(c.patching)} trained with loss "
             f"<code>{html.escape(c.loss)}</code> on "
             f"<code>{html.escape(spec.data)}</code>; pdeforge {html.escape(__version__)}.</p>",
             "<h2>Metrics</h2><dl>",
             *(f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>" for name, text in METRICS), "</dl>",
             "<h2>Accuracy on the test split</h2>"]
    if goal is not None:
        verdict = "meets" if test["rel_l2"] <= goal else "misses"
        parts.append(f"<p><b>Target: test relative L2 &le; {goal:g}.</b> The run {verdict} it "
                     f"({_fmt(test['rel_l2'])}).</p>")
    parts.append(_table([
        ("relative L2 (mean)", _fmt(test["rel_l2"])), ("relative L2 (median)", _fmt(test["rel_l2_stats"]["median"])),
        ("relative L2 (max)", _fmt(test["rel_l2_stats"]["max"])), ("relative H1 (mean)", _fmt(test["h1"])),
        *([("target relative L2", f"{goal:g}")] if goal is not None else []),
        ("test samples", test["n"]), ("resolution", _size(metrics["resolution"])),
    ], ("metric", "value")))
    finding = bias_sentence(test.get("sign"))
    if finding:
        parts.append(f"<p class='finding'>On the test split {html.escape(finding, quote=False)}.</p>")
    if metrics.get("superres"):
        parts.append("<h2>Zero-shot super-resolution</h2>")
        parts.append(_table([(f"{k}: {_size(v['resolution'])}",
                              f"relative L2 {_fmt(v['rel_l2'])}, relative H1 {_fmt(v['h1'])} ({v['n']} samples)")
                             for k, v in metrics["superres"].items()], ("resolution", "error")))
        for key, value in metrics["superres"].items():
            finding = bias_sentence(value.get("sign"))
            if finding:
                parts.append(f"<p class='finding'>At {key} ({_size(value['resolution'])}) "
                             f"{html.escape(finding, quote=False)}.</p>")
    th = metrics["throughput"]
    parts.append("<h2>Speed</h2>")
    speed_rows: list[tuple[object, object]] = [
        ("device", th["device"]), ("model throughput", f"{_fmt(th['inference_samples_per_second'])} samples/s"),
        (f"solver time per sample at {_size(metrics['resolution'])}", _seconds(th["solver_seconds_per_sample"])),
        (f"model time per sample at {_size(metrics['resolution'])}", _seconds(th["inference_seconds_per_sample"])),
        (f"speed-up at {_size(metrics['resolution'])}", _speedup_cell(th["speedup_over_solver"])),
    ]
    big = th.get("largest_resolution")
    if big and list(big["resolution"]) != list(metrics["resolution"]):
        at = _size(big["resolution"])
        speed_rows += [(f"solver time per sample at {at} (largest evaluated)",
                        _seconds(big["solver_seconds_per_sample"])),
                       (f"model time per sample at {at} (largest evaluated)",
                        _seconds(big["surrogate_seconds_per_sample"])),
                       (f"speed-up at {at}", _speedup_cell(big["speedup_over_solver"]))]
    parts.append(_table(speed_rows, ("quantity", "value")))
    parts.append("<h2>Figures</h2>")
    for name, caption in (("samples.png", "test samples: input | truth | prediction | error (prediction - truth)"),
                          ("error_spectrum.png", "energy per wavenumber of the truth and of the error (test set)"),
                          ("training.png", "training and validation loss, and learning rate, per epoch")):
        parts.append(_image(run / "plots" / name, caption))
    if "lead_time" in metrics:
        lead = metrics["lead_time"]
        parts.append(f"<p>Errors per stored snapshot over {lead['n']} test trajectories: relative L2 from "
                     f"{_fmt(lead['rel_l2'][0])} at t = {_fmt(lead['t'][0])} to {_fmt(lead['rel_l2'][-1])} at "
                     f"t = {_fmt(lead['t'][-1])}; VRMSE is The Well's variance-scaled RMSE, and the binned "
                     "spectral MSE splits the squared error into three log-spaced wavenumber bands.</p>")
        for name, caption in (("lead_time.png", "error against lead time: relative L2, VRMSE, binned spectral MSE"),
                              ("lead_time_spectra.png", "energy spectra of truth and prediction at four lead times"),
                              ("lead_time_strip.png", "one test trajectory: truth | prediction | error at four lead "
                                                      "times")):
            parts.append(_image(run / "plots" / name, caption))
    refined = run / "refine.json"
    if refined.is_file():
        r = json.loads(refined.read_text())
        parts.append(f"<p>Spectral-Refiner: the last spectral layer fine-tuned without targets on the H^-1 "
                     f"Navier-Stokes residual, {r['steps']} steps on each of {r['samples']} test inputs: relative "
                     f"L2 {_fmt(r['rel_l2'][0])} to {_fmt(r['rel_l2'][-1])}, residual {_fmt(r['h_minus1'][0])} "
                     f"to {_fmt(r['h_minus1'][-1])}.</p>")
        parts.append(_image(run / "plots" / "refine.png", "error and H^-1 residual against fine-tuning step"))
    for key, value in metrics.get("superres", {}).items():
        parts.append(_image(run / "plots" / f"superres_{key}.png",
                            f"zero-shot super-resolution {key} ({_size(value['resolution'])}): input | truth | "
                            f"prediction | error (prediction - truth)"))
    if rows:
        parts.append("<h2>Training</h2>")
        last = rows[-1]
        parts.append(_table([("epochs", f"{int(last['epoch'])} of {c.epochs} configured"),
                             ("final train loss", _fmt(last["train_loss"])),
                             ("final validation loss", _fmt(last["val_loss"])),
                             ("seconds per epoch (median)", _fmt(sorted(r["seconds"] for r in rows)[len(rows) // 2]))]))
        if spec.online is not None and "produced" in last:
            online = spec.online["config"]
            parts.append("<p>Trained online: samples were solved while the model trained, and every batch was "
                         "drawn from a bounded buffer of them.</p>")
            parts.append(_table([("training samples produced", int(last["produced"])),
                                 ("buffer", f"{online['capacity']} samples, {online['policy']} policy"),
                                 ("largest buffer occupancy", int(last["max_occupancy"])),
                                 ("samples drawn into batches", int(last["draws"]))]))
    parts.append("<h2>Configuration</h2>")
    parts.append(_table([(k, json.dumps(v)) for k, v in c.model_dump(mode="json").items()], ("key", "value")))
    if spec.online is None:  # an online run has no split: its validation and test sets are separate datasets
        parts.append(_table([(k, f"{a}..{b}") for k, (a, b) in spec.split.__dict__.items()],
                            ("split", "sample range")))
    page = (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>pdeforge run {html.escape(run.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    out = run / "report.html"
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
