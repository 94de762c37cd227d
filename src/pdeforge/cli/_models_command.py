"""``pdeforge models``: every model of the table with its options and their defaults."""

from __future__ import annotations

import inspect

from rich.console import Console

stdout = Console()


def option_lines(builder) -> list[tuple[str, str]]:
    """The keyword-only options of a model builder as ``(name, default)`` texts.

    Parameters
    ----------
    builder
        A :class:`~pdeforge.models.ModelSpec`'s builder; its keyword-only
        parameters are the model's options.

    Returns
    -------
    list of tuple of str
        Option name and ``repr`` of its default (``required`` without one), in signature order.

    Examples
    --------
    >>> def build(in_channels, out_channels, spatial_dims, *, width=32, kind="a"):
    ...     pass
    >>> option_lines(build)
    [('width', '32'), ('kind', "'a'")]
    """
    params = inspect.signature(builder).parameters.values()
    return [(p.name, "required" if p.default is inspect.Parameter.empty else repr(p.default))
            for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def default_size(name: str) -> tuple[int, int]:
    """Parameters of model ``name`` at its default options, 1 input and 1 output channel.

    Parameters
    ----------
    name
        A name in :data:`~pdeforge.models.MODELS`.

    Returns
    -------
    tuple of int
        The spatial dimension it was built for (2 when the model takes 2-D
        data, else its first) and the number of trainable parameters.

    Examples
    --------
    >>> default_size("unet")[0]
    2
    """
    from pdeforge.models import MODELS, build_model

    dims = MODELS[name].spatial_dims
    d = 2 if 2 in dims else dims[0]
    net = build_model(name, 1, 1, d)
    return d, sum(p.numel() for p in net.parameters() if p.requires_grad)


def models_command() -> None:
    """List the models: summary, paper, data, parameters at the defaults, and every option with its default."""
    from rich.table import Table

    from pdeforge.models import MODELS

    for name, spec in MODELS.items():
        dims = "/".join(map(str, spec.spatial_dims))
        d, count = default_size(name)
        invariance = {"periodic": "resolution-invariant on periodic grids (n -> 2n)",
                      "nodes": "resolution-invariant on node grids (n -> 2n - 1)",
                      None: "tied to its training grid"}[spec.resolution]
        fit = "; fitted to the training outputs before training" if spec.fit is not None else ""
        stdout.print(f"[bold]{name}[/]: {spec.summary}", highlight=False)
        stdout.print(f"  data: {dims}-D fields; {invariance}{fit}", highlight=False)
        stdout.print(f"  parameters: {count:,} at the defaults ({d}-D, 1 -> 1 channel)", highlight=False)
        stdout.print(f"  paper: {spec.reference}", highlight=False)
        table = Table(show_header=True, box=None, padding=(0, 2))
        table.add_column("  option")
        table.add_column("default")
        for option, default in option_lines(spec.builder):
            table.add_row(f"  {option}", default)
        stdout.print(table)
        stdout.print()
    stdout.print("choose one with `pdeforge train --model NAME --set model_options.KEY=VALUE`")
