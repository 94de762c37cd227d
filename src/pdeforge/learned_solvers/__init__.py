"""Learned linear solvers: research methods that learn solver parameters or search directions.

- SOR with its relaxation parameter chosen online by bandits: Tsallis-INF
  (Zimmert & Seldin, JMLR 2021), a binned Tsallis-INF and the contextual
  ChebCB (Khodak et al., "Learning to Relax", ICLR 2024), with the paper's
  shifted-Laplacian instance sequences.
- The deep conjugate direction method: a CNN proposes search directions
  that are made A-conjugate and line-searched (Kaneda et al., ICML 2023),
  with its unsupervised loss and Ritz-vector training data.

Data generation does not use these methods: ``pdeforge.generate``, ``train``
and ``evaluate`` import the small, stable :mod:`pdeforge.solvers` only (a
test in ``tests/test_layers.py`` checks that nothing outside this package
imports it). The package sits beside :mod:`pdeforge.solvers` in purpose but
above :mod:`pdeforge.training` in the layers (level 5.5, between training
and evaluation): DCDM's direction network is trained by training's loop
(:func:`pdeforge.training.run_epochs`) and stored in its checkpoint format,
so no second optimisation loop or weight format exists; it imports nothing
from evaluation or the CLI, and they need nothing from it.
"""

from pdeforge.learned_solvers._contextual import BinnedTsallisINF, ChebCB, chebyshev_features
from pdeforge.learned_solvers._dcdm import a_orthogonalize, dcdm
from pdeforge.learned_solvers._dcdm_training import dcdm_loss, lanczos_ritz, ritz_rhs, train_direction_net
from pdeforge.learned_solvers._direction_net import (
    DirectionCNN,
    learned_direction,
    load_direction_net,
)
from pdeforge.learned_solvers._obstacles import obstacle_poisson, random_obstacles
from pdeforge.learned_solvers._online import OnlineLearner, play, sor_convergence_factor, sor_cost_table
from pdeforge.learned_solvers._relax_instances import ShiftedLaplacianSequence, shifted_laplacian, truncated_normal
from pdeforge.learned_solvers._sor import jacobi_spectral_radius, optimal_sor_omega, sor, sor_iterations
from pdeforge.learned_solvers._tsallis_inf import RunningMeanScale, TsallisINF, tsallis_weights

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
    "shifted_laplacian",
    "sor",
    "sor_convergence_factor",
    "sor_cost_table",
    "sor_iterations",
    "train_direction_net",
    "truncated_normal",
    "tsallis_weights",
]
