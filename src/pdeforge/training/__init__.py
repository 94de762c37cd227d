"""Training neural operators: losses, configuration, data streaming, the loop, checkpoints, runs."""

from pdeforge.training._checkpoint import load_checkpoint, load_weights, save_checkpoint
from pdeforge.training._config import PatchingConfig, TrainConfig
from pdeforge.training._data import FieldLayout, SampleSource, Split, make_split
from pdeforge.training._loop import EpochRecord, TrainingDiverged, fit, learning_rate, run_epochs
from pdeforge.training._normalise import ChannelNormaliser, FrequencyOutput, NormalisedModel, frequency_output
from pdeforge.training._run import RunSpec, load_run, read_metrics, read_spec, train, unfinished_epochs
from pdeforge.training._team import SOLO, Solo, Team
from pdeforge.training.losses import (
    RelativeLpLoss,
    SobolevLoss,
    loss_for,
    parseval_relative_l2,
    per_sample_metrics,
    periodic_extension,
    relative_lp_error,
    sobolev_error,
)

__all__ = [
    "SOLO",
    "ChannelNormaliser",
    "EpochRecord",
    "FieldLayout",
    "FrequencyOutput",
    "NormalisedModel",
    "RelativeLpLoss",
    "RunSpec",
    "SampleSource",
    "SobolevLoss",
    "Solo",
    "Split",
    "PatchingConfig",
    "Team",
    "TrainConfig",
    "TrainingDiverged",
    "fit",
    "frequency_output",
    "learning_rate",
    "load_checkpoint",
    "load_run",
    "load_weights",
    "loss_for",
    "make_split",
    "parseval_relative_l2",
    "per_sample_metrics",
    "periodic_extension",
    "read_metrics",
    "read_spec",
    "relative_lp_error",
    "run_epochs",
    "save_checkpoint",
    "sobolev_error",
    "train",
    "unfinished_epochs",
]
