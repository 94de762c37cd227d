"""Sparse direct solves with SciPy's SuperLU: the reference linear solver."""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla
import torch

from pdeforge._typing import Systems
from pdeforge.problems import StencilOperator
from pdeforge.solvers._result import SolveResult

__all__ = ["direct_solve"]


def direct_solve(operator: StencilOperator, b: Systems, *, rtol: float = 1e-8) -> SolveResult:
    """Factorise and solve each system of the batch on the host.

    SuperLU runs on the CPU, so the systems travel to the host and the
    solutions back to ``b``'s device; this is the accuracy reference the
    iterative solvers are checked against, not the fast path.
    """
    xs = []
    for i in range(operator.batch):
        lu = spla.splu(operator.to_scipy(i).tocsc())
        xs.append(lu.solve(b[i].detach().cpu().numpy().astype(np.float64).ravel()))
    x = torch.as_tensor(np.stack(xs), dtype=b.dtype, device=b.device).reshape(b.shape)
    residual = operator.residual_norm(x, b)
    return SolveResult.one_shot(x, residual, rtol, iterations=1)
