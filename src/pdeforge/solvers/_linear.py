"""The linear solvers that problem configs name: the table :data:`LINEAR_SOLVERS`.

Every entry obeys one signature, ``run(operator, b, *, rtol) -> SolveResult``
with ``x``, ``iterations``, ``residual`` and ``converged`` per system; the
problem re-checks the residual and refuses to store a sample whose solve did
not converge. The entry also says when it does not apply (the problem's
:class:`~pdeforge.problems.LinearTraits`), and the table's one rule decides
what ``auto`` stands for:

==========  ==========================================================================
name        method
==========  ==========================================================================
auto        the fastest correct method: ``dst`` for constant coefficients, else
            ``pcg-mg`` (definite) or ``gmres-mg`` (indefinite) in 2-D, else
            ``pcg-ssor`` (definite) or ``direct``
dst         exact sine-transform solve, constant coefficients only (Poisson, Helmholtz)
direct      SuperLU, one system at a time (the reference)
pcg-mg      CG (float64) preconditioned by a float32 multigrid V-cycle (2-D, definite)
gmres-mg    GMRES (float64) with the same V-cycle, for indefinite Helmholtz (2-D)
pcg-ssor    CG with red-black SSOR (definite)
pcg-jacobi  CG with Jacobi (definite)
cg          CG without preconditioner (definite)
==========  ==========================================================================
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import torch

from pdeforge._typing import Systems
from pdeforge.problems import LinearTraits, StencilOperator
from pdeforge.solvers._direct import direct_solve
from pdeforge.solvers._fast_poisson import dst_solve
from pdeforge.solvers._result import SolveResult
from pdeforge.solvers._table import Method, MethodTable
from pdeforge.solvers.krylov import cg, gmres
from pdeforge.solvers.multigrid import CycleSpec, Multigrid, SplitStencil
from pdeforge.solvers.preconditioners import SSOR, Jacobi

__all__ = ["LINEAR_SOLVERS", "cg_solve", "dst_solve", "gmres_mg", "pcg_jacobi", "pcg_mg", "pcg_ssor"]

CHUNK_VALUES = 2**20
"""Unknowns per chunk of systems solved together by multigrid (16 systems of 255^2, 5 of 421^2).

A chunk makes the same number of kernel calls whatever its size, and each call costs some
microseconds of Python before any arithmetic, so larger chunks amortise that cost; far
beyond 2^20 unknowns a sweep's arrays outgrow the cache, and two chunks per batch leave a
worker idle when one finishes first. Wall time per system on 2 cores, batches of 100, two
workers, medians of 5 alternating repeats (issue 11, ``benchmarks/darcy_chunks.py``):

- 255^2: 4 / 12 / 16-20 / 50 systems per chunk took 24.9 / 16.4 / 11.5-14.5 / 21.7 ms;
- 421^2: 2 / 4 / 5-6 / 10 systems took 71.6 / 46.9 / 42-43.5 / 42.2 ms;
- 255^2 beside a second CPU-bound job: 4 / 12 / 16 systems took 25.5 / 18.7 / 19.1 ms.

