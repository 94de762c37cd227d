"""Learned and learning-tuned linear solvers.

- SOR with its relaxation parameter chosen online by bandits
  (Khodak et al., "Learning to Relax", ICLR 2024).
- The deep conjugate direction method: a CNN proposes search directions
  that are made A-conjugate and line-searched (Kaneda et al., ICML 2023).
"""

from pdeforge.solvers.learned._contextual import BinnedTsallisINF, ChebCB, chebyshev_features
from pdeforge.solvers.learned._dcdm import a_orthogonalize, dcdm
from pdeforge.solvers.learned._dcdm_training import dcdm_loss, lanczos_ritz, ritz_rhs, train_direction_net
from pdeforge.solvers.learned._direction_net import (
    DirectionCNN,
    learned_direction,
    load_direction_net,
    save_direction_net,
)
from pdeforge.solvers.learned._obstacles import obstacle_poisson, random_obstacles
from pdeforge.solvers.learned._online import OnlineLearner, play, sor_convergence_factor, sor_cost_table
from pdeforge.solvers.learned._relax_instances import ShiftedLaplacianSequence, shifted_laplacian, truncated_normal
from pdeforge.solvers.learned._sor import jacobi_spectral_radius, optimal_sor_omega, sor, sor_iterations
from pdeforge.solvers.learned._tsallis_inf import RunningMeanScale, TsallisINF, tsallis_weights

__all__ = [
    "BinnedTsallisINF",
    "ChebCB",
    "DirectionCNN",
    "OnlineLearner",
    "RunningMeanScale",
    "ShiftedLaplacianSequence",
    "TsallisINF",
    "a_orthogonalize",
    "chebyshev_features",
    "dcdm",
    "dcdm_loss",
    "jacobi_spectral_radius",
    "lanczos_ritz",
    "learned_direction",
    "load_direction_net",
    "obstacle_poisson",
    "optimal_sor_omega",
    "play",
    "random_obstacles",
    "ritz_rhs",
    "save_direction_net",
    "shifted_laplacian",
    "sor",
    "sor_convergence_factor",
    "sor_cost_table",
    "sor_iterations",
    "train_direction_net",
    "truncated_normal",
    "tsallis_weights",
]
