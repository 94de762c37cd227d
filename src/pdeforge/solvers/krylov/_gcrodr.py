"""GCRO-DR(m, k): GMRES with deflated restarting that carries a recycled subspace between systems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pdeforge._typing import Systems
from pdeforge.errors import PdeforgeError
from pdeforge.solvers._result import SolveResult
from pdeforge.solvers.krylov._arnoldi import ArnoldiCycle
from pdeforge.solvers.krylov._deflation import harmonic_ritz_basis
from pdeforge.solvers.krylov._operator import Callback, batch_norm
from pdeforge.solvers.krylov._restarted import Correction, RestartedSolve, krylov_update

__all__ = ["RecycleSpace", "gcrodr"]


@dataclass
class RecycleSpace:
    """The subspace GCRO-DR hands from one solve to the next.

    Attributes
    ----------
    U
        ``[batch, k, n]`` recycled directions (rows), in the right-preconditioned
        variable: the solution moves by ``M^{-1} U^T y``.
    C
        ``[batch, k, n]`` ``= A M^{-1} U`` with orthonormal rows, for the
        operator the space was last used with.
    count
        ``[batch]`` how many leading rows of ``U``, ``C`` are in use.
    source
        ``(A, M)`` that ``C`` belongs to; a solve with other objects
        recomputes ``C = A M^{-1} U`` (Parks et al. 2006).
    """

    U: torch.Tensor
    C: torch.Tensor
    count: torch.Tensor
    source: tuple[Any, Any]


def _adopt(problem: RestartedSolve, space: RecycleSpace, A: Any, M: Any, r: torch.Tensor, k: int):
    """``(U, C, count)`` for this solve: reused if the operator is the same, else re-orthonormalised."""
    batch, n = r.shape
    U, C, count = (t.to(device=r.device) for t in (space.U, space.C, space.count))
    U, C = U.to(r.dtype), C.to(r.dtype)
    if U.shape[0] == 1 and batch > 1:  # one space shared by the whole batch
        U, C, count = U.expand(batch, -1, -1), C.expand(batch, -1, -1), count.expand(batch)
    if U.shape[0] != batch or U.shape[2] != n:
        raise PdeforgeError(f"recycled space of shape {tuple(U.shape)} does not fit {batch} systems of {n} unknowns")
    keep = min(k, U.shape[1])
    U, C, count = U[:, :keep].clone(), C[:, :keep].clone(), count.clamp_max(keep)
    if space.source[0] is A and space.source[1] is M:
        return U, C, count
    # A new matrix: C = A M^{-1} U, then [Q, R] = qr(C), C = Q, U = U R^{-1} (Parks et al.: the step for a new system).
    AU = torch.stack([problem.apply(U[:, j]) for j in range(keep)], dim=1) if keep else U.clone()
    for i in range(batch):
        kv = int(count[i])
        if kv == 0:
            continue
        q, rr = torch.linalg.qr(AU[i, :kv].mT)
        C[i, :kv] = q.mT
        U[i, :kv] = torch.linalg.solve_triangular(rr.mT, U[i, :kv], upper=False)
    return U, C, count


def _deflate(cycle: ArnoldiCycle, U: torch.Tensor, C: torch.Tensor, count: torch.Tensor, k: int):
    """New ``(U, C, count)`` from the harmonic Ritz vectors of this cycle (Parks et al.: the end of every cycle)."""
    U_new, C_new, count_new = torch.zeros_like(U), torch.zeros_like(C), count.clone()
    kk = cycle.k
    for i in range(U.shape[0]):
        c, kv = int(cycle.steps[i]), (int(count[i]) if kk else 0)
        if c == 0:
            U_new[i], C_new[i] = U[i], C[i]
            continue
        V = cycle.basis[i, kk : kk + c + 1]
        u = U[i, :kv]
        d = 1.0 / torch.linalg.vector_norm(u, dim=1)  # D_k: unit columns of U D
        size = kv + c
        G = V.new_zeros(size + 1, size)
        G[:kv, :kv] = torch.diag(d)
        G[:kv, kv:] = cycle.projections[i, :kv, :c]
        G[kv:, kv:] = cycle.hessenberg[i, : c + 1, :c]
        WtV = V.new_zeros(size + 1, size)
        WtV[:kv, :kv] = (C[i, :kv] @ u.mT) * d
        WtV[kv:, :kv] = (V @ u.mT) * d
        WtV[kv:, kv:] = torch.eye(c + 1, c, dtype=V.dtype, device=V.device)
        P = harmonic_ritz_basis(G, WtV, k)
        q, rr = torch.linalg.qr(G @ P)
        good = rr.diagonal().abs() > 1e-12 * rr.diagonal().abs().max()
        if not bool(good.all()):  # dependent directions: keep an independent subset
            P = P[:, good]
            q, rr = torch.linalg.qr(G @ P)
        T = torch.linalg.solve_triangular(rr, P, upper=True, left=False)  # P R^{-1}
        T[:kv] = T[:kv] * d[:, None]  # V_hat = [U D, V]
        knew = P.shape[1]
        U_new[i, :knew] = T[:kv].mT @ u + T[kv:].mT @ V[:c]
        C_new[i, :knew] = q[:kv].mT @ C[i, :kv] + q[kv:].mT @ V
        count_new[i] = knew
    return U_new, C_new, count_new


def gcrodr(
    A: Any,
    b: Systems,
    x0: Systems | None = None,
    *,
    rtol: float = 1e-8,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callback | None = None,
    m: int = 40,
    k: int = 20,
    recycle: RecycleSpace | None = None,
) -> SolveResult:
    """Solve ``A x = b`` by GCRO-DR(m, k), recycling a subspace from earlier solves.

    Every cycle keeps ``k`` harmonic Ritz vectors ``U`` (and ``C = A U`` with
    orthonormal columns) and runs ``m - k`` Arnoldi steps on ``(I - C C^T) A``;
    the residual is minimised over ``range([U, V])``. The ``U`` of the last
    cycle is returned in ``result.extra["recycle"]``; passing it as
    ``recycle=`` to the next solve (the same or a nearby matrix) starts that
    solve from a space that already deflates the troublesome eigenvalues.
    Without a recycled space the first cycle is GMRES(m); with ``k = 0`` the
    method is GMRES(m) exactly.

    Parameters
    ----------
    A, b, x0, rtol
        As for every Krylov method in :mod:`pdeforge.solvers.krylov`.
    maxiter
        Maximum Arnoldi steps per system (default ``10 n``). The ``k``
        products that recompute ``C = A U`` for a new matrix are not
        iterations; ``extra["matvecs"]`` counts every product.
    M, callback
        As for every Krylov method in :mod:`pdeforge.solvers.krylov`
        (right preconditioning: ``U`` lives in the preconditioned variable).
    m, k
        Subspace dimension and number of recycled vectors (``0 <= k < m``).
    recycle
        A :class:`RecycleSpace` from an earlier solve.

    Returns
    -------
    SolveResult
        ``extra["recycle"]`` is the updated :class:`RecycleSpace`.

    References
    ----------
    M. L. Parks, E. de Sturler, G. Mackey, D. D. Johnson and S. Maiti,
    "Recycling Krylov subspaces for sequences of linear systems", SIAM J. Sci.
    Comput. 28 (2006) 1651-1674 (GCRO-DR).

    Examples
    --------
    >>> A = torch.tensor([[3.0, 1.0, 0.0], [-1.0, 2.0, 1.0], [0.0, 1.0, 4.0]], dtype=torch.float64)
    >>> first = gcrodr(A, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64), m=3, k=1)
    >>> again = gcrodr(A, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64), m=3, k=1,
    ...                recycle=first.extra["recycle"])
    >>> bool(again.converged[0]), int(again.iterations[0]) <= 2
    (True, True)
    """
    if not 0 <= k < m:
        raise PdeforgeError(f"GCRO-DR needs 0 <= k < m, got m={m}, k={k}")
    problem = RestartedSolve(A, b, x0, rtol, maxiter, M)
    r = problem.initial_flat_residual()
    batch, n = r.shape
    U = r.new_zeros(batch, k, n)
    C = r.new_zeros(batch, k, n)
    count = torch.zeros(batch, dtype=torch.int64, device=r.device)
    if recycle is not None and k > 0:
        active = batch_norm(r) / problem.scale > rtol
        U, C, count = _adopt(problem, recycle, A, M, r, k)
        # Project the initial guess: x += M^{-1} U C^T r, r -= C C^T r.
        coef = torch.bmm(r.unsqueeze(1), C.mT) * active[:, None, None]
        problem.correct(torch.bmm(coef, U).squeeze(1), active)
        r = r - torch.bmm(coef, C).squeeze(1)
    # History row 0: the initial guess after projection onto the recycled space.

    def start(r: torch.Tensor, active: torch.Tensor) -> tuple[ArnoldiCycle, Correction]:
        deflating = bool((count > 0).any())
        # m - k Arnoldi steps on (I - C C^T) A after deflation; a plain GMRES(m) cycle before it.
        cycle = ArnoldiCycle(problem.apply, r, problem.budget(active, m - count), rtol * problem.scale,
                             recycled=C if deflating else None)
        U_now, C_now = U, C

        def correction(c: ArnoldiCycle) -> torch.Tensor:
            # min ||W^T r - G y||: y2 from the Hessenberg part, y1 = C^T r - B y2 (D cancels in U D y1).
            z = krylov_update(c)
            if deflating:
                y2 = c.solve()
                y1 = torch.bmm(r.unsqueeze(1), C_now.mT) - torch.bmm(y2.unsqueeze(1), c.projections[:, :, : c.j].mT)
                z = z + torch.bmm(y1, U_now).squeeze(1)
            return z

        return cycle, correction

    def finish(cycle: ArnoldiCycle) -> None:
        nonlocal U, C, count
        if k > 0:
            U, C, count = _deflate(cycle, U, C, count, k)

    history = problem.run(r, start, callback, finish)
    space = RecycleSpace(U=U, C=C, count=count, source=(A, M))
    return problem.result(history.tensor(), {"recycle": space})
