"""The ``pdeforge`` command: one clear line and a non-zero exit for every user error.

Start-up is kept light: this module and the command modules import only
typer, rich and the standard library at module level; each command's body
imports the layers it needs (torch comes with ``pdeforge.data``'s generator,
the problems, models, training and evaluation), so ``--help``, ``info`` on a
pdeforge dataset and usage errors never import torch or matplotlib.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

import typer

try:  # typer >= 0.22 carries its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import UsageError  # pyright: ignore[reportMissingImports]

from pdeforge.cli._compare_command import compare_command
from pdeforge.cli._data_commands import generate_command, info_command, problems_command
from pdeforge.cli._demo import demo_command
from pdeforge.cli._models_command import models_command
from pdeforge.cli._progress import stderr
from pdeforge.cli._train_commands import evaluate_command, refine_command, report_command, train_command
from pdeforge.errors import PdeforgeError

app = typer.Typer(
    name="pdeforge",
    help="Generate PDE data with verified solvers, train neural operators on it, evaluate and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

INTERRUPTED = {
    "generate": "interrupted; the finished shards are kept: rerun the same command with --resume to continue",
    "info": "interrupted; nothing was changed",
    "problems": "interrupted",
    "models": "interrupted",
    "train": "interrupted; rerun the same command (same --out): the run resumes from its last finished epoch",
    "evaluate": "interrupted; nothing partial was kept: rerun the same command",
    "refine": "interrupted; nothing partial was kept (refine.json is written at the end): rerun the same command",
    "report": "interrupted; nothing partial was kept: rerun the same command",
    "demo": "interrupted; rerun the same command (same --out): finished steps are reused, the interrupted one "
            "resumes",
    "compare": "interrupted; rerun the same command (same --out): finished models are reused, the interrupted one "
               "resumes from its last finished epoch",
}
"""Verb -> what Ctrl-C during it means and how to go on (each advice is tested)."""


def user_errors(command: Callable, interrupted: str = "interrupted") -> Callable:
    """Turn :class:`PdeforgeError` and Ctrl-C into one line on stderr and a non-zero exit.

    Parameters
    ----------
    command
        A command function of the CLI.
    interrupted
        The line shown (after ``error:``) on Ctrl-C: what was kept and how to continue.

    Returns
    -------
    Callable
        The same command (same signature, for typer) exiting with code 2 on a
        :class:`PdeforgeError` and 130 on Ctrl-C, without a traceback.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PdeforgeError as exc:
            stderr.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            stderr.print(f"[bold red]error:[/] {interrupted}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper


for name, command in (
    ("generate", generate_command),
    ("info", info_command),
    ("problems", problems_command),
    ("models", models_command),
    ("train", train_command),
    ("evaluate", evaluate_command),
    ("refine", refine_command),
    ("report", report_command),
    ("demo", demo_command),
    ("compare", compare_command),
):
    app.command(name)(user_errors(command, INTERRUPTED[name]))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``pdeforge`` command line (the console script's entry point).

    A usage error (unknown command or option, a value of the wrong type) is
    one line ``error: ...`` naming the ``--help`` to read, with click's exit
    code 2, instead of click's framed multi-line message.

    Parameters
    ----------
    argv
        The arguments after the program name; ``None`` reads ``sys.argv``.
    """
    try:
        code = app(args=None if argv is None else list(argv), prog_name="pdeforge", standalone_mode=False)
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "pdeforge"
        stderr.print(f"[bold red]error:[/] {exc.format_message()} (see `{where} --help`)", markup=True,
                     highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        stderr.print("[bold red]error:[/] interrupted", markup=True, highlight=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
