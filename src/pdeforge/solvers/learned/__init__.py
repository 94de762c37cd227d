"""Learned and learning-tuned linear solvers.

- SOR with its relaxation parameter chosen online by bandits
  (Khodak et al., "Learning to Relax", ICLR 2024).
"""

from pdeforge.solvers.learned._contextual import BinnedTsallisINF, ChebCB, chebyshev_features
from pdeforge.solvers.learned._online import OnlineLearner, play, sor_convergence_factor, sor_cost_table
from pdeforge.solvers.learned._relax_instances import ShiftedLaplacianSequence, shifted_laplacian, truncated_normal
from pdeforge.solvers.learned._sor import jacobi_spectral_radius, optimal_sor_omega, sor, sor_iterations
from pdeforge.solvers.learned._tsallis_inf import RunningMeanScale, TsallisINF, tsallis_weights

__all__ = [
    "BinnedTsallisINF",
    "ChebCB",
    "OnlineLearner",
    "RunningMeanScale",
    "ShiftedLaplacianSequence",
    "TsallisINF",
    "chebyshev_features",
    "jacobi_spectral_radius",
    "optimal_sor_omega",
    "play",
    "shifted_laplacian",
    "sor",
    "sor_convergence_factor",
    "sor_cost_table",
    "sor_iterations",
    "truncated_normal",
    "tsallis_weights",
]
