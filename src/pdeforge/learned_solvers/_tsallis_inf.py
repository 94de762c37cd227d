"""Tsallis-INF: the 1/2-Tsallis-entropy bandit of Zimmert & Seldin (JMLR 2021).

Online mirror descent (follow-the-regularised-leader) on the simplex with
the regulariser ``Psi_t(w) = -(4 / eta_t) sum_i sqrt(w_i)`` and
importance-weighted loss estimates ``L_hat_{t,i} = sum_s l_s 1[I_s = i] / w_{s,i}``.
The play distribution

    w_t = argmin_w  <w, L_hat_{t-1}> + Psi_t(w)   =>   w_{t,i} = 4 / (eta_t (L_hat_i - x))^2

has a normalising constant ``x < min_i L_hat_i`` found by Newton's method
(Zimmert & Seldin, Alg. 2); ``eta_t = 2 / sqrt(t)`` is their learning rate
for importance-weighted estimates (Theorem 1), giving pseudo-regret at most
``4 sqrt(K T) + 1`` for losses in ``[0, 1]``.

Solver costs are not in ``[0, 1]``, so, as in Khodak et al. (2024, sec. 6),
a :class:`RunningMeanScale` may normalise them: the learner then sees
``(cost - offset) / s_t`` with ``s_t`` the running mean of ``cost - offset``
over the rounds so far, applied to all past estimates at once (FTRL with
rate ``eta_t / s_t`` on the raw costs).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from pdeforge.errors import PdeforgeError

__all__ = ["RunningMeanScale", "TsallisINF", "tsallis_weights"]


def tsallis_weights(estimates: np.ndarray, eta: float, *, tol: float = 1e-12, max_steps: int = 100) -> np.ndarray:
    """The 1/2-Tsallis-INF distribution for cumulative loss estimates ``[K]``.

    Solves ``sum_i 4 / (eta (L_i - x))^2 = 1`` for ``x`` by Newton's method,
    started at ``x = min L - 2 / eta`` where the sum is >= 1; the sum is
    convex and increasing in ``x``, so the iterates decrease monotonically
    to the root and stay left of ``min L`` (Zimmert & Seldin 2021, Alg. 2).

    Parameters
    ----------
    estimates
        Cumulative (importance-weighted) loss estimates ``L [K]``.
    eta
        Learning rate ``eta_t > 0``.
    tol, max_steps
        Newton stops when ``|sum_i w_i - 1| < tol`` or after ``max_steps`` steps.

    Returns
    -------
    numpy.ndarray
        The play distribution ``w [K]`` (normalised to sum to one).

    >>> w = tsallis_weights(np.array([0.0, 0.0, 3.0]), eta=1.0)
    >>> bool(abs(w.sum() - 1) < 1e-12 and w[0] == w[1] > w[2])
    True
    """
    if eta <= 0:
        raise PdeforgeError("the learning rate must be positive")
    losses = np.asarray(estimates, dtype=np.float64)
    x = losses.min() - 2.0 / eta
    for _ in range(max_steps):
        w = 4.0 / (eta * (losses - x)) ** 2
        excess = w.sum() - 1.0
        if abs(excess) < tol:
            break
        x -= excess / (eta * np.sum(w**1.5))
    return w / w.sum()


class RunningMeanScale:
    """Normalises costs by the running mean of ``cost - offset`` (Khodak et al. 2024, sec. 6).

    Parameters
    ----------
    offset
        The least possible cost (1 for iteration counts), subtracted from every cost.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset, self.total, self.count = float(offset), 0.0, 0

    def observe(self, cost: float) -> float:
        """Record a cost and return it shifted by the offset."""
        shifted = float(cost) - self.offset
        self.total += shifted
        self.count += 1
        return shifted

    @property
    def value(self) -> float:
        """The current scale ``s_t``: the mean shifted cost so far, or 1 before any positive cost."""
        if self.count == 0 or self.total <= 0:
            return 1.0
        return self.total / self.count


def _standard_rate(t: int) -> float:
    return 2.0 / math.sqrt(t)


class TsallisINF:
    """A K-armed adversarial bandit with the 1/2-Tsallis-INF strategy.

    Parameters
    ----------
    n_arms
        Number of actions ``K``.
    rng
        Source of the arm draws.
    scale
        Optional cost normaliser (e.g. :class:`RunningMeanScale`); without
        one the losses are used as given.
    learning_rate
        ``eta_t`` as a function of the round ``t = 1, 2, ...``.

    Examples
    --------
    >>> bandit = TsallisINF(3, rng=np.random.default_rng(0))
    >>> for _ in range(200):
    ...     arm = bandit.select()
    ...     bandit.update([0.9, 0.1, 0.5][arm])
    >>> int(np.argmax(bandit.probabilities()))
    1
    """

    def __init__(self, n_arms: int, *, rng: np.random.Generator, scale: RunningMeanScale | None = None,
                 learning_rate: Callable[[int], float] = _standard_rate) -> None:
        if n_arms < 2:
            raise PdeforgeError("a bandit needs at least two arms")
        self.n_arms, self.rng, self.scale, self.learning_rate = n_arms, rng, scale, learning_rate
        self.estimates = np.zeros(n_arms)
        self.t = 1
        self._arm: int | None = None
        self._prob = 1.0

    def probabilities(self) -> np.ndarray:
        """The play distribution ``w_t`` of the current round ``[K]``."""
        scale = self.scale.value if self.scale is not None else 1.0
        return tsallis_weights(self.estimates / scale, self.learning_rate(self.t))

    def select(self, context=None) -> int:
        """Draw this round's arm (``context`` is ignored: this learner is not contextual)."""
        w = self.probabilities()
        self._arm = int(self.rng.choice(self.n_arms, p=w))
        self._prob = float(w[self._arm])
        return self._arm

    def update(self, loss: float) -> None:
        """Feed back the loss of the arm drawn by :meth:`select` (bandit feedback)."""
        if self._arm is None:
            raise PdeforgeError("update() must follow select()")
        shifted = self.scale.observe(loss) if self.scale is not None else float(loss)
        self.estimates[self._arm] += shifted / self._prob  # importance weighting keeps L_hat unbiased
        self.t += 1
        self._arm = None
