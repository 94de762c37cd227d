"""Sorting Krylov Recycling: orders, and sequences of solves that stay within tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import Darcy, DarcyConfig
from pdeforge.problems.darcy import darcy_operator
from pdeforge.solvers import solve_sequence
from pdeforge.solvers.recycling import binned_order, greedy_order, inverse_permutation, path_length

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def darcy_family(resolution: int, count: int, seed: int = 0):
    """Log-normal Darcy coefficients (the SKR paper's setting) and an operator factory."""
    problem = Darcy(DarcyConfig(resolution=resolution, coefficient="lognormal", coeff_alpha=2.5, coeff_tau=7.0,
                                coeff_scale=130.0))
    a = problem.sample_inputs(seed, range(count))["coefficient"]
    return a, (lambda i: darcy_operator(a[i : i + 1], problem.grid))


# ------------------------------------------------------------------------- orders


def test_greedy_order_walks_a_line_in_sequence():
    points = torch.tensor([[0.0], [5.0], [1.0], [3.0], [2.0], [4.0]])
    assert greedy_order(points).tolist() == [0, 2, 4, 3, 5, 1]
    assert path_length(points, greedy_order(points)) == pytest.approx(5.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_tour_is_shorter_than_the_identity_order(seed):
    a, _ = darcy_family(18, 30, seed=seed)
    order = greedy_order(a)
    assert sorted(order.tolist()) == list(range(30))
    assert path_length(a, order) < path_length(a, torch.arange(30))


@pytest.mark.parametrize("make", [greedy_order, binned_order])
def test_orders_are_permutations_whose_inverse_round_trips(make):
    a, _ = darcy_family(18, 40, seed=3)
    order = make(a)
    inv = inverse_permutation(order)
    assert sorted(order.tolist()) == list(range(40))
    assert torch.equal(order[inv], torch.arange(40))
    assert torch.equal(inv[order], torch.arange(40))
    # Sorting then un-sorting returns every system's data to its own slot.
    assert torch.equal(a[order][inv], a)


def test_binned_order_keeps_cells_contiguous_and_steps_between_adjacent_cells():
    # Four clusters c1 cos(2 pi x) + c2 cos(2 pi y), c1 = +-2, c2 = +-1: two PCA components, four cells.
    rng = np.random.default_rng(4)
    x = np.arange(8) / 8
    modes = [np.cos(2 * np.pi * x)[:, None] * np.ones(8), np.ones(8)[:, None] * np.cos(2 * np.pi * x)]
    signs = [(s1, s2) for s1 in (1, -1) for s2 in (1, -1) for _ in range(5)]
    fields = torch.as_tensor(
        np.stack([2 * s1 * modes[0] + s2 * modes[1] + rng.normal(0, 0.01, (8, 8)) for s1, s2 in signs])
    )
    order = binned_order(fields, modes=4, components=2).tolist()
    visited = [signs[i] for i in order]
    runs = [visited[0]] + [v for u, v in zip(visited, visited[1:], strict=False) if u != v]
    assert len(runs) == 4  # each cluster is solved in one go
    # Gray-code order: consecutive cells differ in one component, never diagonally.
    assert all(sum(p != q for p, q in zip(u, v, strict=True)) == 1 for u, v in zip(runs, runs[1:], strict=False))


# ---------------------------------------------------------------------- sequences


def test_recycled_sequence_stays_within_tolerance_and_saves_iterations():
    a, make = darcy_family(26, 8, seed=5)
    b = torch.ones(1, 24, 24, dtype=torch.float64)
    rtol = 1e-8
    skr = solve_sequence(make, b, a, method="gcrodr", m=30, k=10, rtol=rtol, sort=True)
    plain = solve_sequence(make, b, a, method="gmres", m=30, rtol=rtol, sort=False)
    for i in range(8):
        op = make(i)
        # Independent check of the TRUE residual of every returned solution.
        assert float(op.residual_norm(skr.x[i : i + 1], b)[0]) <= rtol
        ref = spla.spsolve(op.to_scipy(0).tocsc(), b[0].numpy().ravel())
        np.testing.assert_allclose(skr.x[i].numpy().ravel(), ref, rtol=0, atol=1e-6 * np.abs(ref).max())
    assert bool(skr.converged.all()) and bool(plain.converged.all())
    assert bool((skr.residual <= rtol).all())
    # Later systems in the solve order profit from the recycled space.
    later = skr.order[2:]
    assert int(skr.iterations[later].sum()) < 0.8 * int(plain.iterations[later].sum())


def test_sequence_returns_results_in_the_original_order():
    a, make = darcy_family(18, 5, seed=6)
    rhs = torch.as_tensor(np.random.default_rng(7).standard_normal((5, 16, 16)))
    order = torch.tensor([3, 0, 4, 1, 2])
    result = solve_sequence([make(i) for i in range(5)], rhs, a, m=20, k=6, rtol=1e-9, sort=order)
    assert torch.equal(result.order, order)
    for i in range(5):
        op = make(i)
        true_residual = float(op.residual_norm(result.x[i : i + 1], rhs[i : i + 1])[0])
        assert true_residual <= 1e-9
        assert float(result.residual[i]) == pytest.approx(true_residual, rel=1e-6)


def test_first_system_of_a_sequence_is_solved_as_if_alone():
    a, make = darcy_family(18, 4, seed=8)
    b = torch.ones(1, 16, 16, dtype=torch.float64)
    unsorted = solve_sequence(make, b, a, m=20, k=6, rtol=1e-9, sort=False)
    from pdeforge.solvers import gcrodr

    alone = gcrodr(make(0), b, rtol=1e-9, m=20, k=6)
    assert int(unsorted.iterations[0]) == int(alone.iterations[0])
    assert torch.allclose(unsorted.x[0], alone.x[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize("sort, message", [(torch.tensor([0, 0, 1]), "permutation"), ("nearest", "unknown sort")])
def test_bad_sort_requests_are_user_errors(sort, message):
    a, make = darcy_family(10, 3)
    with pytest.raises(PdeforgeError, match=message):
        solve_sequence(make, torch.ones(1, 8, 8, dtype=torch.float64), a, sort=sort)
