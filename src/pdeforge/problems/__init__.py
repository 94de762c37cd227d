"""PDE families: configuration, input sampler, discretisation, metadata."""

from pdeforge.problems._base import (
    FieldSpec,
    Integrator,
    LinearSolve,
    LinearSolveResult,
    LinearTraits,
    Problem,
    ProblemConfig,
    SemilinearEquation,
    Solution,
    check_samples,
)
from pdeforge.problems._stencil import StencilOperator, harmonic_faces
from pdeforge.problems.burgers import Burgers, BurgersConfig
from pdeforge.problems.darcy import Darcy, DarcyConfig
from pdeforge.problems.gray_scott import GrayScott, GrayScottConfig
from pdeforge.problems.helmholtz import Helmholtz, HelmholtzConfig
from pdeforge.problems.navier_stokes import NavierStokes, NavierStokesConfig
from pdeforge.problems.poisson import Poisson, PoissonConfig
from pdeforge.problems.swift_hohenberg import SwiftHohenberg, SwiftHohenbergConfig

PROBLEMS: dict[str, type[Problem]] = {
    p.name: p for p in (Darcy, Burgers, NavierStokes, Poisson, Helmholtz, GrayScott, SwiftHohenberg)}
"""Every problem by its command-line name."""

__all__ = [
    "PROBLEMS",
    "Burgers",
    "BurgersConfig",
    "Darcy",
    "DarcyConfig",
    "FieldSpec",
    "GrayScott",
    "GrayScottConfig",
    "Helmholtz",
    "HelmholtzConfig",
    "Integrator",
    "LinearSolve",
    "LinearSolveResult",
    "LinearTraits",
    "NavierStokes",
    "NavierStokesConfig",
    "Poisson",
    "PoissonConfig",
    "Problem",
    "ProblemConfig",
    "SemilinearEquation",
    "Solution",
    "StencilOperator",
    "SwiftHohenberg",
    "SwiftHohenbergConfig",
    "check_samples",
    "harmonic_faces",
]
