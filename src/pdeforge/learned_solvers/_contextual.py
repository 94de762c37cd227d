"""Contextual bandits for a scalar context: ChebCB and a binned Tsallis-INF.

Khodak et al. (ICLR 2024, sec. 5 and 6) tune SOR's ``omega`` for systems
``A + c I`` whose shift ``c`` is revealed before the solve. Their learner
*ChebCB* is a SquareCB-style contextual bandit (Foster & Rakhlin 2020):

1. per arm ``i`` a regression ``cost_i(c) ~ theta_i . phi(c)`` on the
   Chebyshev features ``phi(c) = (T_0(x), ..., T_{m-1}(x))`` of the context
   mapped to ``x in [-1, 1]``, fitted by least squares on the rounds where
   ``i`` was played, with the coefficient box that Chebyshev series of
   Lipschitz functions obey (``|theta_j| <= 2 (b - a) Lip / (s j)``);
2. inverse-gap weighting of the predictions ``y_i``: every arm but the
   predicted best gets ``1 / (K + eta (y_i - y_best))``, the best the rest;
3. costs are normalised by ``s = K_max N``, ``N = 2 + 4 (b - a) Lip / K_max
   (1 + log m)`` from the largest cost ``K_max`` and the empirical Lipschitz
   constant ``Lip`` seen so far, and the rate grows as
   ``eta_t = 2 t sqrt(K t / (R_t + 2 alpha^2 t))`` with ``R_t`` the squared
   prediction error so far and ``alpha`` the Chebyshev approximation error
   (the practical schedule of the authors' experiments).

The simpler baseline of the same paper discretises the context into bins
and runs an independent Tsallis-INF in each (:class:`BinnedTsallisINF`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import lsq_linear

from pdeforge.errors import PdeforgeError
from pdeforge.learned_solvers._tsallis_inf import RunningMeanScale, TsallisINF

__all__ = ["BinnedTsallisINF", "ChebCB", "chebyshev_features"]


def chebyshev_features(x: np.ndarray | float, m: int) -> np.ndarray:
    """``[T_0(x), ..., T_{m-1}(x)]`` by the three-term recurrence, shape ``[*x.shape, m]``.

    >>> chebyshev_features(0.5, 4).round(12).tolist()
    [1.0, 0.5, -0.5, -1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.empty((*x.shape, m))
    out[..., 0] = 1.0
    if m > 1:
        out[..., 1] = x
    for j in range(2, m):
        out[..., j] = 2 * x * out[..., j - 1] - out[..., j - 2]
    return out


class ChebCB:
    """Chebyshev-regression contextual bandit over ``n_arms`` actions (Khodak et al. 2024).

    Parameters
    ----------
    n_arms
        Number of actions.
    bounds
        Interval ``(a, b)`` that contains every context.
    rng
        Source of the arm draws.
    degree
        Number ``m`` of Chebyshev features (the paper: 6).
    offset
        Least possible cost (1 for iteration counts), subtracted before fitting.
    """

    def __init__(self, n_arms: int, bounds: tuple[float, float], *, rng: np.random.Generator,
                 degree: int = 6, offset: float = 1.0) -> None:
        a, b = map(float, bounds)
        if not b > a:
            raise PdeforgeError("the context interval needs b > a")
        if degree < 1 or n_arms < 2:
            raise PdeforgeError("ChebCB needs at least one feature and two arms")
        self.n_arms, self.m, self.a, self.width = n_arms, degree, a, b - a
        self.rng, self.offset = rng, float(offset)
        self.theta = np.zeros((n_arms, degree))
        self.eta, self.scale, self.t = 0.0, 0.0, 0
        # Per-arm normal equations of the regression on raw shifted costs: the
        # fit at any scale s is the fit of (cost - offset) / s, so no refit over
        # the history is ever needed.
        self.gram = np.zeros((n_arms, degree, degree))
        self.moment = np.zeros((n_arms, degree))
        self.low, self.high = math.inf, -math.inf
        # Running sums for the squared prediction error sum_t (p_t - y_t / s)^2 at the current s.
        self._pp = self._py = self._yy = 0.0
        self._pending: tuple[int, np.ndarray, float] | None = None

    def _features(self, context: float) -> np.ndarray:
        x = np.clip(2.0 * (float(context) - self.a) / self.width - 1.0, -1.0, 1.0)
        return chebyshev_features(x, self.m)

    def probabilities(self, context: float) -> np.ndarray:
        """Inverse-gap-weighted play distribution for this context ``[K]``."""
        y = self.theta @ self._features(context)
        best = int(np.argmin(y))
        p = 1.0 / (self.n_arms + self.eta * (y - y[best]))
        p[best] = 0.0
        p[best] = 1.0 - p.sum()
        return p

    def select(self, context: float) -> int:
        """Draw this round's arm from :meth:`probabilities` of the revealed ``context``."""
        phi = self._features(context)
        p = self.probabilities(context)
        arm = int(self.rng.choice(self.n_arms, p=p))
        self._pending = (arm, phi, float(self.theta[arm] @ phi))
        return arm

    def _fit(self, arm: int, bound: np.ndarray) -> None:
        """Least squares on the arm's normal equations, inside the coefficient box if the free fit leaves it."""
        g, h = self.gram[arm], self.moment[arm] / self.scale
        theta = np.linalg.lstsq(g, h, rcond=None)[0]  # minimum-norm solution of G theta = h
        if np.any(np.abs(theta) > bound):
            # min |Phi theta - y|^2 = |R theta - R^{-T} h|^2 + const with G = R^T R (R from the eigenpairs of G).
            lam, vec = np.linalg.eigh(g)
            lam = np.clip(lam, 0.0, None)
            root = np.sqrt(lam)[:, None] * vec.T
            rhs = np.where(lam > 1e-12 * lam.max(), (vec.T @ h) / np.where(lam > 0, np.sqrt(lam), 1.0), 0.0)
            theta = lsq_linear(root, rhs, bounds=(-bound, bound), method="bvls").x
        self.theta[arm] = theta

    def update(self, cost: float) -> None:
        """Feed back the cost of the arm drawn by :meth:`select`: refit, rescale, and set the next rate."""
        if self._pending is None:
            raise PdeforgeError("update() must follow select()")
        arm, phi, predicted = self._pending
        self._pending = None
        y = float(cost) - self.offset
        self.t += 1
        self.gram[arm] += np.outer(phi, phi)
        self.moment[arm] += y * phi
        self._pp, self._py, self._yy = self._pp + predicted**2, self._py + predicted * y, self._yy + y * y
        self.low, self.high = min(self.low, y), max(self.high, y)
        kmax = max(self.high, 1e-12)
        lip = (self.high - self.low) / self.width
        n_norm = 2.0 + 4.0 * self.width * lip / kmax * (1.0 + math.log(self.m))
        rescaled = kmax * n_norm != self.scale
        self.scale = kmax * n_norm
        bound = np.maximum(  # a zero width (no spread in the costs yet) pins the coefficient
            np.concatenate([[1.0 / n_norm], 2.0 * self.width * lip / self.scale / np.arange(1, self.m)]), 1e-12)
        for a in range(self.n_arms) if rescaled else [arm]:
            if self.gram[a, 0, 0] > 0:
                self._fit(a, bound)
        alpha = ((math.pi + 2.0 / math.pi * math.log(2 * self.m + 1)) / (2 * self.scale * (self.m + 1))
                 * self.width * lip)
        sq_err = self._pp - 2.0 * self._py / self.scale + self._yy / self.scale**2
        self.eta = 2.0 * self.t * math.sqrt(self.n_arms * self.t / max(sq_err + 2.0 * alpha**2 * self.t, 1e-12))


class BinnedTsallisINF:
    """Independent Tsallis-INF learners on ``bins`` equal cells of the context interval.

    A context goes to the cell with the nearest centre; each cell normalises
    its own costs by their running mean above ``offset`` (the discretised
    baseline of Khodak et al. 2024, sec. 6).

    Parameters
    ----------
    n_arms
        Number of actions.
    bounds
        Interval ``(a, b)`` that contains every context.
    rng
        Source of the arm draws (shared by the cells).
    bins
        Number of equal cells.
    offset
        Least possible cost (1 for iteration counts).
    """

    def __init__(self, n_arms: int, bounds: tuple[float, float], *, rng: np.random.Generator,
                 bins: int = 5, offset: float = 1.0) -> None:
        a, b = map(float, bounds)
        if not b > a or bins < 1:
            raise PdeforgeError("binning needs b > a and at least one bin")
        self.centres = a + (b - a) * (np.arange(bins) + 0.5) / bins
        self.learners = [TsallisINF(n_arms, rng=rng, scale=RunningMeanScale(offset)) for _ in range(bins)]
        self._cell: int | None = None

    def select(self, context: float) -> int:
        """Draw this round's arm from the Tsallis-INF learner of the cell that holds ``context``."""
        self._cell = int(np.argmin(np.abs(self.centres - float(context))))
        return self.learners[self._cell].select()

    def update(self, cost: float) -> None:
        """Feed back the cost of the arm drawn by :meth:`select` to that cell's learner."""
        if self._cell is None:
            raise PdeforgeError("update() must follow select()")
        self.learners[self._cell].update(cost)
        self._cell = None
