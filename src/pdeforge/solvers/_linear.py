"""The linear solvers that problem configs name, each obeying the ``LinearSolve`` protocol.

``method(operator, b, *, rtol) -> result`` with ``x``, ``iterations``,
``residual`` and ``converged`` per system; the problem re-checks the
residual and refuses to store a sample whose solve did not converge.

==========  ==========================================================================
name        method
==========  ==========================================================================
auto        the fastest correct method: ``dst`` for constant coefficients,
            else ``pcg-mg`` in 2-D and ``pcg-ssor`` otherwise
dst         exact sine-transform solve, constant coefficients only (Poisson, Helmholtz)
direct      SuperLU, one system at a time (the reference)
pcg-mg      CG (float64) preconditioned by a float32 multigrid V-cycle
gmres-mg    GMRES (float64) with the same V-cycle, for indefinite Helmholtz
pcg-ssor    CG with red-black SSOR
pcg-jacobi  CG with Jacobi
cg          CG without preconditioner
==========  ==========================================================================
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch

from pdeforge.problems import StencilOperator
from pdeforge.solvers._direct import direct_solve
from pdeforge.solvers._fast_poisson import dst_solve
from pdeforge.solvers._result import KrylovResult
from pdeforge.solvers.krylov import cg, gmres
from pdeforge.solvers.multigrid import CycleSpec, Multigrid, SplitStencil
from pdeforge.solvers.preconditioners import SSOR, Jacobi

__all__ = ["LINEAR_SOLVERS", "auto_solve", "cg_solve", "dst_solve", "gmres_mg", "pcg_jacobi", "pcg_mg", "pcg_ssor"]

CHUNK_VALUES = 3 * 2**18
"""Unknowns per chunk of systems solved together by multigrid (12 systems of 255^2, 4 of 421^2):
large enough that a kernel's work outweighs its launch, small enough to stay near the cache."""


def _chunks(batch: int, size: int) -> list[slice]:
    """Near-equal slices of at most ``size`` systems (never a lone system when ``batch > 1``)."""
    count = math.ceil(batch / max(1, size))
    if batch > 1 and batch // count < 2:
        count = batch // 2
    bounds = [round(i * batch / count) for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def _concatenate(results: list[KrylovResult]) -> KrylovResult:
    """One result for the whole batch; shorter histories hold their final value."""
    length = max(r.history.shape[0] for r in results)
    history = [torch.cat([r.history, r.history[-1:].expand(length - r.history.shape[0], -1)]) for r in results]
    return KrylovResult(
        x=torch.cat([r.x for r in results]),
        iterations=torch.cat([r.iterations for r in results]),
        history=torch.cat(history, dim=1),
        converged=torch.cat([r.converged for r in results]),
        extra={"matvecs": sum(r.extra.get("matvecs", 0) for r in results), "chunks": len(results)},
    )


def _single_threaded() -> None:
    # Each worker runs its chunk's many small kernels on one core: intra-op threads would meet
    # at a barrier after every kernel, which on a busy machine costs more than the kernels.
    torch.set_num_threads(1)


def _multigrid_krylov(krylov, operator: StencilOperator, b: torch.Tensor, rtol: float, maxiter: int,
                      spec: CycleSpec, chunk: int | None, workers: int | None, **options) -> KrylovResult:
    size = chunk or max(2, CHUNK_VALUES // operator.unknowns)

    def solve(rows: slice) -> KrylovResult:
        # The outer method runs in b's precision on the split layout, where the cycle works too.
        A = SplitStencil.from_operator(operator.rows(rows), b.dtype)
        cycle = Multigrid(A, spec).cycle
        result = krylov(A, A.layout.split(b[rows]), rtol=rtol, maxiter=maxiter, M=cycle, **options)
        result.x = A.layout.merge(result.x)
        return result

    chunks = _chunks(operator.batch, size)
    if b.device.type != "cpu":
        return _concatenate([solve(rows) for rows in chunks])
    # On the CPU, chunks go to single-threaded workers (always, so that a system's bits
    # do not depend on how many chunks its batch had).
    workers = workers or torch.get_num_threads()
    with ThreadPoolExecutor(max_workers=min(workers, len(chunks)), initializer=_single_threaded) as pool:
        return _concatenate(list(pool.map(solve, chunks)))


def pcg_mg(operator: StencilOperator, b: torch.Tensor, *, rtol: float = 1e-8, maxiter: int = 100,
           spec: CycleSpec = CycleSpec(), chunk: int | None = None, workers: int | None = None) -> KrylovResult:
    """CG preconditioned by one multigrid V-cycle per iteration (2-D, SPD).

    Systems are solved in chunks of ``chunk`` (default: about
    :data:`CHUNK_VALUES` unknowns per chunk), on
    the CPU by ``workers`` single-threaded workers (default: torch's thread
    count); the V-cycle runs in ``spec.dtype`` (float32), CG and its
    residuals in the dtype of ``b``.
    """
    return _multigrid_krylov(cg, operator, b, rtol, maxiter, spec, chunk, workers)


def gmres_mg(operator: StencilOperator, b: torch.Tensor, *, rtol: float = 1e-8, maxiter: int = 200,
             spec: CycleSpec = CycleSpec(), chunk: int | None = None, workers: int | None = None,
             restart: int = 30) -> KrylovResult:
    """GMRES(restart) right-preconditioned by a V-cycle: symmetric indefinite systems (2-D)."""
    return _multigrid_krylov(gmres, operator, b, rtol, maxiter, spec, chunk, workers, restart=restart)


def pcg_ssor(operator: StencilOperator, b: torch.Tensor, *, rtol: float = 1e-8, maxiter: int | None = None,
             omega: float = 1.0) -> KrylovResult:
    """CG preconditioned by red-black SSOR (any dimension)."""
    return cg(operator, b, rtol=rtol, maxiter=maxiter, M=SSOR(operator, omega))


def pcg_jacobi(operator: StencilOperator, b: torch.Tensor, *, rtol: float = 1e-8,
               maxiter: int | None = None) -> KrylovResult:
    """CG preconditioned by the diagonal."""
    return cg(operator, b, rtol=rtol, maxiter=maxiter, M=Jacobi(operator))


def cg_solve(operator: StencilOperator, b: torch.Tensor, *, rtol: float = 1e-8,
             maxiter: int | None = None) -> KrylovResult:
    """Unpreconditioned CG."""
    return cg(operator, b, rtol=rtol, maxiter=maxiter)


def auto_solve(operator: StencilOperator, b: torch.Tensor, *, rtol: float = 1e-8):
    """The fastest correct method for the operator.

    The sine transform for constant coefficients, else multigrid-CG in 2-D
    and SSOR-CG otherwise (this entry point assumes a definite operator
    unless the coefficients are constant; problems choose GMRES themselves).
    """
    if operator.uniform_coefficients() is not None:
        return dst_solve(operator, b, rtol=rtol)
    if operator.ndim == 2:
        return pcg_mg(operator, b, rtol=rtol)
    return pcg_ssor(operator, b, rtol=rtol)


LINEAR_SOLVERS = {
    "auto": auto_solve,
    "dst": dst_solve,
    "direct": direct_solve,
    "pcg-mg": pcg_mg,
    "gmres-mg": gmres_mg,
    "pcg-ssor": pcg_ssor,
    "pcg-jacobi": pcg_jacobi,
    "cg": cg_solve,
}
"""Every linear solver by its config name."""
