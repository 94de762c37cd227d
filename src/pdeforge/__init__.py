"""pdeforge: learn PDE solution operators from data made by verified solvers."""

__version__ = "0.1.0"

__all__ = ["__version__"]
