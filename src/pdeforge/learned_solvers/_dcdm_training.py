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

Training runs in :mod:`pdeforge.training`'s loop and writes its checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pdeforge.errors import PdeforgeError
from pdeforge.learned_solvers._obstacles import obstacle_poisson
from pdeforge.problems import StencilOperator
from pdeforge.training import EpochRecord, run_epochs, save_checkpoint

__all__ = ["dcdm_loss", "lanczos_ritz", "ritz_rhs", "train_direction_net"]


def dcdm_loss(operator: StencilOperator, b: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """The unsupervised DCDM loss, the batch mean of ``||b - A q (q.b / q.Aq)||^2 / ||b||^2``.

    Parameters
    ----------
    operator
        The batched SPD operators ``A``.
    b
        Right-hand sides ``[batch, *n]``.
    q
        Directions proposed by the network ``[batch, *n]``.

    Returns
    -------
    torch.Tensor
        A scalar in ``[0, 1]``: the squared residual left by the exact line search along ``q``.
    """
    aq = operator.matvec(q)
    qb = (q * b).flatten(1).sum(1)
    qaq = (q * aq).flatten(1).sum(1)
    step = (qb / qaq).reshape(-1, *([1] * (b.dim() - 1)))
    res = (b - step * aq).flatten(1)
    return ((res * res).sum(1) / (b.flatten(1) ** 2).sum(1)).mean()


def lanczos_ritz(operator: StencilOperator, m: int, rng: np.random.Generator,
                 support: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` Ritz pairs of one system (``operator.batch == 1``) by Lanczos with full reorthogonalisation.

    Parameters
    ----------
    operator
        One SPD system.
    m
        Lanczos steps (at most the number of unknowns; fewer on an invariant subspace).
    rng
        Source of the start vector ``A g``, ``g`` standard normal.
    support
        Mask of the cells that carry unknowns (everything by default); ``g`` is zero elsewhere.

    Returns
    -------
    values : torch.Tensor
        Ritz values ``[m]`` in ascending order (float64).
    vectors : torch.Tensor
        The orthonormal Ritz vectors ``[m, *n]``, ``vectors[i]`` belonging to ``values[i]`` (float64).
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

    Parameters
    ----------
    values, vectors
        Ritz pairs from :func:`lanczos_ritz`.
    count
        Number of right-hand sides.
    rng
        Source of the coefficients.
    theta, boost
        How many low Ritz vectors beyond half are boosted, and by what factor.
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
                        epochs: int, batch_size: int = 16, lr: float = 1e-3, seed: int = 0, run: Path | None = None,
                        on_epoch: Sequence[Callable[[EpochRecord], None]] = ()) -> list[EpochRecord]:
    """Minimise :func:`dcdm_loss` with Adam over right-hand sides of several obstacle layouts.

    The epochs run in :func:`pdeforge.training.run_epochs`, the loop that
    trains the neural operators (non-finite losses and divergence stop the
    run), and with ``run`` every epoch is saved as a
    :func:`pdeforge.training.save_checkpoint` checkpoint (safetensors
    weights, sha256-verified pointers) that :func:`load_direction_net`
    reads back. The paper trains with Adam at a constant learning rate
    (Kaneda et al., ICML 2023, sec. 4).

    Parameters
    ----------
    net
        Maps ``[batch, 1, n1, n2]`` to ``[batch, 1, n1, n2]``.
    fluid
        Fluid masks of the training layouts ``[L, n1, n2]`` (bool).
    rhs
        Right-hand sides ``[S, n1, n2]``; ``layout[s]`` names the layout of ``rhs[s]``.
    layout
        Layout index of every right-hand side ``[S]`` (int).
    epochs, batch_size, lr
        Adam's schedule: passes over ``rhs``, systems per step, constant learning rate.
    seed
        Epoch ``e`` visits ``rhs`` in an order drawn from ``(seed, e)`` alone.
    run
        Directory to checkpoint into after every epoch (``latest``, and
        ``best`` for the lowest mean training loss); an earlier checkpoint
        there is replaced. Nothing is written by default.
    on_epoch
        Callbacks that see each finished epoch's :class:`~pdeforge.training.EpochRecord`.

    Returns
    -------
    list of EpochRecord
        One record per epoch; ``train_loss`` is its mean :func:`dcdm_loss`.
    """
    param = next(net.parameters())
    dtype, device = param.dtype, param.device
    fluid = fluid.to(device)
    rhs = rhs.to(device=device, dtype=dtype)
    layout = layout.to(device)
    count = rhs.shape[0]
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)

    def batches(epoch: int):
        order = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(count), device=device)
        return (order[start:start + batch_size] for start in range(0, count, batch_size))

    def objective(idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        mask = fluid[layout[idx]]
        b = rhs[idx]
        q = net(b[:, None])[:, 0] * mask.to(dtype)
        return dcdm_loss(obstacle_poisson(mask, dtype=dtype), b, q), idx.numel()

    best = math.inf
    callbacks = list(on_epoch)
    if run is not None:
        def checkpoint(record: EpochRecord) -> None:
            nonlocal best
            better = record.train_loss < best
            best = min(best, record.train_loss)
            save_checkpoint(run, epoch=record.epoch, model=net, optimizer=optimizer, best=better,
                            state={"step": record.step, "train_loss": record.train_loss, "best_loss": best,
                                   "architecture": type(net).__name__, "config": getattr(net, "config", None)})

        callbacks.insert(0, checkpoint)
    records = run_epochs(net, optimizer, batches, objective, lambda step: lr, epochs=epochs,
                         steps_per_epoch=math.ceil(count / batch_size), on_epoch=callbacks)
    net.eval()
    return records
