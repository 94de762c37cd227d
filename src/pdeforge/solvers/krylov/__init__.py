"""Batched Krylov methods with one signature: ``method(A, b, x0=None, *, rtol, maxiter, M, callback)``.

``A`` is anything :func:`as_operator` accepts, ``b`` is ``[batch, *n]`` (a
batch of independent systems), ``M`` is a preconditioner ``r -> M^{-1} r``,
and every method returns a :class:`~pdeforge.solvers.SolveResult`.

========  ===============================================  ==========================
method    for                                              method options
========  ===============================================  ==========================
cg        symmetric positive definite ``A`` (and ``M``)    --
gmres     any nonsingular ``A``; restarted GMRES(m)        ``restart``
gcrodr    sequences of related systems; GCRO-DR(m, k)      ``m``, ``k``, ``recycle``
========  ===============================================  ==========================
"""

from pdeforge.solvers.krylov._cg import cg
from pdeforge.solvers.krylov._gcrodr import RecycleSpace, gcrodr
from pdeforge.solvers.krylov._gmres import gmres
from pdeforge.solvers.krylov._operator import LinearOperator, as_operator, as_preconditioner

__all__ = ["LinearOperator", "RecycleSpace", "as_operator", "as_preconditioner", "cg", "gcrodr", "gmres"]
