"""Implicit-explicit Runge-Kutta methods for ``u' = L u + N(u, t)`` with diagonal ``L``.

A method is its pair of Butcher tableaux (data); one engine runs them all.
``L`` is treated implicitly (each stage divides by ``1 - dt a_ii L``), ``N``
explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pdeforge.solvers.timestepping._etd import _collapse

__all__ = ["IMEXTableau", "IMEXRungeKutta", "IMEX_EULER", "ARS222", "ARS443"]


@dataclass(frozen=True)
class IMEXTableau:
    """An IMEX Runge-Kutta pair: explicit ``(a_hat, b_hat, c_hat)``, implicit ``(a, b)``."""

    name: str
    order: int
    explicit_a: tuple[tuple[float, ...], ...]
    explicit_b: tuple[float, ...]
    implicit_a: tuple[tuple[float, ...], ...]
    implicit_b: tuple[float, ...]

    @property
    def stages(self) -> int:
        """Number of stages ``s``."""
        return len(self.explicit_b)

    @property
    def explicit_c(self) -> tuple[float, ...]:
        """Stage times ``c_i = sum_j a_ij`` of the explicit tableau."""
        return tuple(sum(row) for row in self.explicit_a)


IMEX_EULER = IMEXTableau(
    "imex-euler", 1,
    explicit_a=((0.0, 0.0), (1.0, 0.0)), explicit_b=(1.0, 0.0),
    implicit_a=((0.0, 0.0), (0.0, 1.0)), implicit_b=(0.0, 1.0),
)
"""Forward-backward Euler (first order)."""

_G = 1.0 - 1.0 / math.sqrt(2.0)
_D = 1.0 - 1.0 / (2.0 * _G)
ARS222 = IMEXTableau(
    "ars222", 2,
    explicit_a=((0.0, 0.0, 0.0), (_G, 0.0, 0.0), (_D, 1.0 - _D, 0.0)), explicit_b=(_D, 1.0 - _D, 0.0),
    implicit_a=((0.0, 0.0, 0.0), (0.0, _G, 0.0), (0.0, 1.0 - _G, _G)), implicit_b=(0.0, 1.0 - _G, _G),
)
"""Ascher, Ruuth & Spiteri (1997), Appl. Numer. Math. 25:151, scheme (2,2,2): L-stable, second order."""

ARS443 = IMEXTableau(
    "ars443", 3,
    explicit_a=(
        (0.0, 0.0, 0.0, 0.0, 0.0),
        (1 / 2, 0.0, 0.0, 0.0, 0.0),
        (11 / 18, 1 / 18, 0.0, 0.0, 0.0),
        (5 / 6, -5 / 6, 1 / 2, 0.0, 0.0),
        (1 / 4, 7 / 4, 3 / 4, -7 / 4, 0.0),
    ),
    explicit_b=(1 / 4, 7 / 4, 3 / 4, -7 / 4, 0.0),
    implicit_a=(
        (0.0, 0.0, 0.0, 0.0, 0.0),
        (0.0, 1 / 2, 0.0, 0.0, 0.0),
        (0.0, 1 / 6, 1 / 2, 0.0, 0.0),
        (0.0, -1 / 2, 1 / 2, 1 / 2, 0.0),
        (0.0, 3 / 2, -3 / 2, 1 / 2, 1 / 2),
    ),
    implicit_b=(0.0, 3 / 2, -3 / 2, 1 / 2, 1 / 2),
)
"""Ascher, Ruuth & Spiteri (1997) scheme (4,4,3): L-stable, third order."""


class IMEXRungeKutta:
    """The engine: builds a stepper from an equation and a step size."""

    def __init__(self, tableau: IMEXTableau) -> None:
        self.tableau = tableau
        self.name = tableau.name
        self.order = tableau.order

    def stepper(self, equation, dt):
        """A step of size ``dt`` (a float, or a tensor broadcasting against the state)."""
        tab = self.tableau
        lin = equation.linear
        dt = _collapse(dt)
        # One division per distinct diagonal coefficient a_ii.
        solves = {a: 1.0 / (1.0 - dt * a * lin) for a in {row[i] for i, row in enumerate(tab.implicit_a)} if a}
        c = tab.explicit_c

        def step(u: torch.Tensor, t: float) -> torch.Tensor:
            stage_n, stage_l = [], []
            for i in range(tab.stages):
                rhs = u
                for j in range(i):
                    if tab.explicit_a[i][j]:
                        rhs = rhs + (dt * tab.explicit_a[i][j]) * stage_n[j]
                    if tab.implicit_a[i][j]:
                        rhs = rhs + (dt * tab.implicit_a[i][j]) * stage_l[j]
                aii = tab.implicit_a[i][i]
                ui = rhs * solves[aii] if aii else rhs
                stage_n.append(equation.nonlinear(ui, t + c[i] * dt))
                stage_l.append(lin * ui)
            out = u
            for i in range(tab.stages):
                if tab.explicit_b[i]:
                    out = out + (dt * tab.explicit_b[i]) * stage_n[i]
                if tab.implicit_b[i]:
                    out = out + (dt * tab.implicit_b[i]) * stage_l[i]
            return out

        return step
