"""One batched Arnoldi cycle with Givens-rotation least squares: the engine of GMRES and GCRO-DR.

A cycle builds, for every system of the batch at once, an orthonormal basis
``V`` of the Krylov space of the starting residual and the Hessenberg matrix
``H`` with ``A V_j = V_{j+1} H_j`` (Saad 2003, sec. 6.3). When a matrix
``C`` with orthonormal rows is given (GCRO-DR's ``C = A U``), every new
vector is also orthogonalised against ``C``, giving ``(I - C C^T) A V_j =
V_{j+1} H_j`` and the projections ``B_j = C^T A V_j`` (Parks et al.
2006).

Orthogonalisation is classical Gram-Schmidt applied twice (CGS2, "twice is
enough": Giraud, Langou & Rozloznik 2005) as two batched matrix products per
pass, instead of a Python loop over basis vectors (modified Gram-Schmidt).
The least-squares problem ``min ||beta e1 - H y||`` is reduced by Givens
rotations accumulated in an orthogonal matrix ``Q^T``, one small batched
product per step, so that every system's residual norm ``beta |(Q^T)_{j+1,0}|``
is known after every step without forming ``x``.

Each system stops on its own: once its residual estimate reaches its target
(or its step budget is spent) its later columns are ignored, so its update is
exactly the one it would get if solved alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["ArnoldiCycle"]


class ArnoldiCycle:
    """Arnoldi steps for a batch of systems, driven by :meth:`step`.

    Parameters
    ----------
    apply
        ``v -> A M v`` on flattened vectors ``[batch, n]``.
    r
        Starting residuals ``[batch, n]``.
    budget
        Maximum steps per system ``[batch]`` (0 keeps a system out of the cycle).
    target
        Absolute residual norm at which a system stops ``[batch]``.
    recycled
        Optional ``C`` ``[batch, k, n]`` with orthonormal rows (zero rows allowed).
    """

    def __init__(
        self,
        apply: Callable[[torch.Tensor], torch.Tensor],
        r: torch.Tensor,
        budget: torch.Tensor,
        target: torch.Tensor,
        recycled: torch.Tensor | None = None,
    ) -> None:
        batch, n = r.shape
        self.apply = apply
        self.k = 0 if recycled is None else recycled.shape[1]
        self.size = int(budget.max()) if budget.numel() else 0
        self.budget, self.target = budget, target
        s, k = self.size, self.k
        dtype, device = r.dtype, r.device
        # Rows 0..k-1 hold C, rows k..k+s hold v_0..v_s: one buffer, one product per pass.
        self.basis = torch.zeros(batch, k + s + 1, n, dtype=dtype, device=device)
        if recycled is not None and k:
            self.basis[:, :k] = recycled
            # The residual is orthogonal to C in exact arithmetic, but the true residual of a
            # nearly converged system carries rounding of size eps ||b|| along C: remove it
            # (twice), or v_0 = r / ||r|| would not be orthogonal to C. The C^T r part is
            # accounted for by the caller's least-squares problem.
            for _ in range(2):
                r = r - torch.bmm(torch.bmm(r.unsqueeze(1), recycled.mT), recycled).squeeze(1)
        self.beta = torch.linalg.vector_norm(r, dim=1)
        safe = torch.where(self.beta > 0, self.beta, torch.ones_like(self.beta))
        self.basis[:, k] = r / safe[:, None]
        self.hessenberg = torch.zeros(batch, s + 1, s, dtype=dtype, device=device)
        self.projections = torch.zeros(batch, k, s, dtype=dtype, device=device)
        self.triangle = torch.zeros(batch, s, s, dtype=dtype, device=device)
        self.rotations = torch.eye(s + 1, dtype=dtype, device=device).expand(batch, s + 1, s + 1).clone()
        self.steps = torch.zeros(batch, dtype=torch.int64, device=r.device)
        self.running = (budget > 0) & (self.beta > target)
        self.estimate = self.beta.clone()
        self.j = 0  # columns formed so far (the same for the whole batch)

    @property
    def vectors(self) -> torch.Tensor:
        """The Krylov basis ``V`` formed so far, ``[batch, j + 1, n]``."""
        return self.basis[:, self.k : self.k + self.j + 1]

    def step(self) -> torch.Tensor:
        """One Arnoldi step for the whole batch; returns which systems took it ``[batch]``.

        Written with as few tensor operations as possible: for the moderate
        sizes of PDE data generation the per-operation overhead, not the
        arithmetic, sets the cost of a step.
        """
        j, k = self.j, self.k
        took = self.running
        w = self.apply(self.basis[:, k + j]).unsqueeze(1)  # [batch, 1, n]
        # CGS2 against [C; v_0..v_j]: two passes of two batched products each, written
        # row-wise ([batch, 1, n] x [batch, n, r]); torch's batched matrix-vector form
        # ([batch, r, n] x [batch, n, 1]) is far slower on the CPU.
        q = self.basis[:, : k + j + 1]
        coeffs = torch.bmm(w, q.mT)
        w = torch.baddbmm(w, coeffs, q, alpha=-1.0)
        again = torch.bmm(w, q.mT)
        w = torch.baddbmm(w, again, q, alpha=-1.0)
        coeffs = (coeffs + again)[:, 0]
        norm = torch.linalg.vector_norm(w, dim=2, keepdim=True)  # [batch, 1, 1]
        # A zero norm is a (lucky) breakdown: the space is invariant, the next vector stays zero.
        self.basis[:, k + j + 1] = (w / norm.clamp_min(torch.finfo(w.dtype).tiny))[:, 0]
        column = self.hessenberg[:, : j + 2, j]  # h_{0..j+1, j}
        column[:, : j + 1] = coeffs[:, k:]
        column[:, j + 1] = norm[:, 0, 0]
        if k:
            self.projections[:, :, j] = coeffs[:, :k]

        # Givens: rotate the new column by the accumulated Q^T, then zero h_{j+1,j}.
        rotated = torch.bmm(self.rotations[:, : j + 2, : j + 2], column.unsqueeze(-1))[:, :, 0]
        ab = rotated[:, j : j + 2]
        rho = torch.linalg.vector_norm(ab, dim=1, keepdim=True)  # [batch, 1]
        cs = ab / rho.clamp_min(torch.finfo(w.dtype).tiny)  # (c, s); zero only for an all-zero column
        givens = torch.stack([cs, cs.flip(1) * cs.new_tensor([-1.0, 1.0])], dim=1)  # [[c, s], [-s, c]]
        rows = self.rotations[:, j : j + 2, : j + 2]
        rows.copy_(torch.bmm(givens, rows))
        self.triangle[:, : j + 1, j] = torch.cat([rotated[:, :j], rho], dim=1)

        self.j += 1
        # Residual norm of the new least-squares problem: beta |(Q^T)_{j+1, 0}|.
        self.estimate = torch.where(took, self.beta * self.rotations[:, j + 1, 0].abs(), self.estimate)
        self.steps += took
        self.running = took & (self.estimate > self.target) & (self.steps < self.budget)
        return took

    def run(self, on_step: Callable[[ArnoldiCycle, torch.Tensor], None] | None = None) -> ArnoldiCycle:
        """Step until every system has stopped; ``on_step(self, took)`` after each step."""
        while self.j < self.size and bool(self.running.any()):
            took = self.step()
            if on_step is not None:
                on_step(self, took)
        return self

    def solve(self) -> torch.Tensor:
        """Each system's least-squares coefficients ``y`` ``[batch, j]`` over its own steps.

        Solves ``R_i y = g_i`` on the leading ``steps_i`` block; the rest of the
        batch's columns are padded with the identity so that ``y`` is zero there.
        """
        j = self.j
        if j == 0:
            return self.triangle.new_zeros(self.triangle.shape[0], 0)
        idx = torch.arange(j, device=self.steps.device)
        inside = idx[None, :] < self.steps[:, None]  # [batch, j]
        block = inside[:, :, None] & inside[:, None, :]
        eye = torch.eye(j, dtype=self.triangle.dtype, device=self.triangle.device)
        r = torch.where(block, self.triangle[:, :j, :j], eye)
        g = torch.where(inside, self.beta[:, None] * self.rotations[:, :j, 0], torch.zeros_like(self.beta)[:, None])
        return torch.linalg.solve_triangular(r, g.unsqueeze(-1), upper=True).squeeze(-1)
