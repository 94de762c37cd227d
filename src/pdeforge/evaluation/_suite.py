"""A comparison suite: the data, split, shared training settings, budget and models of ``pdeforge compare``.

A suite is a YAML mapping validated by :class:`Suite` (unknown keys are
refused at every level). Every model of a suite trains on the same data,
split, loss, seed and budget; a model may only change how it is optimised
(:data:`PER_MODEL_KEYS`), the way papers report a model "with its own
settings". Paths in a suite are read relative to the suite file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pdeforge.errors import PdeforgeError
from pdeforge.training import TrainConfig
from pdeforge.training._tasks import TaskConfig

__all__ = ["PER_MODEL_KEYS", "SHARED_KEYS", "Suite", "SuiteModel", "suite_from_mapping"]

PER_MODEL_KEYS = frozenset({"lr", "weight_decay", "schedule", "step_epochs", "warmup_epochs", "batch_size", "task"})
"""Training settings one model of a suite may set for itself: its optimiser's recipe, nothing it is judged on.

``task`` may differ only in how a model is trained on the same samples (a recurrent ``rollout`` and a
``spacetime`` model on the same windows, FNO-2D beside FNO-3D); what it is tested on must agree."""
SHARED_KEYS = frozenset(set(TrainConfig.model_fields) - {"model", "model_options", "epochs", "n_train", "n_val",
                                                         "n_test", "val_fraction", "test_fraction"})
"""The suite-wide ``train`` keys: the fields of :class:`~pdeforge.training.TrainConfig` that the suite does not set
from its ``split``, ``budget`` and ``models``."""
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _tested_samples(task: TaskConfig) -> tuple:
    """What a task's test samples are: rollout and spacetime windows of one shape are the same samples."""
    if task.windowed:
        return ("window", task.field, task.history, task.horizon, task.offset, task.stride)
    return (task.kind, task.field, task.offset, task.pairs)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class GenerateSection(_Strict):
    """Data that ``compare`` generates once into ``OUT/data`` with :func:`pdeforge.data.generate`."""

    problem: str = Field(description="problem name (see `pdeforge problems`)")
    resolution: int | None = Field(default=None, ge=2, description="grid points per axis")
    samples: int = Field(ge=1, description="samples to generate")
    seed: int = Field(default=0, ge=0, description="dataset seed")
    set: dict[str, Any] = Field(default_factory=dict, description="problem parameters (as `generate --set`)")


class SplitSection(_Strict):
    """Sample counts: train first, then validation, then test (omit ``n_test`` with ``test_data``)."""

    n_train: int = Field(ge=1)
    n_val: int = Field(default=0, ge=0)
    n_test: int | None = Field(default=None, ge=1)


class BudgetSection(_Strict):
    """The same budget for every model: ``epochs``, or ``seconds`` of training wall-clock per model."""

    epochs: int | None = Field(default=None, ge=1)
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one(self):
        if (self.epochs is None) == (self.seconds is None):
            raise ValueError("give exactly one of budget.epochs and budget.seconds")
        return self


class Published(_Strict):
    """A paper's number for this setting: test relative L2 ``value`` and where it is printed."""

    value: float = Field(gt=0)
    source: str = Field(min_length=1)


class SuiteModel(_Strict):
    """One model of a suite: a name in the model table, a unique label (its run directory) and options."""

    name: str
    label: str | None = None
    model_options: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict)
    published: Published | None = None

    @property
    def key(self) -> str:
        """The label, or the model's name without one."""
        return self.label or self.name

    @model_validator(mode="after")
    def _check(self):
        if self.label is not None and not LABEL.fullmatch(self.label):
            raise ValueError(f"label '{self.label}' must be letters, digits, '.', '_' or '-' (a directory name)")
        extra = sorted(set(self.train) - PER_MODEL_KEYS)
        if extra:
            raise ValueError(f"train.{extra[0]} is shared by every model of a suite; a model may set only "
                             f"{', '.join(sorted(PER_MODEL_KEYS))}")
        return self


