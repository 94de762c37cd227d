"""``compare``: train and evaluate every model of a suite on the same data, split, loss and budget; tabulate.

    OUT/suite.json          the validated suite
    OUT/data/               data generated from the suite's ``generate`` section (once; reused on rerun)
    OUT/runs/<label>/       one ordinary run directory per model
    OUT/measurements/<label>.json   what compare measured of it (calibration, peak memory, inference time)
    OUT/table.md, table.csv, index.html

Everything that can be refused (unknown keys, models, options, data, a
split that does not fit) is refused before ``OUT`` is created. A rerun
reuses what is finished, judged by each run's own records: ``run.json``
finished with all its epochs, ``metrics.json`` written by ``evaluate``, and
measurements that name the run's current best weights; an
interrupted run resumes from its checkpoint. Each model trains in a process
of its own (:mod:`pdeforge.evaluation._compare_worker`) so that its peak
memory is its own.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pdeforge.data._atomic import atomic_write_json
from pdeforge.errors import PdeforgeError
from pdeforge.evaluation._compare_table import ComparisonRow, caption, write_tables
from pdeforge.evaluation._compare_worker import model_worker, read_record
from pdeforge.evaluation._evaluate import METRICS_FILE
from pdeforge.evaluation._suite import Suite, SuiteModel

__all__ = ["check_suite", "compare", "run_state"]

Report = Callable[..., None]
"""``report(event, **fields)``: ``data`` (done, total), ``model`` (index, total, label, action), ``start``,
``step``, ``epoch``, ``phase`` (forwarded from a model's process) and ``model_done`` (index, label)."""


def _problem(suite: Suite, device):
    """The generating problem of ``suite.generate`` (one line for a bad name or parameter)."""
    from pdeforge.problems import PROBLEMS

    g = suite.generate
    assert g is not None
    if g.problem not in PROBLEMS:
        raise PdeforgeError(f"unknown problem '{g.problem}' in the suite's generate section "
                            f"(known: {', '.join(PROBLEMS)})")
    cls = PROBLEMS[g.problem]
    values = {**g.set, **({"resolution": g.resolution} if g.resolution is not None else {})}
    try:
        config = cls.Config.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise PdeforgeError(f"generate.set: invalid '{key}' for problem '{g.problem}': {first['msg']}") from None
    return cls(config, device=device)


def check_suite(suite: Suite, device) -> dict[str, Any]:
    """Refuse everything that would fail later, before anything is created.

    Checks the data (existing, or the problem and its parameters), each
    model's name, option names and spatial dimensions, and each model's
    training configuration.

    Parameters
    ----------
    suite
        The validated suite.
    device
        The device generation and training run on.

    Returns
    -------
    dict
        ``spatial_dims`` of the data and, for a generated suite, the ``problem``.

    Raises
    ------
    PdeforgeError
        With one line for the first problem.
    """
    from pdeforge.data import open_dataset
    from pdeforge.models import MODELS, model_options
    from pdeforge.training import FieldLayout

    found: dict[str, Any] = {}
    if suite.generate is not None:
        problem = _problem(suite, device)
        found["problem"] = problem
        found["spatial_dims"] = min(len(shape) for shape in problem.field_shapes().values())
    else:
        assert suite.data is not None
        source = open_dataset(suite.data)
        if suite.test_data is not None:
            open_dataset(suite.test_data)
        layout = FieldLayout.of(source, suite.train.get("inputs"), suite.train.get("outputs"))
        found["spatial_dims"] = layout.spatial_dims
        need = suite.split.n_train + suite.split.n_val + (suite.split.n_test or 0)
        if need > len(source):
            raise PdeforgeError(f"the split needs {need} samples, {suite.data} holds {len(source)}")
    for m in suite.models:
        if m.name not in MODELS:
            raise PdeforgeError(f"model '{m.key}': unknown model '{m.name}' (known: {', '.join(MODELS)})")
        known = model_options(m.name)
        unknown = sorted(set(m.model_options) - set(known))
        if unknown:
            raise PdeforgeError(f"model '{m.key}': '{m.name}' has no option '{unknown[0]}' "
                                f"(options: {', '.join(known)})")
        dims = MODELS[m.name].spatial_dims
        if found["spatial_dims"] not in dims:
            raise PdeforgeError(f"model '{m.key}': '{m.name}' takes {'/'.join(map(str, dims))}-D data, the suite's "
                                f"data are {found['spatial_dims']}-D")
        suite.train_config(m, suite.budget.epochs or 1)
    return found


def _data(suite: Suite, out: Path, problem, report: Report) -> tuple[Path, Path | None]:
    """The suite's training (and test) data; generated into ``out/data`` once, resumed when interrupted."""
    if suite.generate is None:
        assert suite.data is not None
        return suite.data, suite.test_data
    from pdeforge.data import generate, plan_manifest, read_manifest

    g, target = suite.generate, out / "data"
    plan = plan_manifest(problem, n=g.samples, seed=g.seed)
    mode = "new"
    if (target / "manifest.json").is_file():
        old = read_manifest(target)
        if not old.same_dataset(plan):
            raise PdeforgeError(f"{target} holds other data than the suite's generate section asks for; "
                                "choose another --out")
        if old.complete:
            return target, None
        mode = "resume"
    done = [0]

    def progress(finished: int) -> None:
        done[0] += finished
        report("data", done=done[0], total=g.samples)

    report("data", done=0, total=g.samples)
    generate(problem, n=g.samples, seed=g.seed, out=target, mode=mode, progress=progress)
    return target, None


def _expected(suite: Suite, model: SuiteModel, epochs: int | None, data: Path, test_data: Path | None) -> dict:
    config = suite.train_config(model, epochs or 1)
    return {"config": config, "data": str(Path(data).resolve()),
            "test_data": str(Path(test_data).resolve()) if test_data else None}


def run_state(run: Path, record: Path, expected: dict, seconds_budget: bool) -> str:
    """What a model's run directory needs: ``"new"``, ``"resume"``, ``"evaluate"`` or ``"done"``.

    Judged from the run's own records (``run.json``, ``metrics.csv``,
    ``metrics.json``, best-checkpoint pointer) and ``compare.json``.

    Parameters
    ----------
    run
        The run directory.
    record
        Its measurements file.
    expected
        ``config`` (the TrainConfig the suite asks for; its epochs are not
        compared under a seconds budget), ``data`` and ``test_data`` (resolved paths).
    seconds_budget
        Whether epochs came from a calibration (then the run's own epochs stand).

    Returns
    -------
    str

    Raises
    ------
    PdeforgeError
        When the run was made with other settings or data than the suite asks for.
    """
    from pdeforge.training import read_metrics, read_spec, unfinished_epochs
    from pdeforge.training._run import best_weights_sha256

    spec = read_spec(run) if run.is_dir() else None
    if spec is None:
        return "new"
    want = expected["config"]
    if seconds_budget:
        want = want.model_copy(update={"epochs": spec.config.epochs})
    if spec.config != want or spec.data != expected["data"] or spec.test_data != expected["test_data"]:
        differs = sorted(k for k in type(want).model_fields if getattr(spec.config, k) != getattr(want, k))
        what = f"settings ({', '.join(differs)})" if differs else "data"
        raise PdeforgeError(f"{run} holds a run with other {what} than the suite asks for; "
                            "delete that directory to retrain it, or choose another --out")
    if unfinished_epochs(spec, read_metrics(run)) is not None:
        return "resume"
    measured = read_record(record)
    try:
        evaluated = "test" in json.loads((run / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        evaluated = False
    if (evaluated and measured.get("weights_sha256") == best_weights_sha256(run)
            and "inference_ms_per_sample" in measured):
        return "done"
    return "evaluate"


def _run_model(job: dict[str, Any], report: Report) -> dict[str, Any]:
    """Run :func:`~pdeforge.evaluation._compare_worker.model_worker` in a spawned process, forwarding its progress."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=model_worker, args=(job, send), name=f"pdeforge-compare-{job['label']}")
    process.start()
    send.close()
    outcome: tuple | None = None
    try:
        while True:
            try:
                message = receive.recv()
            except EOFError:
                break
            kind = message[0]
            if kind in ("done", "error", "interrupted"):
                outcome = message
            elif kind == "start":
                report("start", first_epoch=message[1], samples=message[2], epochs=message[3])
            elif kind == "step":
                report("step", samples=message[1])
            elif kind == "epoch":
                report("epoch", epoch=message[1], epochs=message[2], loss=message[3])
            elif kind == "phase":
                report("phase", text=message[1])
        process.join()
    except KeyboardInterrupt:
        # Ctrl-C reached the model's process too; it stops at a consistent point (checkpoints are atomic).
        process.join(timeout=60)
        if process.is_alive():
            process.terminate()
            process.join()
        raise
    finally:
        receive.close()
    if outcome is None:
        raise PdeforgeError(f"the process training '{job['label']}' ended unexpectedly (exit code "
                            f"{process.exitcode}); rerun the same command to resume it")
    if outcome[0] == "error":
        raise PdeforgeError(f"model '{job['label']}': {outcome[1]}")
    if outcome[0] == "interrupted":
        raise KeyboardInterrupt
    return outcome[1]


def _row(suite_model: SuiteModel, run: Path, measurements: Path) -> ComparisonRow:
    """The table row of a finished model, read from its run's records."""
    from pdeforge.training import read_metrics, read_spec

    metrics = json.loads((run / METRICS_FILE).read_text(encoding="utf-8"))
    record = read_record(measurements)
    spec = read_spec(run)
    assert spec is not None
    median = statistics.median(r["seconds"] for r in read_metrics(run))
    published = suite_model.published
    return ComparisonRow(
        label=suite_model.key, model=suite_model.name, rel_l2=metrics["test"]["rel_l2"], rel_h1=metrics["test"]["h1"],
        n_test=metrics["test"]["n"], parameters=record["parameters"], epochs=spec.config.epochs,
        seconds_per_epoch=median, inference_ms=record["inference_ms_per_sample"],
        peak_memory_bytes=record.get("peak_memory_bytes"), memory_kind=record.get("memory_kind"),
        threads=record.get("training_threads"), device=record.get("device", "?"),
        published=None if published is None else published.value,
        source=None if published is None else published.source)


def compare(suite: Suite, out: Path, *, device,
            report: Report = lambda event, **fields: None) -> list[ComparisonRow]:
    """Train, evaluate and time every model of ``suite`` into ``out``; write the tables; return the rows.

    Parameters
    ----------
    suite
        The validated suite.
    out
        The comparison directory (created; a rerun continues it).
    device
        A :class:`torch.device` or its name, for generation, training and timing.
    report
        Progress callback (see :data:`Report`).

    Returns
    -------
    list of ComparisonRow
        One row per model, sorted by test relative L2.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PdeforgeError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "suite.json").is_file():
        raise PdeforgeError(f"{out} is not empty and holds no comparison; choose another --out")
    found = check_suite(suite, device)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "suite.json", suite.model_dump(mode="json"))
    data, test_data = _data(suite, out, found.get("problem"), report)
    seconds = suite.budget.seconds
    rows = []
    for index, m in enumerate(suite.models):
        run, record = out / "runs" / m.key, out / "measurements" / f"{m.key}.json"
        expected = _expected(suite, m, suite.budget.epochs, data, test_data)
        state = run_state(run, record, expected, seconds is not None)
        report("model", index=index, total=len(suite.models), label=m.key, action=state)
        if state != "done":
            job = {"label": m.key, "run": str(run), "record": str(record),
                   "config": expected["config"].model_dump(mode="json"), "data": str(data),
                   "test_data": str(test_data) if test_data else None, "device": str(device), "seconds": seconds}
            record.parent.mkdir(parents=True, exist_ok=True)
            _run_model(job, report)
        rows.append(_row(m, run, record))
        report("model_done", index=index, label=m.key)
    rows.sort(key=lambda r: r.rel_l2)
    write_tables(out, rows, caption(suite, rows, data, test_data))
    return rows

