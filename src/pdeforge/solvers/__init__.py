"""Numerical methods: time integrators, linear solvers, and the choice of method per problem."""

from functools import partial

from pdeforge.problems import Problem
from pdeforge.solvers._direct import direct_solve
from pdeforge.solvers._fast_poisson import dst_solve, sine_eigenvalues
from pdeforge.solvers._linear import LINEAR_SOLVERS, auto_solve, cg_solve, gmres_mg, pcg_jacobi, pcg_mg, pcg_ssor
from pdeforge.solvers._result import KrylovResult
from pdeforge.solvers.krylov import RecycleSpace, as_operator, cg, gcrodr, gmres
from pdeforge.solvers.recycling import SequenceResult, solve_sequence
from pdeforge.solvers.timestepping import INTEGRATORS, integrate


def method_for(problem: Problem):
    """The numerical method that the problem's config names, ready to pass to ``problem.solve``."""
    if problem.method_kind == "integrator":
        return partial(integrate, INTEGRATORS[problem.method_name])
    return LINEAR_SOLVERS[problem.method_name]


__all__ = [
    "INTEGRATORS",
    "KrylovResult",
    "LINEAR_SOLVERS",
    "auto_solve",
    "cg_solve",
    "dst_solve",
    "sine_eigenvalues",
    "gmres_mg",
    "pcg_jacobi",
    "pcg_mg",
    "pcg_ssor",
    "RecycleSpace",
    "SequenceResult",
    "as_operator",
    "cg",
    "direct_solve",
    "gcrodr",
    "gmres",
    "integrate",
    "method_for",
    "solve_sequence",
]
