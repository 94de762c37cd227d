"""Training data and the unsupervised loss of DCDM (Kaneda et al., ICML 2023, sec. 4).

The network ``f`` should map a right-hand side ``b`` to a direction ``q``
whose exact line search ``x = (q^T b / q^T A q) q`` solves ``A x = b`` as
well as possible, so the loss needs no solutions:

    loss(b) = || b - A q (q^T b) / (q^T A q) ||^2 / ||b||^2,    q = f(b).

It is invariant to the scale of ``q`` and zero exactly when ``q`` is a
multiple of ``A^{-1} b``.

Right-hand sides come from the low end of the spectrum, where CG is slow
and the network must help: ``m`` Ritz vectors of ``A`` from a Lanczos run
started at ``A`` times a random vector, combined with standard normal
coefficients of which those of the lowest ``m/2 + theta`` Ritz values are
multiplied by 9 (the authors' data generator: ``m = 10 000``, ``theta = 500``
at 64^3), then normalised.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator
from pdeforge.solvers.learned._obstacles import obstacle_poisson

__all__ = ["dcdm_loss", "lanczos_ritz", "ritz_rhs", "train_direction_net"]


def dcdm_loss(operator: StencilOperator, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``||b - A q (q.b / q.Aq)||^2 / ||b||^2`` for fields ``[batch, *n]``."""
    aq = operator.matvec(q)
    qb = (q * b).flatten(1).sum(1)
    qaq = (q * aq).flatten(1).sum(1)
    step = (qb / qaq).reshape(-1, *([1] * (b.dim() - 1)))
    res = (b - step * aq).flatten(1)
    return ((res * res).sum(1) / (b.flatten(1) ** 2).sum(1)).mean()


def lanczos_ritz(operator: StencilOperator, m: int, rng: np.random.Generator,
                 support: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` Ritz pairs of one system (``operator.batch == 1``) by Lanczos with full reorthogonalisation.

    Returns Ritz values ``[m]`` ascending and Ritz vectors ``[m, *n]``. The
    start vector is ``A g``, ``g`` standard normal on ``support`` (a mask
    of the cells that carry unknowns; everything by default).
    """
    if operator.batch != 1:
        raise PdeforgeError("lanczos_ritz works on one system at a time")
    shape, dtype = operator.shape, torch.float64
    g = torch.as_tensor(rng.standard_normal((1, *shape)), dtype=dtype, device=operator.device)
    if support is not None:
        g = g * support.to(dtype)
    v = operator.matvec(g).flatten()
    size = v.numel()
    m = min(m, size)
    basis = torch.zeros(m, size, dtype=dtype, device=v.device)
    alpha = torch.zeros(m, dtype=dtype)
    beta = torch.zeros(m, dtype=dtype)
    basis[0] = v / v.norm()
    for j in range(m):
        w = operator.matvec(basis[j].reshape(1, *shape)).flatten()
        alpha[j] = w @ basis[j]
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        if j + 1 < m:
            beta[j] = w.norm()
            if float(beta[j]) < 1e-12:  # invariant subspace: stop early
                m = j + 1
                break
            basis[j + 1] = w / beta[j]
    tri = torch.diag(alpha[:m]) + torch.diag(beta[: m - 1], 1) + torch.diag(beta[: m - 1], -1)
    values, y = torch.linalg.eigh(tri)
    vectors = (y.T.to(basis.device) @ basis[:m]).reshape(m, *shape)
    return values, vectors


def ritz_rhs(values: torch.Tensor, vectors: torch.Tensor, count: int, rng: np.random.Generator, *,
             theta: int | None = None, boost: float = 9.0) -> torch.Tensor:
    """``count`` normalised right-hand sides ``[count, *n]`` weighted toward the low Ritz values.

    Coefficients are standard normal; those of the lowest ``m/2 + theta``
    non-zero Ritz values (``theta = m/20`` by default, the paper's 500 of
    10 000) are multiplied by ``boost``.
    """
    keep = values > 1e-8 * values.abs().max()
    vectors = vectors[keep]
    m = vectors.shape[0]
    theta = m // 20 if theta is None else theta
    coef = rng.standard_normal((count, m))
    coef[:, : min(m, m // 2 + theta)] *= boost
    b = torch.as_tensor(coef, dtype=vectors.dtype, device=vectors.device) @ vectors.flatten(1)
    b = b / b.norm(dim=1, keepdim=True)
    return b.reshape(count, *vectors.shape[1:])


def train_direction_net(net: nn.Module, fluid: torch.Tensor, rhs: torch.Tensor, layout: torch.Tensor, *,
                        epochs: int, batch_size: int = 16, lr: float = 1e-3, seed: int = 0,
                        callback: Callable[[int, float], None] | None = None) -> list[float]:
    """Minimise :func:`dcdm_loss` with Adam over right-hand sides of several obstacle layouts.

    Parameters
    ----------
    net
        Maps ``[batch, 1, n1, n2]`` to ``[batch, 1, n1, n2]``.
    fluid
        Fluid masks of the training layouts ``[L, n1, n2]`` (bool).
    rhs
        Right-hand sides ``[S, n1, n2]``; ``layout[s]`` names the layout of ``rhs[s]``.
    epochs, batch_size, lr, seed
        Adam's schedule; ``seed`` fixes the shuffling.
    callback
        Called as ``callback(epoch, mean_loss)`` after each epoch.

    Returns
    -------
    list of float
        Mean training loss of every epoch.
    """
    param = next(net.parameters())
    dtype, device = param.dtype, param.device
    fluid = fluid.to(device)
    rhs = rhs.to(device=device, dtype=dtype)
    layout = layout.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    net.train()
    for epoch in range(epochs):
        order = torch.randperm(rhs.shape[0], generator=gen).to(device)
        total = 0.0
        for start in range(0, order.numel(), batch_size):
            idx = order[start:start + batch_size]
            mask = fluid[layout[idx]]
            op = obstacle_poisson(mask, dtype=dtype)
            b = rhs[idx]
            q = net(b[:, None])[:, 0] * mask.to(dtype)
            loss = dcdm_loss(op, b, q)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        losses.append(total / rhs.shape[0])
        if callback is not None:
            callback(epoch, losses[-1])
    net.eval()
    return losses
