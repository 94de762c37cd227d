"""Numerical methods: time integrators, linear solvers, and the choice of method per problem."""

from functools import partial

from pdeforge.problems import Problem
from pdeforge.solvers._direct import direct_solve
from pdeforge.solvers._result import KrylovResult
from pdeforge.solvers.learned import (
    BinnedTsallisINF,
    ChebCB,
    TsallisINF,
    optimal_sor_omega,
    sor,
    sor_iterations,
)
from pdeforge.solvers.timestepping import INTEGRATORS, integrate

LINEAR_SOLVERS = {"direct": direct_solve}
"""Every linear solver by its config name."""


def method_for(problem: Problem):
    """The numerical method that the problem's config names, ready to pass to ``problem.solve``."""
    if problem.method_kind == "integrator":
        return partial(integrate, INTEGRATORS[problem.method_name])
    return LINEAR_SOLVERS[problem.method_name]


__all__ = [
    "INTEGRATORS",
    "KrylovResult",
    "LINEAR_SOLVERS",
    "BinnedTsallisINF",
    "ChebCB",
    "TsallisINF",
    "direct_solve",
    "integrate",
    "method_for",
    "optimal_sor_omega",
    "sor",
    "sor_iterations",
]
