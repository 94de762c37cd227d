"""SOR and the bandits that tune its omega (Khodak et al., ICLR 2024)."""

import math

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse.linalg as spla
import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator
from pdeforge.learned_solvers import (
    BinnedTsallisINF,
    ChebCB,
    RunningMeanScale,
    ShiftedLaplacianSequence,
    TsallisINF,
    chebyshev_features,
    jacobi_spectral_radius,
    optimal_sor_omega,
    play,
    shifted_laplacian,
    sor,
    sor_convergence_factor,
    sor_cost_table,
    sor_iterations,
    tsallis_weights,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_operator(batch: int, shape=(7, 5), seed: int = 0) -> StencilOperator:
    """A variable-coefficient SPD five-point operator on a rectangle (rows != columns on purpose)."""
    g = torch.Generator().manual_seed(seed)
    n1, n2 = shape
    faces = [0.5 + torch.rand(batch, n1 + 1, n2, generator=g, dtype=F64),
             0.5 + torch.rand(batch, n1, n2 + 1, generator=g, dtype=F64)]
    return StencilOperator(faces, (0.3, 0.2), shift=0.1 * torch.rand(batch, n1, n2, generator=g, dtype=F64))


@pytest.mark.parametrize("omega", [1.0, 1.3, 1.8])
def test_one_sor_sweep_is_the_triangular_solve_with_d_over_omega_plus_l(omega):
    op = _random_operator(3)
    b = torch.randn(3, *op.shape, dtype=F64)
    x0 = torch.randn(3, *op.shape, dtype=F64)
    res = sor(op, b, omega, x0, rtol=1e-30, maxiter=1)
    for i in range(3):
        a = op.to_scipy(i).toarray()
        m = np.tril(a, -1) + np.diag(np.diag(a)) / omega  # omega = 1: Gauss-Seidel's lower triangle
        r = b[i].numpy().ravel() - a @ x0[i].numpy().ravel()
        x1 = x0[i].numpy().ravel() + sla.solve_triangular(m, r, lower=True)
        np.testing.assert_allclose(res.x[i].numpy().ravel(), x1, rtol=0, atol=1e-13)
        assert abs(float(res.history[1, i]) - np.linalg.norm(b[i].numpy().ravel() - a @ x1) / np.linalg.norm(b[i])) < 1e-13


def test_gauss_seidel_converges_to_the_direct_solution():
    op = _random_operator(2)
    b = torch.randn(2, *op.shape, dtype=F64)
    res = sor(op, b, 1.0, rtol=1e-12)
    assert bool(res.converged.all())
    for i in range(2):
        x = spla.spsolve(op.to_scipy(i).tocsc(), b[i].numpy().ravel())
        np.testing.assert_allclose(res.x[i].numpy().ravel(), x, rtol=0, atol=1e-9 * np.abs(x).max())
    # The residual tracked by the recurrence is the true one.
    np.testing.assert_allclose(res.residual.numpy(), op.residual_norm(res.x, b).numpy(), rtol=0, atol=1e-15)
    # Counting without history gives the same sweeps.
    assert torch.equal(sor_iterations(op, b, 1.0, rtol=1e-12), res.iterations)


@pytest.mark.parametrize("n", [8, 16])
def test_young_omega_beats_gauss_seidel_on_the_laplacian(n):
    h = 1 / (n + 1)
    omega_star = 2 / (1 + math.sin(math.pi * h))
    omegas = torch.tensor([1.0, 1.2, 1.5, omega_star, omega_star + 0.05], dtype=F64)
    op = shifted_laplacian(torch.zeros(len(omegas), dtype=F64), n)
    assert abs(float(optimal_sor_omega(op)[0]) - omega_star) < 1e-12
    counts = sor_iterations(op, torch.ones(len(omegas), n, n, dtype=F64), omegas).tolist()
    gs, best = counts[0], counts[3]
    # Gauss-Seidel needs O(h^-2) sweeps, optimal SOR O(h^-1).
    assert best < gs / 4, counts
    assert min(counts) >= best - 2, counts


@pytest.mark.parametrize("c", [-0.15, 0.0, 0.45])
def test_jacobi_radius_of_the_shifted_laplacian_is_analytic(c):
    n = 10
    beta = jacobi_spectral_radius(shifted_laplacian(torch.tensor([c], dtype=F64), n))
    assert abs(float(beta[0]) - 4 * math.cos(math.pi / (n + 1)) / (4 + c)) < 1e-12


@pytest.mark.parametrize("omega", [1.0, 1.3])
def test_asymptotic_residual_reduction_matches_youngs_convergence_factor(omega):
    n = 12
    op = shifted_laplacian(torch.zeros(1, dtype=F64), n)
    b = torch.randn(1, n, n, dtype=F64)
    res = sor(op, b, omega, rtol=1e-14, maxiter=250)
    h = res.history[:, 0]
    observed = float((h[-1] / h[-101]) ** (1 / 100))
    expected = float(sor_convergence_factor(torch.tensor(omega), jacobi_spectral_radius(op))[0])
    assert abs(observed - expected) < 2e-3, (observed, expected)


def test_sor_rejects_bad_input():
    op = shifted_laplacian(torch.zeros(2, dtype=F64), 4)
    with pytest.raises(PdeforgeError):
        sor(op, torch.ones(2, 4, 4, dtype=F64), 2.0)
    with pytest.raises(PdeforgeError):
        sor(op, torch.ones(3, 4, 4, dtype=F64), 1.0)


def test_instance_distribution_matches_the_paper():
    seq = ShiftedLaplacianSequence()
    c, b = seq.sample(np.random.default_rng(0), 20000)
    assert float(c.min()) >= -0.15 and float(c.max()) <= 0.45
    # Beta(0.5, 1.5) has mean 1/4 and variance ab / ((a + b)^2 (a + b + 1)) = 1/16.
    assert abs(float(c.mean()) - (-0.15 + 0.6 * 0.25)) < 0.005
    assert abs(float(c.var()) - 0.36 / 16) < 0.001
    assert float(torch.linalg.vector_norm(b.flatten(1), dim=1).max()) <= 10.0


@pytest.mark.parametrize("seed", range(5))
def test_tsallis_weights_are_the_ftrl_solution(seed):
    rng = np.random.default_rng(seed)
    losses = rng.exponential(size=20) * rng.uniform(0.1, 50)
    eta = rng.uniform(0.01, 3)
    w = tsallis_weights(losses, eta)
    assert np.all(w > 0) and abs(w.sum() - 1) < 1e-12
    # Stationarity of <w, L> - (4/eta) sum sqrt(w) on the simplex: 2/(eta sqrt(w_i)) - L_i is the same for all i.
    kkt = 2 / (eta * np.sqrt(w)) - losses
    assert np.ptp(kkt) < 1e-8 * (1 + np.abs(losses).max())
    assert np.all(np.diff(w[np.argsort(losses)]) <= 1e-15)  # lower loss, higher probability


def test_tsallis_inf_probabilities_stay_a_distribution():
    bandit = TsallisINF(20, rng=np.random.default_rng(0), scale=RunningMeanScale(1.0))
    costs = np.random.default_rng(1).integers(30, 3000, size=(300, 20))
    for t in range(300):
        w = bandit.probabilities()
        assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-10
        bandit.update(costs[t, bandit.select()])


def test_chebyshev_features_are_cosines():
    theta = np.linspace(0, math.pi, 7)
    np.testing.assert_allclose(chebyshev_features(np.cos(theta), 6), np.cos(np.outer(theta, np.arange(6))), atol=1e-13)


@pytest.fixture(scope="module")
def seeded_sequence():
    """300 instances of the paper's distribution on a 6 x 6 grid, with every omega's SOR cost."""
    seq = ShiftedLaplacianSequence(n=6)
    c, b = seq.sample(np.random.default_rng(2024), 300)
    omegas = torch.linspace(1.0, 1.95, 20, dtype=F64)
    return seq, c.numpy(), sor_cost_table(seq.operator, c, b, omegas).numpy()


def test_cost_table_matches_direct_sor_runs(seeded_sequence):
    seq, c, costs = seeded_sequence
    omegas = torch.linspace(1.0, 1.95, 20, dtype=F64)
    _, b = seq.sample(np.random.default_rng(2024), 300)
    for t in (0, 157, 299):
        op = seq.operator(torch.tensor(c[[t] * 3]))
        got = sor_iterations(op, b[[t] * 3], omegas[[0, 9, 19]])
        assert got.tolist() == costs[t, [0, 9, 19]].tolist()


def test_tsallis_inf_beats_uniform_random_omega(seeded_sequence):
    _, c, costs = seeded_sequence
    uniform = costs.mean(1).sum()
    totals = [play(TsallisINF(20, rng=np.random.default_rng(s), scale=RunningMeanScale(1.0)), costs, c)[1].sum()
              for s in range(3)]
    assert max(totals) < 0.8 * uniform, (totals, uniform)


@pytest.mark.parametrize("make", [
    lambda s: ChebCB(20, (-0.15, 0.65), rng=np.random.default_rng(s)),
    lambda s: BinnedTsallisINF(20, (-0.15, 0.65), rng=np.random.default_rng(s)),
])
def test_contextual_regret_against_the_best_fixed_omega_shrinks(seeded_sequence, make):
    _, c, costs = seeded_sequence
    best_fixed = costs[:, np.argmin(costs.sum(0))]
    half = len(costs) // 2
    early, late = [], []
    for s in range(3):
        regret = play(make(s), costs, c)[1] - best_fixed
        early.append(regret[:half].mean())
        late.append(regret[half:].mean())
    assert np.mean(late) < np.mean(early), (early, late)
