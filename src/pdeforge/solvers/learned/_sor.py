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

import math

import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator
from pdeforge.solvers._result import KrylovResult

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


class _SweepCoefficients:
    """The operator's couplings in the sheared layout, for a batch of systems."""

    def __init__(self, operator: StencilOperator, omega: torch.Tensor, layout: _Sheared) -> None:
        w0, w1 = (f / (h * h) for f, h in zip(operator.faces, operator.spacing))
        diag = operator.diagonal()
        if bool((diag <= 0).any()):
            raise PdeforgeError("SOR needs a positive diagonal in every row of the operator")
        om = omega[:, None, None]
        self.fronts = layout.front_rows()
        self.inv = layout.shear(om / diag)                 # omega / D
        self.relax = layout.shear((1 / om - 1) * diag)     # (1/omega - 1) D
        self.north = layout.shear(w0[:, :-1])              # coupling of (i, j) to (i-1, j)
        self.south = layout.shear(w0[:, 1:])               # coupling of (i, j) to (i+1, j)
        self.west = layout.shear(w1[:, :, :-1])            # coupling of (i, j) to (i, j-1)
        self.east = layout.shear(w1[:, :, 1:])             # coupling of (i, j) to (i, j+1)

    def select(self, keep: torch.Tensor) -> None:
        for name in ("inv", "relax", "north", "south", "west", "east"):
            setattr(self, name, getattr(self, name)[..., keep])

    def sweep(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Solve ``M d = r`` front by front; return ``d``, the new residual ``r - A d`` and its squared norm.

        Each front touches only its valid rows; the residual of front
        ``k - 1`` is formed as soon as front ``k`` is known, while both are
        still in cache.
        """
        d, new = torch.zeros_like(r), torch.zeros_like(r)
        norm2 = r.new_zeros(r.shape[-1])
        fronts = self.fronts
        for k in range(len(fronts) + 1):
            if k < len(fronts):  # forward substitution on front k
                rows, north_rows = fronts[k]
                acc = r[k, rows].clone() if k == 0 else torch.addcmul(r[k, rows], self.west[k, rows], d[k - 1, rows])
                if north_rows is not None:
                    acc[north_rows.start - rows.start:].addcmul_(
                        self.north[k, north_rows], d[k - 1, north_rows.start - 1:north_rows.stop - 1])
                torch.mul(acc, self.inv[k, rows], out=d[k, rows])
            if k > 0:  # residual of front k - 1: (1/omega - 1) D d + east and south couplings
                rows, _ = fronts[k - 1]
                res = torch.mul(self.relax[k - 1, rows], d[k - 1, rows], out=new[k - 1, rows])
                if k < len(fronts):
                    res.addcmul_(self.east[k - 1, rows], d[k, rows])
                    top = min(rows.stop, d.shape[1] - 1)
                    if top > rows.start:
                        res[: top - rows.start].addcmul_(self.south[k - 1, rows.start:top], d[k, rows.start + 1:top + 1])
                norm2.add_(torch.linalg.vecdot(res, res, dim=0))
        return d, new, norm2


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


def _iterate(operator, b, omega, x0, rtol, maxiter, keep_history):
    omega = _check(operator, b, omega)
    layout = _Sheared(operator.shape, b.device)
    coef = _SweepCoefficients(operator, omega, layout)
    batch = operator.batch
    bnorm = torch.linalg.vector_norm(b.flatten(1), dim=1).clamp_min(1e-300)
    r0 = b if x0 is None else b - operator.matvec(x0)
    r = layout.shear(r0)
    x = layout.shear(torch.zeros_like(b) if x0 is None else x0.clone()) if keep_history else None
    rel = torch.linalg.vector_norm(r0.flatten(1), dim=1) / bnorm
    iterations = torch.zeros(batch, dtype=torch.int64, device=b.device)
    converged = rel < rtol
    history = [rel.clone()]
    active = torch.nonzero(~converged).flatten()
    x_out = layout.unshear(x).clone() if keep_history else None
    r, scale = r[..., active], bnorm[active]
    coef.select(active)
    if keep_history:
        x = x[..., active]
    done = torch.zeros(active.numel(), dtype=torch.bool, device=b.device)
    for k in range(1, maxiter + 1):
        if active.numel() == 0:
            break
        d, r_new, norm2 = coef.sweep(r)
        if keep_history:  # converged systems stay frozen until they are dropped
            x = x + d * (~done)
            r = torch.where(done, r, r_new)
            now = torch.linalg.vector_norm(r.flatten(0, 1), dim=0) / scale
        else:  # only the first crossing is recorded, later sweeps of a done system are harmless
            r = r_new
            now = norm2.sqrt() / scale
        fresh = (now < rtol) & ~done
        iterations[active[fresh]] = k
        converged[active[fresh]] = True
        done |= fresh
        iterations[active[~done]] = k
        if keep_history:
            rel = rel.clone()
            rel[active] = now
            history.append(rel)
        if bool(done.all()) or (done.sum() * 4 >= done.numel() and done.numel() > 64):
            if keep_history:
                x_out[active[done]] = layout.unshear(x[..., done])
            keep = torch.nonzero(~done).flatten()
            active, r, scale, done = active[keep], r[..., keep], scale[keep], done[keep]
            coef.select(keep)
            if keep_history:
                x = x[..., keep]
    if keep_history and active.numel():
        x_out[active] = layout.unshear(x)
    return iterations, converged, (x_out, torch.stack(history)) if keep_history else None


def sor(operator: StencilOperator, b: torch.Tensor, omega, x0: torch.Tensor | None = None, *,
        rtol: float = 1e-8, maxiter: int = 10_000) -> KrylovResult:
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
    KrylovResult
        ``history`` holds the relative residual after every sweep.

    Examples
    --------
    >>> from pdeforge.solvers.learned import shifted_laplacian
    >>> op = shifted_laplacian(torch.zeros(1, dtype=torch.float64), 8)
    >>> res = sor(op, torch.ones(1, 8, 8, dtype=torch.float64), 1.5, rtol=1e-10)
    >>> bool(op.residual_norm(res.x, torch.ones(1, 8, 8, dtype=torch.float64)) < 1e-10)
    True
    """
    iterations, converged, (x, history) = _iterate(operator, b, omega, x0, rtol, maxiter, True)
    return KrylovResult(x=x, iterations=iterations, history=history, converged=converged)


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

    >>> from pdeforge.solvers.learned import shifted_laplacian
    >>> w = optimal_sor_omega(shifted_laplacian(torch.zeros(1, dtype=torch.float64), 10))
    >>> abs(float(w[0]) - 2 / (1 + math.sin(math.pi / 11))) < 1e-12
    True
    """
    beta = jacobi_spectral_radius(operator)
    return 2 / (1 + torch.sqrt((1 - beta * beta).clamp_min(0)))
