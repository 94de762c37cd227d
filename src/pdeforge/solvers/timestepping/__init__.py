"""Time integrators for semilinear equations, declared as data where they are tableaux."""

from pdeforge.solvers.timestepping._etd import ETDRK4
from pdeforge.solvers.timestepping._imex import ARS222, ARS443, IMEX_EULER, IMEXRungeKutta, IMEXTableau
from pdeforge.solvers.timestepping._integrate import integrate

INTEGRATORS = {
    "etdrk4": ETDRK4(),
    "ars443": IMEXRungeKutta(ARS443),
    "ars222": IMEXRungeKutta(ARS222),
    "imex-euler": IMEXRungeKutta(IMEX_EULER),
}
"""Every time integrator by its config name; each declares ``order``."""

__all__ = ["ARS222", "ARS443", "ETDRK4", "IMEX_EULER", "INTEGRATORS", "IMEXRungeKutta", "IMEXTableau", "integrate"]
