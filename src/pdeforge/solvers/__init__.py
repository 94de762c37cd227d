"""Numerical methods: time integrators, linear solvers, and the choice of method per problem.

Each family is one :class:`MethodTable` (:data:`LINEAR_SOLVERS`,
:data:`INTEGRATORS`): a new method is one entry there, and the problem's
config names it.
"""

from collections.abc import Callable
from typing import Any

from pdeforge.problems import Problem
from pdeforge.solvers._direct import direct_solve
from pdeforge.solvers._fast_poisson import dst_solve, sine_eigenvalues
from pdeforge.solvers._linear import LINEAR_SOLVERS, cg_solve, gmres_mg, pcg_jacobi, pcg_mg, pcg_ssor
from pdeforge.solvers._result import SolveResult
from pdeforge.solvers._table import AUTO, Method, MethodTable
from pdeforge.solvers.krylov import RecycleSpace, as_operator, cg, gcrodr, gmres
from pdeforge.solvers.recycling import SequenceResult, solve_sequence
from pdeforge.solvers.timestepping import INTEGRATORS, integrate

METHOD_TABLES: dict[str, MethodTable] = {"linear": LINEAR_SOLVERS, "integrator": INTEGRATORS}
"""The table of each ``Problem.method_kind``."""


def choose_method(problem: Problem) -> Method:
    """The table entry the problem's config names (``auto`` resolved), checked against the problem.

    Raises
    ------
    PdeforgeError
        For an unknown name, or a method that does not apply to the problem.
    """
    return METHOD_TABLES[problem.method_kind].choose(problem.method_name, problem.method_traits)


def method_for(problem: Problem) -> Callable[..., Any]:
    """The numerical method that the problem's config names, ready to pass to ``problem.solve``."""
    method = choose_method(problem)
    return METHOD_TABLES[problem.method_kind].bound(method)


__all__ = [
    "AUTO",
    "INTEGRATORS",
    "SolveResult",
    "LINEAR_SOLVERS",
    "METHOD_TABLES",
    "Method",
    "MethodTable",
    "choose_method",
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
