"""``pdeforge generate``, ``pdeforge info`` and ``pdeforge problems``.

Only light modules are imported here; each command imports the layers it
needs (see :mod:`pdeforge.cli._main`).
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pdeforge.cli._progress import LazyProgress, stderr
from pdeforge.errors import PdeforgeError

stdout = Console()


def _problem_class(name: str):
    from pdeforge.problems import PROBLEMS

    try:
        return PROBLEMS[name]
    except KeyError:
        raise PdeforgeError(f"unknown problem '{name}' (known: {', '.join(PROBLEMS)})") from None


def generate_command(
    problem: Annotated[str, typer.Argument(help="problem name (see `pdeforge problems`)")],
    out: Annotated[Path, typer.Option("--out", help="dataset directory to create")],
    n: Annotated[int, typer.Option("--n", help="number of samples")] = 100,
    resolution: Annotated[
        int | None, typer.Option("--resolution", help="grid points per axis of the stored fields")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="dataset seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="continue an interrupted run in OUT")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the dataset in OUT")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file of problem parameters")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override one parameter: key=value (repeatable)")
    ] = None,
    shard_size: Annotated[
        int | None, typer.Option("--shard-size", help="samples per shard (default: about 128 MiB)")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="samples solved together")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda")] = "auto",
    workers: Annotated[
        int | None, typer.Option("--workers", help="write shards on an embedded Dask cluster of N worker processes")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="write shards on the Dask cluster at this address (tcp://...)")
    ] = None,
) -> None:
    """Generate a dataset of solved samples (resumable, checksummed; on a Dask cluster with --workers/--scheduler)."""
    from pdeforge._device import choose_device
    from pdeforge.cli._config import build_config, parse_overrides
    from pdeforge.data import generate

    if resume and overwrite:
        raise PdeforgeError("--resume and --overwrite exclude each other")
    cls = _problem_class(problem)
    cfg = build_config(cls.Config, problem, file=config, overrides=parse_overrides(set_),
                       explicit={"resolution": resolution})
    instance = cls(cfg, device=choose_device(device))
    mode = "resume" if resume else "overwrite" if overwrite else "new"
    options: dict[str, Any] = {"n": n, "seed": seed, "out": out, "shard_size": shard_size, "batch_size": batch_size,
                               "mode": mode}
    if workers is None and scheduler is None:
        with LazyProgress(problem, total=n) as progress:
            manifest = generate(instance, progress=progress, **options)
    else:
        from pdeforge.distributed import cluster_client, dashboard_message, generate_on_dask

        with cluster_client(workers, scheduler) as client:  # refuses both, or --workers below 1
            assert client is not None  # --workers or --scheduler was given
            stderr.print(dashboard_message(client, embedded=workers is not None), highlight=False)
            with LazyProgress(problem, total=n) as progress:
                manifest = generate_on_dask(instance, client, progress=progress, **options)
    stderr.print(f"wrote {manifest.n_samples} samples in {len(manifest.shards)} shard(s) to {out}")


def _range(values) -> str:
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return "-"
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    return f"{lo:.4g}" if lo == hi else f"{lo:.4g} .. {hi:.4g} (mean {float(np.nanmean(v)):.4g})"


def info_command(
    path: Annotated[Path, typer.Argument(help="dataset directory, PDEBench .h5 or neuraloperator .pt")],
) -> None:
    """Describe a dataset and verify every shard's checksum (non-zero exit on failure)."""
    from rich.table import Table

    from pdeforge.data._readers import PdeforgeDataset, open_dataset

    source = open_dataset(path, allow_incomplete=True)
    table = Table(title=source.describe(), show_header=False)
    table.add_row("samples", str(len(source)))
    for name, shape in source.input_shapes.items():
        table.add_row(f"input {name}", str(list(shape)))
    for name, shape in source.output_shapes.items():
        table.add_row(f"output {name}", str(list(shape)))
    failures = 0
    if isinstance(source, PdeforgeDataset):
        m = source.manifest
        table.add_row("problem", m.problem)
        table.add_row("seed", str(m.seed))
        table.add_row("complete", "yes" if m.complete else f"no ({len(source)} of {m.n_samples} samples)")
        table.add_row("config", ", ".join(f"{k}={v}" for k, v in m.config.items()))
        statuses = source.verify()
        failures = sum(not s.ok for s in statuses)
        for s in statuses:
            table.add_row(f"shard {s.record.path}", f"{s.record.count} samples, {s.message}")
        if failures == 0 and statuses:
            for group in ("params", "diagnostics"):
                for name, values in source.table(group).items():
                    if name != "seed":
                        table.add_row(f"{group} {name}", _range(values))
    else:
        inputs, outputs = source.read(0, len(source))
        for name, values in {**inputs, **outputs}.items():
            table.add_row(f"range {name}", _range(values))
    stdout.print(table)
    if failures:
        raise PdeforgeError(f"{failures} shard(s) of {path} failed verification")


def choices(field: Any) -> tuple[str, ...]:
    """The allowed values of a choice field of a pydantic config, or ``()`` for any other field.

    A choice is a ``typing.Literal`` annotation; a string constrained by a
    pure alternation pattern ``^(a|b|c)$`` is read as one too.

    Parameters
    ----------
    field
        A :class:`pydantic.fields.FieldInfo` (``Config.model_fields[name]``).

    Returns
    -------
    tuple of str
        The values, in declaration order.

    Examples
    --------
    >>> import typing
    >>> from pydantic import BaseModel
    >>> class C(BaseModel):
    ...     mode: typing.Literal["fast", "exact"] = "fast"
    ...     level: int = 1
    >>> choices(C.model_fields["mode"]), choices(C.model_fields["level"])
    (('fast', 'exact'), ())
    """
    if typing.get_origin(field.annotation) is typing.Literal:
        return tuple(str(v) for v in typing.get_args(field.annotation))
    for meta in field.metadata:
        match = re.fullmatch(r"\^\(([\w.|-]+)\)\$", str(getattr(meta, "pattern", None) or ""))
        if match:
            return tuple(match.group(1).split("|"))
    return ()


def problems_command() -> None:
    """List the problems, their parameters with defaults and allowed values, and the methods that solve each."""
    from rich.table import Table

    from pdeforge.problems import PROBLEMS
    from pdeforge.solvers import METHOD_TABLES, choose_method

    for name, cls in PROBLEMS.items():
        table = Table(title=f"{name}: {cls.summary}", title_justify="left")
        table.add_column("key")
        table.add_column("default")
        table.add_column("meaning")
        key = "integrator" if cls.method_kind == "integrator" else "solver"
        methods = METHOD_TABLES[cls.method_kind]
        for field_name, field in cls.Config.model_fields.items():
            meaning = field.description or ""
            if field_name == key:
                meaning = f"{methods.family}: {', '.join(methods.names)}"
                if "auto" in methods.names:
                    meaning += f" (auto here: {choose_method(cls()).name})"
            elif field_name == "preset" and cls.Config.PRESETS:
                meaning = f"{meaning}: " + "; ".join(
                    f"{preset} ({', '.join(f'{k}={v}' for k, v in values.items())})"
                    for preset, values in cls.Config.PRESETS.items())
            elif choices(field):
                meaning = f"{meaning}: {', '.join(choices(field))}" if meaning else ", ".join(choices(field))
            table.add_row(field_name, repr(field.default), meaning)
        stdout.print(table)
