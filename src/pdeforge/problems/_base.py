"""What every problem provides, and the interfaces of the methods it is solved with.

A problem states a PDE family: a typed configuration that fixes every
physical and numerical parameter, a sampler of random inputs, its
discretisation, and :meth:`Problem.solve`, which runs the discretisation
with a numerical *method* handed in by the caller (composition, not
imports: the methods live one layer up, in :mod:`pdeforge.solvers`, which
names them in the same vocabulary as the configs).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pdeforge._random import sample_rng
from pdeforge._typing import Flags, IterationCounts, PerSystem, SampleFields, Systems

__all__ = [
    "FieldSpec",
    "Integrator",
    "LinearSolve",
    "LinearSolveResult",
    "LinearTraits",
    "Problem",
    "ProblemConfig",
    "SemilinearEquation",
    "Solution",
    "check_samples",
]


class ProblemConfig(BaseModel):
    """Base of every problem's configuration: strict, immutable, JSON-serialisable.

    Non-finite numbers (``inf``, ``nan``) are refused for every float field:
    a sample computed from them could not be stored or resumed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    """Named parameter sets: ``preset=NAME`` fills these values; values given explicitly win."""

    resolution: int = Field(default=64, ge=4, description="grid points per axis of the stored fields")
    store_dtype: Literal["float32", "float64"] = Field(default="float32", description="precision of stored fields")
    preset: str | None = Field(
        default=None, description="named parameter set (`pdeforge problems` lists them); explicit values win")

    @model_validator(mode="before")
    @classmethod
    def _fill_preset(cls, data: Any) -> Any:
        """Put the named preset's values under the explicit ones (so a stored config re-validates unchanged)."""
        if not isinstance(data, dict) or data.get("preset") is None:
            return data
        name = data["preset"]
        if name not in cls.PRESETS:
            known = ", ".join(sorted(cls.PRESETS)) or "none"
            raise ValueError(f"unknown preset '{name}' (known: {known})")
        return {**cls.PRESETS[name], **data}


@dataclass(frozen=True)
class FieldSpec:
    """A stored field: its name and the names of its axes after the sample axis."""

    name: str
    axes: tuple[str, ...]


@dataclass
class Solution:
    """What :meth:`Problem.solve` returns for a batch.

    ``converged[i]`` is ``False`` when sample ``i`` must not be stored
    (a linear solve that missed its tolerance, a time step beyond its
    stability limit, a non-finite value); ``reasons[i]`` then says why.
    """

    outputs: dict[str, SampleFields]
    diagnostics: dict[str, torch.Tensor]
    converged: Flags
    reasons: list[str] = field(default_factory=list)


def check_samples(checks: dict[str, Flags]) -> tuple[Flags, list[str]]:
    """Combine per-sample pass/fail checks into ``(converged, reasons)``.

    ``checks`` maps the message of a failure to a boolean tensor that is
    ``True`` where the sample passes.
    """
    passed = torch.stack([ok.bool().cpu() for ok in checks.values()]).all(0)
    reasons = [
        "; ".join(msg for msg, ok in checks.items() if not bool(ok[i])) for i in range(passed.numel())
    ]
    return passed, reasons


class SemilinearEquation(Protocol):
    """``du/dt = L u + N(u, t)`` in a spectral basis, with ``L`` diagonal.

    ``linear`` holds the diagonal of ``L`` on the spectral layout (it
    broadcasts against ``u``); ``nonlinear`` evaluates ``N``.
    """

    linear: torch.Tensor

    def nonlinear(self, u: torch.Tensor, t: float | torch.Tensor, /) -> torch.Tensor:
        """The nonlinear (and forcing) term ``N(u, t)`` on the spectral layout of ``u``.

        ``t`` is a float or per-sample times that broadcast against ``u``.
        """
        ...


StepSize = Callable[[torch.Tensor], torch.Tensor]
"""A per-sample step-size rule: the state ``u [batch, ...]`` to the largest admissible steps ``[batch]``."""


class Integrator(Protocol):
    """Advance ``u0`` to each of the ``times`` with steps no longer than ``dt``.

    ``dt`` is a step for every sample or a :data:`StepSize` rule evaluated
    at the start of every output interval. Returns the states at ``times``,
    ``[batch, len(times), ...]``, and the steps taken per sample ``[batch]``.
    """

    def __call__(self, equation: SemilinearEquation, u0: torch.Tensor, times: Sequence[float],
                 dt: float | StepSize) -> tuple[torch.Tensor, torch.Tensor]: ...


