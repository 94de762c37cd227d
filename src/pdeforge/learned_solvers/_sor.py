"""Successive over-relaxation on 2-D five-point operators, batched over systems.

SOR splits ``A = D - L - U`` (diagonal, strictly lower and strictly upper
couplings in lexicographic, row-major order) and iterates

    x_{k+1} = x_k + M^{-1} (b - A x_k),     M = D / omega - L,

which is Gauss-Seidel at ``omega = 1`` (Saad, *Iterative Methods for Sparse
Linear Systems*, 2nd ed., sec. 4.1). For the five-point stencil the forward
substitution with ``M`` only couples a node to its north and west
neighbours, so all nodes on one anti-diagonal ``i + j = k`` ("wavefront")
are independent: one sweep is ``n1 + n2 - 1`` vectorised steps instead of
``n1 n2`` scalar ones. The fields live in a *sheared* layout
``[wavefront, row, batch]`` where each wavefront is a contiguous slice.

After a sweep the new residual needs no product with ``A``:
``r - A d = (1/omega - 1) D d + U d`` because ``M d = r``.
"""

from __future__ import annotations

from typing import Literal, overload

import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator
from pdeforge.solvers import SolveResult

__all__ = ["jacobi_spectral_radius", "optimal_sor_omega", "sor", "sor_iterations"]


class _Sheared:
    """Index maps between ``[batch, n1, n2]`` fields and ``[n1 + n2 - 1, n1, batch]``."""

    def __init__(self, shape: tuple[int, int], device) -> None:
        n1, n2 = shape
        i = torch.arange(n1, device=device)[:, None].expand(n1, n2)
        j = torch.arange(n2, device=device)[None, :].expand(n1, n2)
        self.shape, self.fronts, self.rows, self.k = (n1, n2), n1 + n2 - 1, i, i + j

    def shear(self, u: torch.Tensor) -> torch.Tensor:
        out = u.new_zeros((self.fronts, self.shape[0], u.shape[0]))
        out[self.k, self.rows] = u.permute(1, 2, 0)
        return out

    def front_rows(self) -> list[tuple[slice, slice | None]]:
        """Per front ``k``: its rows, and those of them that have a north neighbour on the grid."""
        n1, n2 = self.shape
        out = []
        for k in range(self.fronts):
            lo, hi = max(0, k - n2 + 1), min(k, n1 - 1) + 1
            out.append((slice(lo, hi), slice(max(lo, 1), hi) if hi > max(lo, 1) else None))
        return out

    def unshear(self, s: torch.Tensor) -> torch.Tensor:
        return s[self.k, self.rows].permute(2, 0, 1)


class _SweepPlan:
    """SOR state of a batch in the sheared layout: couplings, residual, and per-front views.

    The views of every front are built once (and again after :meth:`keep`
    drops converged systems), so a sweep is a flat sequence of in-place
    tensor operations. Entries outside the grid are zero in every array and
    are never written, which makes them the zero Dirichlet neighbours.
    """

    def __init__(self, operator: StencilOperator, omega: torch.Tensor, r: torch.Tensor, layout: _Sheared) -> None:
        w0, w1 = (f / (h * h) for f, h in zip(operator.faces, operator.spacing, strict=True))
        diag = operator.diagonal()
        if bool((diag <= 0).any()):
            raise PdeforgeError("SOR needs a positive diagonal in every row of the operator")
        om = omega[:, None, None]
        self.fronts = layout.front_rows()
        self.coef = {
            "inv": layout.shear(om / diag),                 # omega / D
            "relax": layout.shear((1 / om - 1) * diag),     # (1/omega - 1) D
            "north": layout.shear(w0[:, :-1]),              # coupling of (i, j) to (i-1, j)
            "south": layout.shear(w0[:, 1:]),               # coupling of (i, j) to (i+1, j)
            "west": layout.shear(w1[:, :, :-1]),            # coupling of (i, j) to (i, j-1)
            "east": layout.shear(w1[:, :, 1:]),             # coupling of (i, j) to (i, j+1)
        }
        self.r = layout.shear(r)
        self._build()

    def _build(self) -> None:
        self.d = torch.zeros_like(self.r)
        self.spare = torch.zeros_like(self.r)
        self.front_norms = self.r.new_zeros(self.r.shape[0], self.r.shape[-1])
        self._views = {id(buf): self._front_views(buf) for buf in (self.r, self.spare)}

    def _front_views(self, r: torch.Tensor) -> list[tuple]:
        c, d, n1 = self.coef, self.d, self.r.shape[1]
        new = self.spare if r is self.r else self.r
        views = []
        for k, (rows, north_rows) in enumerate(self.fronts):
            solve = (r[k, rows], d[k, rows], c["inv"][k, rows],
                     None if k == 0 else (c["west"][k, rows], d[k - 1, rows]),
                     None if north_rows is None else (d[k, north_rows], c["north"][k, north_rows],
                                                      d[k - 1, north_rows.start - 1:north_rows.stop - 1]))
            east = south = None
            if k + 1 < len(self.fronts):
                east = (c["east"][k, rows], d[k + 1, rows])
                top = min(rows.stop, n1 - 1)
                if top > rows.start:
                    south = (new[k, rows.start:top], c["south"][k, rows.start:top], d[k + 1, rows.start + 1:top + 1])
            residual = (new[k, rows], c["relax"][k, rows], d[k, rows], east, south, self.front_norms[k])
            views.append((solve, residual))
        return views

    def keep(self, idx: torch.Tensor) -> None:
        """Drop every system not in ``idx``."""
        self.coef = {name: a[..., idx].contiguous() for name, a in self.coef.items()}
        self.r = self.r[..., idx].contiguous()
        self._build()

    def sweep(self) -> torch.Tensor:
        """One SOR sweep: ``d = M^{-1} r``, ``r <- r - A d``; returns ``||r||^2`` per system.

        The residual of front ``k`` is formed right after front ``k + 1``
        is solved, while both are still in cache.
        """
        views = self._views[id(self.r)]

        def solve(k):
            r_k, d_k, inv_k, west, north = views[k][0]
            if west is None:
                d_k.copy_(r_k)
            else:
                torch.addcmul(r_k, *west, out=d_k)
            if north is not None:
                north[0].addcmul_(north[1], north[2])
            d_k.mul_(inv_k)

        def residual(k):
            new_k, relax_k, d_k, east, south, norm_k = views[k][1]
            torch.mul(relax_k, d_k, out=new_k)
            if east is not None:
                new_k.addcmul_(*east)
            if south is not None:
                south[0].addcmul_(south[1], south[2])
            torch.linalg.vecdot(new_k, new_k, dim=0, out=norm_k)

        solve(0)
        for k in range(1, len(views)):
            solve(k)
            residual(k - 1)
        residual(len(views) - 1)
        self.r, self.spare = self.spare, self.r
        return self.front_norms.sum(0)


