"""The ``pdeforge`` command line."""

from pdeforge.cli._main import app, main

__all__ = ["app", "main"]
