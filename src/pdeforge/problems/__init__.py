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
from pdeforge.problems.advection_diffusion import (
    AdvectionDiffusion,
    AdvectionDiffusion3D,
    AdvectionDiffusion3DConfig,
    AdvectionDiffusionConfig,
)
from pdeforge.problems.burgers import Burgers, BurgersConfig
from pdeforge.problems.darcy import Darcy, DarcyConfig
from pdeforge.problems.gray_scott import GrayScott, GrayScottConfig
from pdeforge.problems.helmholtz import Helmholtz, HelmholtzConfig
from pdeforge.problems.kdv import KdV, KdVConfig
from pdeforge.problems.kuramoto_sivashinsky import KuramotoSivashinsky, KuramotoSivashinskyConfig
from pdeforge.problems.navier_stokes import NavierStokes, NavierStokesConfig
from pdeforge.problems.poisson import Poisson, PoissonConfig
from pdeforge.problems.reaction_diffusion import AllenCahn, AllenCahnConfig, FisherKPP, FisherKPPConfig
from pdeforge.problems.reaction_diffusion_3d import AllenCahn3D, AllenCahn3DConfig
from pdeforge.problems.swift_hohenberg import SwiftHohenberg, SwiftHohenbergConfig

PROBLEMS: dict[str, type[Problem]] = {p.name: p for p in (
    Darcy, Poisson, Helmholtz, Burgers, NavierStokes, KuramotoSivashinsky, KdV, AllenCahn, FisherKPP,
    AdvectionDiffusion, GrayScott, SwiftHohenberg, AdvectionDiffusion3D, AllenCahn3D)}
"""Every problem by its command-line name."""

__all__ = [
    "PROBLEMS",
    "AdvectionDiffusion",
    "AdvectionDiffusion3D",
    "AdvectionDiffusion3DConfig",
    "AdvectionDiffusionConfig",
    "AllenCahn",
    "AllenCahn3D",
    "AllenCahn3DConfig",
    "AllenCahnConfig",
    "Burgers",
    "BurgersConfig",
    "Darcy",
    "DarcyConfig",
    "FieldSpec",
    "FisherKPP",
    "FisherKPPConfig",
    "GrayScott",
    "GrayScottConfig",
    "Helmholtz",
    "HelmholtzConfig",
    "Integrator",
    "KdV",
    "KdVConfig",
    "KuramotoSivashinsky",
    "KuramotoSivashinskyConfig",
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