class LinearSolveResult(Protocol):
    """What a problem reads from a linear solve (every solver returns a ``pdeforge.solvers.SolveResult``).

    Attributes
    ----------
    x
        Solutions ``[batch, *n]``.
    iterations
        Iterations per system ``[batch]``.
    residual
        Final relative residual ``||b - A x|| / ||b||`` per system ``[batch]``.
    converged
        ``[batch]`` whether each system reached the requested tolerance.
    """

    @property
    def x(self) -> Systems:
        """Solutions ``[batch, *n]``."""
        ...

    @property
    def iterations(self) -> IterationCounts:
        """Iterations per system ``[batch]``."""
        ...

    @property
    def residual(self) -> PerSystem:
        """Final relative residual per system ``[batch]``."""
        ...

    @property
    def converged(self) -> Flags:
        """Whether each system reached the tolerance ``[batch]``."""
        ...


class LinearSolve(Protocol):
    """Solve the batched systems ``A x = b`` to relative residual ``rtol``."""

    def __call__(self, operator: Any, b: torch.Tensor, *, rtol: float) -> LinearSolveResult: ...


@dataclass(frozen=True)
class LinearTraits:
    """What a linear solver must cope with: the facts a solver table decides by.

    Attributes
    ----------
    ndim
        Spatial dimension of the grid (multigrid is 2-D).
    definite
        Whether the operator is symmetric positive definite (CG needs it).
    constant_coefficients
        Whether every sample shares one constant-coefficient operator (the
        sine transform applies).
    """

    ndim: int
    definite: bool = True
    constant_coefficients: bool = False

    @classmethod
    def of_operator(cls, operator: Any, *, definite: bool = True) -> LinearTraits:
        """The traits of a :class:`~pdeforge.problems.StencilOperator` (definiteness is the caller's word)."""
        return cls(ndim=operator.ndim, definite=definite,
                   constant_coefficients=operator.uniform_coefficients() is not None)


ConfigT = TypeVar("ConfigT", bound=ProblemConfig)
"""The configuration type of a :class:`Problem` subclass."""


class Problem(ABC, Generic[ConfigT]):
    """A PDE family whose samples pdeforge can generate.

    Subclasses set ``name``, ``Config``, ``inputs`` and ``outputs`` and
    implement :meth:`draw_inputs` and :meth:`solve`; a subclass names its
    config type as the type parameter (``class Burgers(PeriodicProblem[BurgersConfig])``),
    so that ``self.config`` has that type.

    Parameters
    ----------
    config
        The problem's parameters, an instance of ``Config`` (default: ``Config()``).
    device
        Where inputs are drawn and solved.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    equation: ClassVar[str]  # one line of plain text: "-Lap u = f on (0,1)^2, u = 0 on the boundary"
    Config: ClassVar[type[ProblemConfig]]  # the class ConfigT names (a ClassVar cannot hold a type variable)
    config: ConfigT
    inputs: ClassVar[tuple[FieldSpec, ...]]
    outputs: ClassVar[tuple[FieldSpec, ...]]
    method_kind: ClassVar[str]  # "integrator" or "linear"
    periodic: ClassVar[bool]  # whether the stored fields live on a periodic grid

    def __init__(self, config: ConfigT | None = None, *, device: str | torch.device = "cpu") -> None:
        made = config if config is not None else self.Config()
        if not isinstance(made, self.Config):
            raise TypeError(f"{self.name} needs a {self.Config.__name__}")
        self.config = cast(ConfigT, made)  # checked just above: an instance of Config, the class ConfigT names
        self.device = torch.device(device)

    @property
    def method_name(self) -> str:
        """The config's name of the numerical method that solves this problem (possibly ``auto``)."""
        return getattr(self.config, "integrator" if self.method_kind == "integrator" else "solver")

    @property
    def method_traits(self) -> Any:
        """What the method table needs to know to check and choose a method (``None``: nothing)."""
        return None

    def sample_inputs(self, seed: int, indices: Sequence[int]) -> dict[str, SampleFields]:
        """Inputs of the given samples; sample ``i`` depends only on ``(seed, i)``."""
        return self.draw_inputs([sample_rng(seed, int(i)) for i in indices])

    @abstractmethod
    def draw_inputs(self, rngs: Sequence[np.random.Generator]) -> dict[str, SampleFields]:
        """One input sample per generator, on ``self.device``."""

    @abstractmethod
    def solve(self, inputs: dict[str, SampleFields], method: Any) -> Solution:
        """Solve a batch of inputs with the given numerical method."""

    @abstractmethod
    def field_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of one stored sample of every input and output field."""

    @abstractmethod
    def coords(self) -> dict[str, np.ndarray]:
        """Coordinates of the stored fields (``x``, ``y``, ``t`` as applicable)."""

    def stored_inputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The inputs as stored (problems solved on a finer grid subsample them)."""
        return inputs

    def params(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-sample scalar parameters stored with the data."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Metadata for the dataset manifest."""
        return {
            "problem": self.name,
            "inputs": {f.name: list(f.axes) for f in self.inputs},
            "outputs": {f.name: list(f.axes) for f in self.outputs},
        }
