"""pdeforge: learn PDE solution operators from data made by verified solvers."""

from pdeforge._threads import set_wait_policy

# OpenMP reads its wait policy once, when torch loads: set it before any pdeforge module imports torch,
# so that waiting threads sleep instead of spinning against a busy machine (see pdeforge._threads).
set_wait_policy()

__version__ = "0.1.0"

__all__ = ["__version__"]
