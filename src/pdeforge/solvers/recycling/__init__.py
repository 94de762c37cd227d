"""Sorting Krylov Recycling (SKR): many related systems, solved in a good order with GCRO-DR."""

from pdeforge.solvers.recycling._order import binned_order, greedy_order, inverse_permutation, path_length
from pdeforge.solvers.recycling._sequence import BINNED_ABOVE, SequenceResult, solve_sequence

__all__ = [
    "BINNED_ABOVE",
    "SequenceResult",
    "binned_order",
    "greedy_order",
    "inverse_permutation",
    "path_length",
    "solve_sequence",
]
