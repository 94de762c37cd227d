"""The typed configuration of a training run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pdeforge.errors import PdeforgeError
from pdeforge.models import model_names
from pdeforge.training._tasks import TaskConfig
from pdeforge.training.losses import parse_loss_name

__all__ = ["PatchingConfig", "TrainConfig"]


class PatchingConfig(BaseModel):
    """Multi-grid patching of the network (see :class:`pdeforge.models.MultigridPatching`).

    The network is built with ``in_channels * (levels + 1)`` input channels
    and applied to ``patches`` patches per spatial axis, each padded by
    ``padding`` times its points on every side (wrapped for periodic data,
    mirrored otherwise) and given ``levels`` coarse views of larger regions
    (level ``l``: ``2^l`` times the patch, subsampled by ``2^l``). A grid that
    ``patches`` does not divide is covered by letting the last patch run past
    the end, so any grid with at least ``patches`` points per axis works.
    Reference: Kossaifi, Kovachki, Azizzadenesheli, Anandkumar, "Multi-Grid
    Tensorized Fourier Neural Operator for High-Resolution PDEs", TMLR 2024
    (multi-grid domain decomposition).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    levels: int = Field(default=0, ge=0, le=6, description="coarse levels of context (0: plain patches)")
    patches: int = Field(default=2, ge=1, description="patches per spatial axis")
    padding: float = Field(default=0.25, ge=0, le=4,
                           description="padding on each side of a patch, as a fraction of the patch's points")
    chunks: int = Field(default=1, ge=1,
                        description="train on the patches in this many groups, recomputing each group's "
                                    "activations in the backward pass (less memory, one more forward)")


class TrainConfig(BaseModel):
    """Everything that determines a training run (with the data and the device).

    The learning rate follows a pure function of the optimisation step (see
    :func:`pdeforge.training.learning_rate`), and each epoch's shuffle is
    drawn from ``(seed, epoch)``, so a run resumed from a checkpoint
    continues exactly as if it had not stopped. Non-finite numbers (``inf``,
    ``nan``) are refused for every float field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    task: TaskConfig = Field(default_factory=TaskConfig,
                             description="what a sample is: map, rollout, spacetime or all2all (see docs)")
    model: str = Field(default="fno", description=f"model name ({', '.join(model_names())})")
    model_options: dict[str, Any] = Field(default_factory=dict,
                                          description="options of the model (e.g. width, modes, layers)")
    epochs: int = Field(default=100, ge=1, description="passes over the training split")
    batch_size: int = Field(default=20, ge=1, description="samples per optimisation step")
    lr: float = Field(default=1e-3, gt=0, description="peak learning rate of AdamW")
    weight_decay: float = Field(default=1e-4, ge=0, description="AdamW weight decay")
    schedule: Literal["cosine", "step", "constant"] = Field(default="cosine",
                                                            description="learning-rate schedule over the run")
    step_epochs: int = Field(default=100, ge=1,
                             description="'step' schedule: halve the learning rate every this many epochs")
    warmup_epochs: float = Field(default=0.0, ge=0, description="linear warm-up length in epochs")
    seed: int = Field(default=0, ge=0, description="seed of initialisation and shuffling")
    loss: str = Field(default="l2",
                      description="training loss: relative l<p> (l2) or Sobolev h<s> (h1, h-1); case is ignored")
    val_fraction: float = Field(default=0.1, ge=0, lt=1,
                                description="share of samples for validation (ignored with n_val)")
    test_fraction: float = Field(default=0.1, ge=0, lt=1,
                                 description="share of samples for testing (ignored with n_test or a test file)")
    n_train: int | None = Field(default=None, ge=1, description="training samples (default: the rest)")
    n_val: int | None = Field(default=None, ge=0, description="validation samples")
    n_test: int | None = Field(default=None, ge=0, description="test samples")
    inputs: list[str] | None = Field(default=None, description="input fields used as channels (default: all)")
    outputs: list[str] | None = Field(default=None, description="output fields used as channels (default: all)")
    cache_mb: int = Field(default=2048, ge=0,
                          description="keep the data in memory when it is smaller than this (else stream shards)")
    loader_workers: int | None = Field(
        default=None, ge=0,
        description="data-loader worker processes; none: 0 for cached data (slicing memory needs no process), "
                    "else 1-2 that read the next batches from the shards while the model computes")
    precision: Literal["float32", "float64"] = Field(
        default="float32", description="floating-point type of the model's weights and of the batches")
    patching: PatchingConfig | None = Field(default=None,
                                            description="multi-grid patching (levels, patches, padding), or none")
    divergence_factor: float = Field(default=1e4, gt=1,
                                     description="stop when the loss exceeds this multiple of the first epoch's")

    @field_validator("loss")
    @classmethod
    def _loss(cls, name: str) -> str:
        """The loss name as :func:`~pdeforge.training.losses.parse_loss_name` reads it, in canonical spelling."""
        try:
            return parse_loss_name(name).name
        except PdeforgeError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _fractions(self):
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave samples to train on")
        return self