class Suite(_Strict):
    """A comparison: data (``data`` [+ ``test_data``] or ``generate``), ``split``, ``train``, ``budget``, ``models``."""

    title: str | None = None
    data: Path | None = None
    test_data: Path | None = None
    generate: GenerateSection | None = None
    split: SplitSection
    train: dict[str, Any] = Field(default_factory=dict)
    budget: BudgetSection
    models: list[SuiteModel] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self):
        if (self.data is None) == (self.generate is None):
            raise ValueError("give exactly one of 'data' (an existing dataset) and 'generate'")
        if self.test_data is not None and self.data is None:
            raise ValueError("'test_data' goes with 'data'; a generated suite tests on a split of its data")
        if self.test_data is not None and self.split.n_test is not None:
            raise ValueError("split.n_test is the whole of 'test_data'; leave it out")
        if self.test_data is None and self.split.n_test is None:
            raise ValueError("split.n_test is needed without 'test_data'")
        extra = sorted(set(self.train) - SHARED_KEYS)
        if extra:
            raise ValueError(f"train.{extra[0]} is not a shared training setting (known: "
                             f"{', '.join(sorted(SHARED_KEYS))}; epochs are set by budget, the split by split)")
        if self.generate is not None:
            need = self.split.n_train + self.split.n_val + (self.split.n_test or 0)
            if need > self.generate.samples:
                raise ValueError(f"the split needs {need} samples, generate.samples is {self.generate.samples}")
        tested = {_tested_samples(TaskConfig.model_validate(m.train.get("task", self.train.get("task", "map"))))
                  for m in self.models}
        if len(tested) > 1:
            raise ValueError("the models' tasks test on different samples (windows or pairs); they may differ "
                             "only in kind (rollout or spacetime) on the same history, horizon, offset and stride")
        labels = [m.key for m in self.models]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"two models share the label '{twice[0]}': give each a unique label")
        return self

    def train_config(self, model: SuiteModel, epochs: int) -> TrainConfig:
        """The :class:`~pdeforge.training.TrainConfig` of ``model``: shared settings, its own, the split, ``epochs``.

        Parameters
        ----------
        model
            One of :attr:`models`.
        epochs
            The budget in epochs (given, or derived from a seconds budget).

        Returns
        -------
        TrainConfig

        Raises
        ------
        PdeforgeError
            With one line when a value is invalid.
        """
        values = {**self.train, **model.train, "model": model.name, "model_options": dict(model.model_options),
                  "epochs": epochs, "n_train": self.split.n_train, "n_val": self.split.n_val,
                  "n_test": self.split.n_test}
        try:
            return TrainConfig.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise PdeforgeError(f"model '{model.key}': invalid training setting '{where}': {err['msg']}") from None


def _known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names of the (nested) pydantic model that ``loc`` points into."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) else None
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            for c in candidates:  # list[SuiteModel]
                nested += [a for a in getattr(c, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return []
        current = nested[0]
    return sorted(current.model_fields)


def suite_from_mapping(payload: dict[str, Any], where: str, base: Path | None = None) -> Suite:
    """Validate a suite from its YAML mapping; relative data paths are taken relative to ``base``.

    Parameters
    ----------
    payload
        The mapping read from the suite file.
    where
        The suite's name in error messages (its path).
    base
        Directory that relative ``data`` and ``test_data`` paths are relative to.

    Returns
    -------
    Suite

    Raises
    ------
    PdeforgeError
        One line naming the first problem and its key.

    Examples
    --------
    >>> suite = suite_from_mapping({"data": "d", "split": {"n_train": 8, "n_test": 2}, "budget": {"epochs": 1},
    ...                             "models": [{"name": "fno"}]}, "s.yaml", Path("/x"))
    >>> str(suite.data), suite.models[0].key
    ('/x/d', 'fno')
    """
    try:
        suite = Suite.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "suite"
        if err["type"] == "extra_forbidden":
            known = _known_keys(Suite, tuple(err["loc"]))
            raise PdeforgeError(f"unknown key '{key}' in suite {where} "
                                f"(known keys there: {', '.join(known)})") from None
        if err["type"] == "missing":
            raise PdeforgeError(f"suite {where} needs '{key}'") from None
        message = err["msg"].removeprefix("Value error, ")
        raise PdeforgeError(f"suite {where}: {message}" + ("" if key == "suite" else f" (at '{key}')")) from None
    if base is not None:
        updates = {k: Path(base) / v for k in ("data", "test_data")
                   if (v := getattr(suite, k)) is not None and not Path(v).is_absolute()}
        suite = suite.model_copy(update=updates)
    return suite
