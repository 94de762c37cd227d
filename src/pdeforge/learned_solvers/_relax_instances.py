"""The linear-system sequences of Khodak et al. (2024), sec. 6: shifted 2-D Laplacians.

Every instance is ``A_t = L + c_t I`` with ``L`` the unscaled five-point
Laplacian on an ``n x n`` grid (MATLAB's ``delsq(numgrid('S', n + 2))``:
4 on the diagonal, -1 to each neighbour, Dirichlet boundary) and a random
diagonal shift ``c_t = low + width * Beta(a, b)``; the right-hand side is a
standard Gaussian vector conditioned on ``||b|| <= sqrt(N)`` (radially
truncated, by rejection) and SOR starts from ``x0 = 0``. The paper's
high-variance setting is ``c = -0.15 + 0.6 Beta(0.5, 1.5)``, the
low-variance one ``c = -0.15 + 0.6 Beta(2, 6)``; both keep ``A_t`` positive
definite since the smallest eigenvalue of ``L`` at ``n = 10`` is
``4 - 4 cos(pi / 11) = 0.162``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pdeforge.problems import StencilOperator

__all__ = ["ShiftedLaplacianSequence", "shifted_laplacian", "truncated_normal"]


def shifted_laplacian(c: torch.Tensor, n: int) -> StencilOperator:
    """The batched operator ``L + c I`` on an ``n x n`` grid, one shift per system ``c [batch]``.

    >>> op = shifted_laplacian(torch.tensor([0.5], dtype=torch.float64), 3)
    >>> op.to_scipy(0).toarray()[4, 3:6].tolist()
    [-1.0, 4.5, -1.0]
    """
    batch = c.shape[0]
    faces = [torch.ones(batch, n + 1, n, dtype=c.dtype, device=c.device),
             torch.ones(batch, n, n + 1, dtype=c.dtype, device=c.device)]
    return StencilOperator(faces, (1.0, 1.0), shift=c[:, None, None].expand(batch, n, n))


def truncated_normal(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` standard normal vectors in ``R^size`` conditioned on ``||b|| <= sqrt(size)``.

    Drawn by rejection (about half of all draws are kept); returns ``[count, size]``.
    """
    out = np.empty((count, size))
    filled = 0
    while filled < count:
        draw = rng.standard_normal((2 * (count - filled) + 8, size))
        ok = draw[np.linalg.norm(draw, axis=1) <= np.sqrt(size)][: count - filled]
        out[filled:filled + len(ok)] = ok
        filled += len(ok)
    return out


@dataclass(frozen=True)
class ShiftedLaplacianSequence:
    """A distribution over instances ``(c_t, b_t)`` of the paper's SOR experiments.

    Attributes
    ----------
    n
        Grid points per axis (the paper: 10, i.e. 100 unknowns).
    low, width, beta
        ``c = low + width * Beta(*beta)``.
    """

    n: int = 10
    low: float = -0.15
    width: float = 0.6
    beta: tuple[float, float] = (0.5, 1.5)

    @property
    def context_bounds(self) -> tuple[float, float]:
        """The interval that holds every shift ``c``."""
        return self.low, self.low + self.width

    def sample(self, rng: np.random.Generator, count: int, *, dtype=torch.float64,
               device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` instances: shifts ``[count]`` and right-hand sides ``[count, n, n]``."""
        c = self.low + self.width * rng.beta(*self.beta, size=count)
        b = truncated_normal(rng, count, self.n * self.n).reshape(count, self.n, self.n)
        return (torch.as_tensor(c, dtype=dtype, device=device), torch.as_tensor(b, dtype=dtype, device=device))

    def operator(self, c: torch.Tensor) -> StencilOperator:
        """The operators ``L + c I`` of shifts ``c [batch]`` (see :func:`shifted_laplacian`)."""
        return shifted_laplacian(c, self.n)