(An earlier measurement of CPU time with one worker on a loaded machine had favoured
2^18; wall time with both workers is what a user waits for.)"""


def _chunks(batch: int, size: int) -> list[slice]:
    """Near-equal slices of at most ``size`` systems (never a lone system when ``batch > 1``)."""
    count = math.ceil(batch / max(1, size))
    if batch > 1 and batch // count < 2:
        count = batch // 2
    bounds = [round(i * batch / count) for i in range(count + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def _concatenate(results: list[SolveResult]) -> SolveResult:
    """One result for the whole batch; shorter histories hold their final value."""
    length = max(r.history.shape[0] for r in results)
    history = [torch.cat([r.history, r.history[-1:].expand(length - r.history.shape[0], -1)]) for r in results]
    return SolveResult(
        x=torch.cat([r.x for r in results]),
        iterations=torch.cat([r.iterations for r in results]),
        history=torch.cat(history, dim=1),
        converged=torch.cat([r.converged for r in results]),
        residual=torch.cat([r.residual for r in results]),
        extra={"matvecs": sum(r.extra.get("matvecs", 0) for r in results), "chunks": len(results)},
    )


def _single_threaded() -> None:
    # Each worker runs its chunk's many small kernels on one core: intra-op threads would meet
    # at a barrier after every kernel, which on a busy machine costs more than the kernels.
    torch.set_num_threads(1)


def _multigrid_krylov(krylov, operator: StencilOperator, b: torch.Tensor, rtol: float, maxiter: int,
                      spec: CycleSpec, chunk: int | None, workers: int | None, **options) -> SolveResult:
    size = chunk or max(2, CHUNK_VALUES // operator.unknowns)

    def solve(rows: slice) -> SolveResult:
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


def pcg_mg(operator: StencilOperator, b: Systems, *, rtol: float = 1e-8, maxiter: int = 100,
           spec: CycleSpec = CycleSpec(), chunk: int | None = None, workers: int | None = None) -> SolveResult:
    """CG preconditioned by one multigrid V-cycle per iteration (2-D, SPD).

    Systems are solved in chunks of ``chunk`` (default: about
    :data:`CHUNK_VALUES` unknowns per chunk), on
    the CPU by ``workers`` single-threaded workers (default: torch's thread
    count); the V-cycle runs in ``spec.dtype`` (float32), CG and its
    residuals in the dtype of ``b``.
    """
    return _multigrid_krylov(cg, operator, b, rtol, maxiter, spec, chunk, workers)


def gmres_mg(operator: StencilOperator, b: Systems, *, rtol: float = 1e-8, maxiter: int = 200,
             spec: CycleSpec = CycleSpec(), chunk: int | None = None, workers: int | None = None,
             restart: int = 30) -> SolveResult:
    """GMRES(restart) right-preconditioned by a V-cycle: symmetric indefinite systems (2-D)."""
    return _multigrid_krylov(gmres, operator, b, rtol, maxiter, spec, chunk, workers, restart=restart)


def pcg_ssor(operator: StencilOperator, b: Systems, *, rtol: float = 1e-8, maxiter: int | None = None,
             omega: float = 1.0) -> SolveResult:
    """CG preconditioned by red-black SSOR (any dimension)."""
    return cg(operator, b, rtol=rtol, maxiter=maxiter, M=SSOR(operator, omega))


def pcg_jacobi(operator: StencilOperator, b: Systems, *, rtol: float = 1e-8,
               maxiter: int | None = None) -> SolveResult:
    """CG preconditioned by the diagonal."""
    return cg(operator, b, rtol=rtol, maxiter=maxiter, M=Jacobi(operator))


def cg_solve(operator: StencilOperator, b: Systems, *, rtol: float = 1e-8,
             maxiter: int | None = None) -> SolveResult:
    """Unpreconditioned CG."""
    return cg(operator, b, rtol=rtol, maxiter=maxiter)


def _needs_constant_coefficients(traits: LinearTraits) -> str | None:
    if traits.constant_coefficients:
        return None
    return "it needs constant coefficients (the sine transform diagonalises only those); use auto or pcg-mg"


def _needs_definite(traits: LinearTraits) -> str | None:
    if traits.definite:
        return None
    return "the operator is indefinite and CG needs a positive definite one; use auto, gmres-mg or direct"


def _needs_2d(traits: LinearTraits) -> str | None:
    if traits.ndim == 2:
        return None
    return f"multigrid is implemented on 2-D grids, this problem is {traits.ndim}-D; use auto or pcg-ssor"


def _needs_definite_2d(traits: LinearTraits) -> str | None:
    return _needs_2d(traits) or _needs_definite(traits)


def _fastest(traits: LinearTraits) -> str:
    """The method ``auto`` stands for under ``traits``.

    The exact transform when it applies (shared by all samples, nothing is
    faster), else the multigrid Krylov method for the operator's definiteness
    in 2-D, else SSOR-CG, or SuperLU for an indefinite operator off 2-D.
    """
    if traits.constant_coefficients:
        return "dst"
    if traits.ndim == 2:
        return "pcg-mg" if traits.definite else "gmres-mg"
    return "pcg-ssor" if traits.definite else "direct"


LINEAR_SOLVERS = MethodTable("linear solver", [
    Method("dst", dst_solve, "exact sine-transform solve (constant coefficients)", _needs_constant_coefficients),
    Method("direct", direct_solve, "SuperLU, one system at a time (the reference)"),
    Method("pcg-mg", pcg_mg, "CG preconditioned by a float32 multigrid V-cycle (2-D, definite)", _needs_definite_2d),
    Method("gmres-mg", gmres_mg, "GMRES right-preconditioned by the V-cycle (2-D, indefinite too)", _needs_2d),
    Method("pcg-ssor", pcg_ssor, "CG preconditioned by red-black SSOR (definite)", _needs_definite),
    Method("pcg-jacobi", pcg_jacobi, "CG preconditioned by the diagonal (definite)", _needs_definite),
    Method("cg", cg_solve, "CG without preconditioner (definite)", _needs_definite),
], auto=_fastest)
"""Every linear solver by its config name; ``LINEAR_SOLVERS.choose(name, traits)`` checks and resolves one."""
