"""Sorting Krylov Recycling: solve many related systems in a good order, carrying a recycled subspace."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pdeforge.errors import PdeforgeError
from pdeforge.solvers.krylov import as_operator, gcrodr, gmres
from pdeforge.solvers.recycling._order import binned_order, greedy_order

__all__ = ["SequenceResult", "solve_sequence"]

BINNED_ABOVE = 2000
"""With ``sort=True``, sets larger than this use :func:`binned_order` instead of the O(N^2) greedy tour."""


@dataclass
class SequenceResult:
    """Per-system outcome of :func:`solve_sequence`, in the ORIGINAL order of the systems.

    Attributes
    ----------
    x
        Solutions ``[N, *n]``.
    iterations
        Krylov iterations (Arnoldi steps) per system ``[N]``.
    residual
        True relative residual ``||b - A x|| / ||b||`` per system ``[N]``.
    converged
        ``residual <= rtol`` ``[N]``.
    order
        The order the systems were solved in: ``order[0]`` first.
    matvecs
        Products with ``A`` per system, including GCRO-DR's ``C = A U`` and the
        final residual check ``[N]``.
    seconds
        Wall time of each solve ``[N]``.
    """

    x: torch.Tensor
    iterations: torch.Tensor
    residual: torch.Tensor
    converged: torch.Tensor
    order: torch.Tensor
    matvecs: torch.Tensor
    seconds: torch.Tensor


def _solve_order(sort: bool | str | torch.Tensor, params: torch.Tensor | None, n: int) -> torch.Tensor:
    if isinstance(sort, torch.Tensor):
        order = sort.to(torch.int64).cpu()
        if sorted(order.tolist()) != list(range(n)):
            raise PdeforgeError(f"sort= must be a permutation of the {n} systems")
        return order
    if sort is False or sort is None:
        return torch.arange(n)
    if params is None:
        raise PdeforgeError("sorting the systems needs their params (e.g. the coefficient fields)")
    if params.shape[0] != n:
        raise PdeforgeError(f"{params.shape[0]} parameter sets for {n} systems")
    strategy = ("binned" if n > BINNED_ABOVE else "greedy") if sort is True else sort
    if strategy == "greedy":
        return greedy_order(params)
    if strategy == "binned":
        return binned_order(params)
    raise PdeforgeError(f"unknown sort '{sort}' (use True, False, 'greedy', 'binned' or a permutation)")


def solve_sequence(
    operators: Sequence[Any] | Callable[[int], Any],
    rhs: torch.Tensor,
    params: torch.Tensor | None = None,
    *,
    method: str = "gcrodr",
    m: int = 40,
    k: int = 20,
    rtol: float = 1e-8,
    maxiter: int | None = None,
    precondition: Callable[[Any], Any] | None = None,
    sort: bool | str | torch.Tensor = True,
) -> SequenceResult:
    """Solve ``A_i x_i = b_i``, ``i = 0..N-1``, one after another with Krylov subspace recycling.

    SKR (Wang et al. 2024, Alg. 1): (a) order the systems so that neighbours
    have close parameters; (b) solve them in that order with GCRO-DR(m, k),
    handing each solve the recycled subspace of the previous one; (c) return
    the solutions in the original order. Every solve is judged by its own
    true residual, so recycling changes the cost, never the tolerance.

    Parameters
    ----------
    operators
        ``N`` operators acting on ``[1, *n]`` (e.g. single-system
        :class:`~pdeforge.problems.StencilOperator`), or a factory
        ``i -> operator`` (built lazily, in the solve order).
    rhs
        ``[N, *n]`` right-hand sides, or ``[1, *n]`` shared by all systems.
    params
        ``[N, ...]`` parameters that define the systems (for sorting).
    method
        ``"gcrodr"`` (recycling) or ``"gmres"`` (GMRES(m), each system alone:
        the baseline).
    m, k
        GCRO-DR's subspace and recycle dimensions (GMRES uses ``restart=m``).
    rtol, maxiter
        Per-system tolerance and iteration limit.
    precondition
        Optional ``operator -> M`` building each system's preconditioner.
    sort
        ``True`` (greedy tour, or the binned order above
        :data:`BINNED_ABOVE` systems), ``"greedy"``, ``"binned"``,
        ``False`` (original order) or an explicit permutation.

    References
    ----------
    H. Wang, Z. Hao, J. Wang, Z. Geng, Z. Wang, B. Li and F. Wu, "Accelerating
    data generation for neural operators via Krylov subspace recycling", ICLR
    2024 (arXiv:2401.09516).
    """
    if callable(operators):
        count = params.shape[0] if params is not None else rhs.shape[0]
    else:
        count = len(operators)
    if rhs.shape[0] not in (1, count):
        raise PdeforgeError(f"{rhs.shape[0]} right-hand sides for {count} systems")
    if method not in ("gcrodr", "gmres"):
        raise PdeforgeError(f"unknown method '{method}' (use 'gcrodr' or 'gmres')")
    order = _solve_order(sort, params, count)
    get = operators if callable(operators) else operators.__getitem__

    x = torch.empty((count, *rhs.shape[1:]), dtype=rhs.dtype, device=rhs.device)
    iterations = torch.zeros(count, dtype=torch.int64)
    residual = torch.zeros(count, dtype=torch.float64)
    matvecs = torch.zeros(count, dtype=torch.int64)
    seconds = torch.zeros(count, dtype=torch.float64)
    recycle = None
    for i in order.tolist():
        b = rhs[i : i + 1] if rhs.shape[0] > 1 else rhs
        A = get(i)
        M = precondition(A) if precondition is not None else None
        start = time.perf_counter()
        if method == "gcrodr":
            result = gcrodr(A, b, rtol=rtol, maxiter=maxiter, M=M, m=m, k=k, recycle=recycle)
            recycle = result.extra["recycle"]
        else:
            result = gmres(A, b, rtol=rtol, maxiter=maxiter, M=M, restart=m)
        seconds[i] = time.perf_counter() - start
        op = as_operator(A, b)
        r = (b - op.matvec(result.x)).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1).clamp_min(1e-300)
        x[i] = result.x[0]
        iterations[i] = int(result.iterations[0])
        residual[i] = float(r[0])
        matvecs[i] = int(result.extra["matvecs"]) + 1
    return SequenceResult(x=x, iterations=iterations, residual=residual, converged=residual <= rtol,
                          order=order, matvecs=matvecs, seconds=seconds)
