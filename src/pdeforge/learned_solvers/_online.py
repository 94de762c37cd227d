"""Online tuning of SOR across a sequence of instances (Khodak et al., ICLR 2024, sec. 6).

Each round a learner picks ``omega`` from a grid (optionally after seeing
the instance's context), SOR solves the instance, and the learner is told
only the iteration count of its own choice. Because SOR is deterministic,
the counts of every grid ``omega`` on every instance can be computed once
(:func:`sor_cost_table`); a learner's run then reads its costs from that
table, which is exactly what running SOR with its choices would give.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from pdeforge.learned_solvers._sor import jacobi_spectral_radius, sor_iterations
from pdeforge.problems import StencilOperator

__all__ = ["OnlineLearner", "play", "sor_convergence_factor", "sor_cost_table"]


class OnlineLearner(Protocol):
    """A learner that picks an arm per round and hears back the cost of that arm only."""

    def select(self, context: float) -> int:
        """The arm of this round, given its context (non-contextual learners ignore it)."""
        ...

    def update(self, cost: float) -> None:
        """The cost of the arm just selected (bandit feedback: no other arm's)."""
        ...


def sor_convergence_factor(omega: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Spectral radius of the SOR iteration matrix of a consistently ordered matrix (Young 1971).

    With ``beta`` the Jacobi spectral radius and ``omega* = 2 / (1 + sqrt(1 - beta^2))``:
    ``((omega beta + sqrt(omega^2 beta^2 - 4 (omega - 1))) / 2)^2`` for
    ``omega <= omega*`` and ``omega - 1`` beyond.
    """
    omega, beta = torch.broadcast_tensors(torch.as_tensor(omega, dtype=torch.float64),
                                          torch.as_tensor(beta, dtype=torch.float64))
    disc = (omega * beta) ** 2 - 4 * (omega - 1)
    below = ((omega * beta + disc.clamp_min(0).sqrt()) / 2) ** 2
    return torch.where(disc > 0, below, omega - 1)


def sor_cost_table(make_operator: Callable[[torch.Tensor], StencilOperator], contexts: torch.Tensor,
                   b: torch.Tensor, omegas: torch.Tensor, *, rtol: float = 1e-8, maxiter: int = 10_000,
                   chunk: int = 8192) -> torch.Tensor:
    """SOR iteration counts of every ``omega`` on every instance, ``[T, len(omegas)]``.

    The ``T * K`` solves run in batches of ``chunk`` systems, sorted by the
    iteration count that Young's convergence factor predicts, so the systems
    of one batch finish at about the same sweep.

    Parameters
    ----------
    make_operator
        ``make_operator(contexts[idx])`` builds the operators of a set of instances.
    contexts
        One context per instance ``[T]`` (the shift ``c`` of ``A + c I``).
    b
        Right-hand sides ``[T, n1, n2]``.
    omegas
        The grid of relaxation parameters ``[K]`` (the arms).
    rtol, maxiter
        The stopping rule of :func:`sor_iterations`.
    chunk
        Systems per batched solve.

    Returns
    -------
    torch.Tensor
        Sweeps ``[T, K]`` (int64); ``maxiter`` where the tolerance was missed.
    """
    t_count, k_count = len(contexts), len(omegas)
    beta = jacobi_spectral_radius(make_operator(contexts)).cpu()
    omega_grid = omegas.to(torch.float64).cpu()
    rate = sor_convergence_factor(omega_grid[None, :], beta[:, None]).clamp(1e-3, 1 - 1e-9)
    order = torch.argsort((np.log(rtol) / rate.log()).flatten())
    costs = torch.empty(t_count * k_count, dtype=torch.int64)
    for start in range(0, order.numel(), chunk):
        pick = order[start:start + chunk]
        inst, arm = pick // k_count, pick % k_count
        idx = inst.to(contexts.device)
        op = make_operator(contexts[idx])
        costs[pick] = sor_iterations(op, b[idx], omegas[arm.to(omegas.device)].to(b.dtype),
                                     rtol=rtol, maxiter=maxiter).cpu()
    return costs.reshape(t_count, k_count)


def play(learner: OnlineLearner, costs: torch.Tensor | np.ndarray, contexts) -> tuple[np.ndarray, np.ndarray]:
    """Run ``learner`` over the rounds of a cost table; it sees only the cost of the arm it picks.

    Parameters
    ----------
    learner
        Any :class:`OnlineLearner`.
    costs
        Cost of every arm in every round ``[T, K]`` (e.g. from :func:`sor_cost_table`).
    contexts
        The context revealed before each round ``[T]``.

    Returns
    -------
    arms : numpy.ndarray
        The arm picked in each round ``[T]``.
    costs : numpy.ndarray
        The cost paid in each round ``[T]``, ``costs[t, arms[t]]`` of the table.
    """
    table = np.asarray(costs)
    ctx = np.asarray(contexts, dtype=np.float64)
    arms = np.empty(len(table), dtype=np.int64)
    for t in range(len(table)):
        arms[t] = learner.select(float(ctx[t]))
        learner.update(float(table[t, arms[t]]))
    return arms, table[np.arange(len(table)), arms]