def _check(operator: StencilOperator, b: torch.Tensor, omega) -> torch.Tensor:
    if operator.ndim != 2:
        raise PdeforgeError(f"SOR is implemented for 2-D five-point operators, got a {operator.ndim}-D operator")
    if tuple(b.shape) != (operator.batch, *operator.shape):
        raise PdeforgeError(f"right-hand side of shape {tuple(b.shape)} does not match the operator "
                            f"({operator.batch}, {operator.shape[0]}, {operator.shape[1]})")
    omega = torch.as_tensor(omega, dtype=b.dtype, device=b.device).expand(operator.batch).clone()
    if bool(((omega <= 0) | (omega >= 2)).any()):
        raise PdeforgeError("SOR needs 0 < omega < 2")
    return omega


@overload
def _iterate(operator: StencilOperator, b: torch.Tensor, omega, x0: torch.Tensor | None, rtol: float, maxiter: int,
             keep_history: Literal[True]) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]: ...
@overload
def _iterate(operator: StencilOperator, b: torch.Tensor, omega, x0: torch.Tensor | None, rtol: float, maxiter: int,
             keep_history: Literal[False]) -> tuple[torch.Tensor, torch.Tensor, None]: ...
def _iterate(operator: StencilOperator, b: torch.Tensor, omega, x0: torch.Tensor | None, rtol: float, maxiter: int,
             keep_history: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """Sweep until every system reaches ``rtol``; with ``keep_history`` also track ``x`` and the residuals.

    Converged systems are dropped from the batch: at once when the iterate
    is kept (so it is the one at the crossing), otherwise once a quarter of
    the batch is done (a done system's later sweeps do not change its count).
    """
    omega = _check(operator, b, omega)
    n1, n2 = operator.shape  # 2-D, as _check made sure
    layout = _Sheared((n1, n2), b.device)
    bnorm = torch.linalg.vector_norm(b.flatten(1), dim=1).clamp_min(1e-300)
    r0 = b if x0 is None else b - operator.matvec(x0)
    rel = torch.linalg.vector_norm(r0.flatten(1), dim=1) / bnorm
    converged = rel < rtol
    iterations = torch.zeros(operator.batch, dtype=torch.int64, device=b.device)
    history = [rel.clone()]
    x_out = (torch.zeros_like(b) if x0 is None else x0.clone()) if keep_history else None
    active = torch.nonzero(~converged).flatten()
    plan = _SweepPlan(operator, omega, r0, layout)
    plan.keep(active)
    x = None if x_out is None else layout.shear(x_out)[..., active]  # the kept iterate, sheared
    scale = bnorm[active]
    done = torch.zeros(active.numel(), dtype=torch.bool, device=b.device)
    for k in range(1, maxiter + 1):
        if active.numel() == 0:
            break
        now = plan.sweep().sqrt() / scale
        fresh = (now < rtol) & ~done
        done |= fresh
        iterations[active[~done | fresh]] = k
        converged[active[fresh]] = True
        if x is not None:
            x += plan.d
            rel = rel.clone()
            rel[active] = now
            history.append(rel)
        quarter_done = done.numel() > 64 and int(done.sum()) * 4 >= done.numel()
        if bool(done.all()) or (bool(done.any()) and (keep_history or quarter_done)):
            if x_out is not None and x is not None:
                x_out[active[done]] = layout.unshear(x[..., done])
            keep = torch.nonzero(~done).flatten()
            active, scale, done = active[keep], scale[keep], done[keep]
            plan.keep(keep)
            if x is not None:
                x = x[..., keep].contiguous()
    if x_out is not None and x is not None and active.numel():
        x_out[active] = layout.unshear(x)
    return iterations, converged, None if x_out is None else (x_out, torch.stack(history))


def sor(operator: StencilOperator, b: torch.Tensor, omega, x0: torch.Tensor | None = None, *,
        rtol: float = 1e-8, maxiter: int = 10_000) -> SolveResult:
    """Solve ``A x = b`` by SOR for every system of a batch.

    Parameters
    ----------
    operator
        A 2-D :class:`~pdeforge.problems.StencilOperator` with positive diagonal.
    b
        Right-hand sides ``[batch, n1, n2]``.
    omega
        Relaxation parameter, a float or one per system ``[batch]``, in ``(0, 2)``.
    x0
        Initial guess (zero by default).
    rtol
        Stop a system when ``||b - A x_k|| < rtol ||b||``.
    maxiter
        Iteration cap (the learning-to-relax experiments use 10 000).

    Returns
    -------
    SolveResult
        ``history`` holds the relative residual after every sweep.

    Examples
    --------
    >>> from pdeforge.learned_solvers import shifted_laplacian
    >>> op = shifted_laplacian(torch.zeros(1, dtype=torch.float64), 8)
    >>> res = sor(op, torch.ones(1, 8, 8, dtype=torch.float64), 1.5, rtol=1e-10)
    >>> bool(op.residual_norm(res.x, torch.ones(1, 8, 8, dtype=torch.float64)) < 1e-10)
    True
    """
    iterations, converged, (x, history) = _iterate(operator, b, omega, x0, rtol, maxiter, True)
    return SolveResult(x=x, iterations=iterations, history=history, converged=converged)


def sor_iterations(operator: StencilOperator, b: torch.Tensor, omega, *, rtol: float = 1e-8,
                   maxiter: int = 10_000) -> torch.Tensor:
    """Sweeps SOR needs from ``x0 = 0`` to ``||r_k|| < rtol ||b||``, per system ``[batch]``.

    The cost that Khodak et al. (2024) learn to minimise; systems that miss
    the tolerance report ``maxiter``. Same arithmetic as :func:`sor`, but no
    iterate or history is kept, so large batches fit in memory.
    """
    iterations, _, _ = _iterate(operator, b, omega, None, rtol, maxiter, False)
    return iterations


def jacobi_spectral_radius(operator: StencilOperator, *, max_unknowns: int = 4096) -> torch.Tensor:
    """Spectral radius of the Jacobi iteration matrix ``I - D^{-1} A`` per system ``[batch]``.

    For symmetric ``A`` this is the largest ``|lambda|`` of the symmetric
    matrix ``I - D^{-1/2} A D^{-1/2}``, computed densely (small systems only).
    """
    n = operator.unknowns
    if n > max_unknowns:
        raise PdeforgeError(f"the dense Jacobi spectral radius is limited to {max_unknowns} unknowns, got {n}")
    eye = torch.eye(n, dtype=operator.dtype, device=operator.device)
    scale = operator.diagonal().flatten(1).rsqrt()  # D^{-1/2}
    columns = []
    for j in range(n):
        e = (eye[j] * scale).expand(operator.batch, n).reshape(operator.batch, *operator.shape)
        columns.append(operator.matvec(e).flatten(1) * scale)
    jac = eye - torch.stack(columns, dim=2)
    return torch.linalg.eigvalsh(jac).abs().amax(dim=1)


def optimal_sor_omega(operator: StencilOperator) -> torch.Tensor:
    """Young's asymptotically optimal ``omega* = 2 / (1 + sqrt(1 - beta^2))``, ``beta`` the Jacobi radius.

    Exact for consistently ordered matrices such as the five-point operator
    (Young 1971); for the Laplacian on an ``n x n`` grid it is
    ``2 / (1 + sin(pi h))``, ``h = 1 / (n + 1)``.

    >>> import math
    >>> from pdeforge.learned_solvers import shifted_laplacian
    >>> w = optimal_sor_omega(shifted_laplacian(torch.zeros(1, dtype=torch.float64), 10))
    >>> abs(float(w[0]) - 2 / (1 + math.sin(math.pi / 11))) < 1e-12
    True
    """
    beta = jacobi_spectral_radius(operator)
    return 2 / (1 + torch.sqrt((1 - beta * beta).clamp_min(0)))
