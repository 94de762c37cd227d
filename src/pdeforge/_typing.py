"""Shape-annotated tensor types shared by every layer (layer 0: imports nothing of pdeforge).

The aliases name the axes of pdeforge's one data layout, ``[batch, channel,
*space]``, so a signature says what goes in and what comes out. They are
annotations for readers and type checkers (jaxtyping, used with torch); no
check runs at call time. A model's ``forward`` reads::

    def forward(self, x: InFields) -> OutFields: ...

Axis names are shared within one call: ``InFields -> OutFields`` keeps
``batch`` and ``*space`` and may change the channel count.
"""

from __future__ import annotations

from jaxtyping import Bool, Float, Int
from torch import Tensor

__all__ = [
    "Coefficients", "Coordinates", "Fields", "Flags", "InFields", "IterationCounts", "OutFields", "PerSystem",
    "SampleFields", "Scalars", "Systems",
]

Fields = Float[Tensor, "batch channels *space"]
"""Real fields on a grid, ``[batch, channels, *space]``."""

InFields = Float[Tensor, "batch in_channels *space"]
"""A model's input fields, ``[batch, in_channels, *space]``."""

OutFields = Float[Tensor, "batch out_channels *space"]
"""A model's output fields, ``[batch, out_channels, *space]`` on the same grid as its input."""

Coefficients = Float[Tensor, "2 batch channels *kept"]
"""Kept Fourier coefficients, part-major: real and imaginary parts on the leading axis of 2."""

Coordinates = Float[Tensor, "points dims"]
"""Point coordinates, one row per point."""

Scalars = Float[Tensor, "channels"]
"""One value per channel."""

SampleFields = Float[Tensor, "batch *grid"]
"""One field of a batch of samples on a problem's grid, ``[batch, *grid]`` (no channel axis)."""

Systems = Float[Tensor, "batch *n"]
"""Right-hand sides or solutions of a batch of linear systems, ``[batch, *n]`` (``n`` the interior grid)."""

PerSystem = Float[Tensor, "batch"]
"""One real value per system or sample (a residual, a Courant number)."""

IterationCounts = Int[Tensor, "batch"]
"""Iterations or steps taken per system or sample."""

Flags = Bool[Tensor, "batch"]
"""One pass/fail flag per system or sample."""
