"""The ``pdeforge`` command: one clear line and a non-zero exit for every user error."""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer

from pdeforge.cli._data_commands import generate_command, info_command, problems_command
from pdeforge.cli._demo import demo_command
from pdeforge.cli._progress import stderr
from pdeforge.cli._train_commands import evaluate_command, report_command, train_command
from pdeforge.errors import PdeforgeError

app = typer.Typer(
    name="pdeforge",
    help="Generate PDE data with verified solvers, train neural operators on it, evaluate and report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def user_errors(command: Callable) -> Callable:
    """Turn :class:`PdeforgeError` and Ctrl-C into one line on stderr and a non-zero exit.

    Parameters
    ----------
    command
        A command function of the CLI.

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
            stderr.print("[bold red]error:[/] interrupted; rerun with --resume to continue", soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper


for name, command in (
    ("generate", generate_command),
    ("info", info_command),
    ("problems", problems_command),
    ("train", train_command),
    ("evaluate", evaluate_command),
    ("report", report_command),
    ("demo", demo_command),
):
    app.command(name)(user_errors(command))


def main() -> None:
    """Run the ``pdeforge`` command line on ``sys.argv`` (the console script's entry point)."""
    app()
