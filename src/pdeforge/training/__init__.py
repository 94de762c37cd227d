"""Training neural operators. For now: the losses (the loop, checkpoints and runs join on main)."""

from pdeforge.training.losses import (
    RelativeLpLoss,
    SobolevLoss,
    loss_for,
    per_sample_metrics,
    periodic_extension,
    relative_lp_error,
    sobolev_error,
)

__all__ = [
    "RelativeLpLoss",
    "SobolevLoss",
    "loss_for",
    "per_sample_metrics",
    "periodic_extension",
    "relative_lp_error",
    "sobolev_error",
]
