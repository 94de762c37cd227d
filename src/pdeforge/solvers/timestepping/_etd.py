"""Exponential time differencing: ETDRK4 for ``u' = L u + N(u, t)`` with diagonal ``L``."""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict

import torch

__all__ = ["ETDRK4"]


_MEMO = 8
"""Step sizes whose coefficients each equation keeps (a few MB each at 256^2)."""

_CHUNK = 1 << 14
"""Distinct values of ``h L`` per batch of the contour average (bounds its ``points``-fold memory)."""


def _phi_coefficients(hl: torch.Tensor, points: int = 64) -> tuple[torch.Tensor, ...]:
    """ETDRK4's scalar functions of ``z = h L``, without cancellation.

    Each function ``g(z)`` is averaged over a circle of radius 1 around
    ``z`` (Cauchy's integral formula), which avoids the catastrophic
    cancellation of the closed forms near ``z = 0`` (Kassam & Trefethen
    2005, SIAM J. Sci. Comput. 26:1214, sec. 3). For real ``z`` the upper
    half circle suffices (the real part of its mean is the full mean, by
    conjugate symmetry); a complex ``z`` (dispersion, e.g. KdV's ``i k^3``)
    needs the whole circle.

    The functions are evaluated once per distinct value of ``z`` and in
    batches of :data:`_CHUNK` values: an isotropic symbol on a 3-D grid takes
    a few hundred distinct values of ``|k|^2`` among ``n^3 / 2`` modes, and
    the ``points``-fold temporaries stay bounded whatever the grid. Each
    value is computed as it would be alone, so the result is unchanged.
    """
    complex_symbol = hl.is_complex()
    flat = hl.reshape(-1)
    if complex_symbol:
        pairs, inverse = torch.unique(torch.stack([flat.real, flat.imag], dim=-1), dim=0, return_inverse=True)
        values = torch.complex(pairs[:, 0].contiguous(), pairs[:, 1].contiguous())
    else:
        values, inverse = torch.unique(flat, return_inverse=True)
    arc = 2 * math.pi if complex_symbol else math.pi
    roots = torch.exp(1j * arc * (torch.arange(1, points + 1, dtype=torch.float64) - 0.5) / points).to(hl.device)
    parts = [_contour_means(chunk, roots) for chunk in values.split(_CHUNK)]
    out = tuple(torch.cat(column)[inverse].reshape(hl.shape) for column in zip(*parts, strict=True))
    if not complex_symbol:
        out = tuple(o.real for o in out)
    return out


def _contour_means(values: torch.Tensor, roots: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(q, f1, f2, f3)`` at each of ``values [m]``: means over the circle ``values + roots``."""
    z = values.to(torch.complex128).unsqueeze(-1) + roots
    ez, ez2 = torch.exp(z), torch.exp(z / 2)
    q = ((ez2 - 1) / z).mean(-1)
    f1 = ((-4 - z + ez * (4 - 3 * z + z * z)) / z**3).mean(-1)
    f2 = ((2 + z + ez * (z - 2)) / z**3).mean(-1)
    f3 = ((-4 - 3 * z - z * z + ez * (4 - z)) / z**3).mean(-1)
    return q, f1, f2, f3


class ETDRK4:
    """Fourth-order exponential Runge-Kutta method of Cox & Matthews (2002).

    The linear part is integrated exactly, so stiff diffusion costs nothing
    in stability; the step is limited only by the explicit nonlinearity.
    Cox & Matthews, J. Comput. Phys. 176:430, eqs. (26)-(29).

    The coefficients of a step size are built once per equation and reused
    (the most recent :data:`_MEMO` step sizes are kept): a trajectory cuts
    every output interval into steps of ``span / n`` for a few integers
    ``n``, so the same step sizes recur interval after interval, and a
    batch with per-sample steps needs one set per distinct step, gathered
    per sample. The arithmetic is that of building them afresh, value for
    value, so results do not change.
    """

    name = "etdrk4"
    order = 4

    def __init__(self) -> None:
        self._memo: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _coefficients(self, equation, h: float, like: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """``(e, e2, q, f1, f2, f3)`` for the step ``h``; ``like`` is the step tensor it came from, if any."""
        lin = equation.linear
        key = (h, None if like is None else (like.dtype, like.ndim))
        try:
            memo = self._memo.setdefault(equation, OrderedDict())
        except TypeError:  # an equation that cannot be weakly referenced or hashed: no reuse
            memo = OrderedDict()
        if key in memo:
            memo.move_to_end(key)
            return memo[key]
        # A step tensor multiplies as a tensor (its dtype takes part in promotion), a float as a scalar.
        step = h if like is None else like.new_full((1,) * like.ndim, h)
        hl = step * lin
        e, e2 = torch.exp(hl), torch.exp(hl / 2)
        coefficients = (e, e2, *(step * f for f in _phi_coefficients(hl)))
        memo[key] = coefficients
        if len(memo) > _MEMO:
            memo.popitem(last=False)
        return coefficients

    def stepper(self, equation, dt):
        """A step of size ``dt`` (a float, or a tensor ``[batch, 1, ...]`` broadcasting against the state)."""
        dt = _collapse(dt)
        if isinstance(dt, torch.Tensor):
            values, inverse = torch.unique(dt.reshape(-1), return_inverse=True)
            per_step = [self._coefficients(equation, float(v), dt) for v in values.tolist()]
            e, e2, q, f1, f2, f3 = (torch.cat(column)[inverse] for column in zip(*per_step, strict=True))
        else:
            e, e2, q, f1, f2, f3 = self._coefficients(equation, dt, None)
        nonlinear = equation.nonlinear

        def step(u: torch.Tensor, t: float) -> torch.Tensor:
            nu = nonlinear(u, t)
            a = e2 * u + q * nu
            na = nonlinear(a, t + dt / 2)
            b = e2 * u + q * na
            nb = nonlinear(b, t + dt / 2)
            c = e2 * a + q * (2 * nb - nu)
            nc = nonlinear(c, t + dt)
            return e * u + f1 * nu + 2 * f2 * (na + nb) + f3 * nc

        return step


def _collapse(dt):
    """A tensor of equal step sizes becomes one float (coefficients then broadcast over the batch)."""
    if isinstance(dt, torch.Tensor) and dt.numel() and bool((dt == dt.flatten()[0]).all()):
        return float(dt.flatten()[0])
    return dt
