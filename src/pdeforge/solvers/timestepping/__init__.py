"""Time integrators for semilinear equations, declared as data where they are tableaux."""

from functools import partial

from pdeforge.solvers._table import Method, MethodTable
from pdeforge.solvers.timestepping._etd import ETDRK4
from pdeforge.solvers.timestepping._imex import ARS222, ARS443, IMEX_EULER, IMEXRungeKutta, IMEXTableau
from pdeforge.solvers.timestepping._integrate import integrate

INTEGRATORS = MethodTable("time integrator", [
    Method("etdrk4", ETDRK4(), "exponential time differencing RK4 (Cox & Matthews 2002), order 4"),
    Method("ars443", IMEXRungeKutta(ARS443), "IMEX Runge-Kutta ARS(4,4,3), L-stable, order 3"),
    Method("ars222", IMEXRungeKutta(ARS222), "IMEX Runge-Kutta ARS(2,2,2), L-stable, order 2"),
    Method("imex-euler", IMEXRungeKutta(IMEX_EULER), "forward-backward Euler, order 1"),
], bind=lambda scheme: partial(integrate, scheme))
"""Every time integrator by its config name; each entry's ``run`` is a scheme declaring ``order``."""

__all__ = ["ARS222", "ARS443", "ETDRK4", "IMEX_EULER", "INTEGRATORS", "IMEXRungeKutta", "IMEXTableau", "integrate"]
