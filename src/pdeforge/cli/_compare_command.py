"""``pdeforge compare``: every model of a suite on the same data, split, loss and budget, in one table.

Only light modules are imported here; the command's body imports the
layers it needs (see :mod:`pdeforge.cli._main`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pdeforge.cli._progress import LazyProgress, progress_bar, stderr

stdout = Console()


class CompareProgress:
    """The progress of a comparison: a bar across models, and the current step (data, training, evaluation).

    On a terminal one live display holds two bars; elsewhere a line per
    model and plain progress lines for its training (see
    :class:`~pdeforge.cli._progress.LazyProgress`).

    Parameters
    ----------
    console
        Where progress goes (default: stderr).
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stderr
        self._bar = None
        self._models = self._current = None
        self._plain: LazyProgress | None = None
        self._label = ""

    def _live(self):
        if self._bar is None:
            self._bar = progress_bar("samples", self.console)
            self._bar.start()
            self._models = self._bar.add_task("models", total=None, status="", rate=False)
            self._current = self._bar.add_task("", total=None, status="")
        return self._bar

    def _update(self, models: dict[str, Any] | None = None, **fields: Any) -> None:
        if self.console.is_terminal:
            bar = self._live()
            assert self._models is not None and self._current is not None
            if models:
                bar.update(self._models, **models)
            if fields:
                bar.update(self._current, **fields)
            return
        if fields:
            if self._plain is None:
                self._plain = LazyProgress(self._label or "data", total=None, console=self.console)
            self._plain(fields.pop("advance", 0), **fields)

    def _end_plain(self) -> None:
        if self._plain is not None:
            self._plain.__exit__(None, None, None)
            self._plain = None

    def __call__(self, event: str, **f: Any) -> None:
        """Receive one event of :func:`pdeforge.evaluation.compare` (see its ``report``)."""
        if event == "data":
            self._update(description="data", total=f["total"], completed=f["done"], status="generating")
        elif event == "model":
            self._end_plain()
            self._label = f["label"]
            action = {"new": "training", "resume": "resuming", "evaluate": "evaluating", "done": "finished"}
            line = f"model {f['index'] + 1}/{f['total']} {f['label']}: {action[f['action']]}"
            if self.console.is_terminal:
                self._update({"total": f["total"], "completed": f["index"], "status": line},
                             description=f["label"], total=None, completed=0, status=action[f["action"]])
            else:
                self.console.print(line, highlight=False, markup=False)
        elif event == "start":
            self._update(total=f["epochs"] * f["samples"], completed=f["first_epoch"] * f["samples"],
                         status=f"epoch {f['first_epoch'] + 1}/{f['epochs']}")
        elif event == "step":
            self._update(advance=f["samples"])
        elif event == "epoch":
            self._update(status=f"epoch {f['epoch']}/{f['epochs']}  loss {f['loss']:.4g}")
        elif event == "phase":
            self._update(status=f["text"])
        elif event == "model_done" and self.console.is_terminal:
            self._update({"completed": f["index"] + 1})

    def __enter__(self) -> CompareProgress:
        return self

    def __exit__(self, *exc) -> None:
        self._end_plain()
        if self._bar is not None:
            self._bar.stop()


def compare_command(
    suite: Annotated[Path, typer.Argument(help="suite file (YAML): data, split, training settings, budget, models")],
    out: Annotated[Path, typer.Option("--out", help="comparison directory (a rerun reuses what is finished)")],
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda")] = "auto",
) -> None:
    """Train and evaluate several models on the same data, split, loss and budget; write a table and plots."""
    from rich.table import Table

    from pdeforge._device import choose_device
    from pdeforge.cli._config import load_yaml
    from pdeforge.evaluation import compare, suite_from_mapping

    spec = suite_from_mapping(load_yaml(suite), str(suite), base=suite.resolve().parent)
    with CompareProgress() as progress:
        rows = compare(spec, out, device=choose_device(device), report=progress)
    table = Table(title=f"compare: {spec.title or suite.name}", show_header=True)
    for name in ("label", "test rel L2", "published", "parameters", "epochs", "s/epoch", "ms/sample"):
        table.add_column(name)
    for r in rows:
        table.add_row(r.label, f"{r.rel_l2:.4f}", "" if r.published is None else f"{r.published:.4f}",
                      f"{r.parameters:,}", str(r.epochs), f"{r.seconds_per_epoch:.2f}", f"{r.inference_ms:.3f}")
    stdout.print(table)
    stderr.print(f"table: {out / 'table.md'}, {out / 'table.csv'}; plots: {out / 'index.html'}")
