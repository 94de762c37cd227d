"""SOR and the bandits that tune its omega (Khodak et al., "Learning to Relax", ICLR 2024).

The bandit tests check the mathematics of each learner against an independent computation:
Tsallis-INF's play distribution is the FTRL/OMD solution w_i = 4 / (eta (L_i - x))^2 with its
normalising constant (Zimmert & Seldin, JMLR 2021, Alg. 2) and its pseudo-regret obeys their
Theorem 1; ChebCB's arm models are box-constrained Chebyshev least-squares fits and its play
distribution is inverse-gap weighting (Khodak et al. 2024, sec. 5).
"""

import math

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.sparse.linalg as spla
import torch
from numpy.polynomial import chebyshev as npcheb
from scipy.optimize import brentq, lsq_linear

from pdeforge.errors import PdeforgeError
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
from pdeforge.problems import StencilOperator

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
        rel1 = np.linalg.norm(b[i].numpy().ravel() - a @ x1) / np.linalg.norm(b[i])
        assert abs(float(res.history[1, i]) - rel1) < 1e-13


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


def _tsallis_root(losses: np.ndarray, eta: float) -> np.ndarray:
    """The 1/2-Tsallis-INF weights by Brent's bracketing root finder, independent of the library's Newton steps.

    Zimmert & Seldin (JMLR 2021, sec. 3 and Alg. 2): w_i = 4 / (eta (L_i - x))^2 with x < min L the
    root of sum_i w_i(x) = 1. The sum increases in x; at x = min L - 2/eta its largest term is 1
    and at x = min L - 2 sqrt(K)/eta every term is <= 1/K, so the root lies between the two
    (the bracket is widened a little, as equal losses put the root exactly on its left end).
    """
    lo, hi = losses.min() - 2.02 * math.sqrt(len(losses)) / eta, losses.min() - 2 / eta
    x = brentq(lambda x: np.sum(4 / (eta * (losses - x)) ** 2) - 1, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=500)
    return 4 / (eta * (losses - x)) ** 2


@pytest.mark.parametrize("seed", range(5))
def test_tsallis_weights_solve_the_normalisation_equation_and_minimise_the_ftrl_objective(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 30))
    losses = rng.exponential(size=k) * rng.uniform(0.1, 50)
    eta = rng.uniform(0.01, 3)
    w = tsallis_weights(losses, eta)
    reference = _tsallis_root(losses, eta)
    assert abs(reference.sum() - 1) < 1e-12
    np.testing.assert_allclose(w, reference, rtol=1e-9, atol=0)
    # w minimises the FTRL objective <w, L> - (4/eta) sum sqrt(w) over the simplex (it is strictly convex).
    def objective(p):
        return p @ losses - 4 / eta * np.sqrt(p).sum(-1)

    others = rng.dirichlet(np.full(k, 0.5), size=2000)
    near = np.abs(w + 1e-3 * rng.standard_normal((2000, k)))
    others = np.concatenate([others, near / near.sum(1, keepdims=True)])
    assert np.all(objective(others) >= objective(w) - 1e-12 * (1 + np.abs(losses).max()))


@pytest.mark.parametrize("seed", range(3))
def test_tsallis_weights_see_only_eta_times_loss_differences(seed):
    rng = np.random.default_rng(seed)
    losses, eta = rng.exponential(size=12) * 5, rng.uniform(0.1, 2)
    w = tsallis_weights(losses, eta)
    # Adding a constant to every cumulative loss moves x by the same constant: the distribution is unchanged.
    for shift in (-37.5, 1e-3, 1e3):
        np.testing.assert_allclose(tsallis_weights(losses + shift, eta), w, rtol=1e-9, atol=0)
    # w depends on eta (L - x) only: scaling the losses by 1/s equals the learning rate eta/s (RunningMeanScale).
    for s in (0.01, 7.0):
        np.testing.assert_allclose(tsallis_weights(losses / s, eta), tsallis_weights(losses, eta / s), rtol=1e-9)


@pytest.mark.parametrize("k", [2, 5, 20])
def test_the_leading_arm_gets_the_largest_weight_and_it_tends_to_one(k):
    eta = 0.7
    shares = []
    for gap in (0.1, 1.0, 10.0, 100.0, 1000.0):
        losses = np.full(k, gap)
        losses[k // 2] = 0.0
        w = tsallis_weights(losses, eta)
        assert int(np.argmax(w)) == k // 2 and np.all(np.delete(w, k // 2) < w[k // 2])
        # w_lead = 4 / (eta x)^2 gives eta x = -2 / sqrt(w_lead) <= -2, so each of the k - 1 others has
        # w_i = 4 / (eta gap + 2 / sqrt(w_lead))^2 < 4 / (eta gap + 2)^2.
        lead = w[k // 2]
        np.testing.assert_allclose(1 - lead, (k - 1) * 4 / (eta * gap + 2 / math.sqrt(lead)) ** 2, rtol=1e-9)
        assert 1 - lead < 4 * (k - 1) / (eta * gap + 2) ** 2
        shares.append(lead)
    assert np.all(np.diff(shares) > 0) and 1 - shares[-1] < 4 * (k - 1) / 700**2


def test_tsallis_inf_plays_ftrl_on_importance_weighted_estimates():
    """Each round's distribution is tsallis_weights(L_hat, 2 / sqrt(t)), with L_hat kept here independently."""
    k, rng = 6, np.random.default_rng(3)
    means = rng.uniform(0.2, 0.8, size=k)
    for scale in (None, RunningMeanScale(0.1)):
        bandit = TsallisINF(k, rng=np.random.default_rng(4), scale=scale)
        l_hat, shifted_total = np.zeros(k), 0.0
        for t in range(1, 200):
            # With a RunningMeanScale the learner is FTRL on the raw shifted costs at rate eta_t / s_t,
            # s_t the running mean of the shifted costs so far (1 before any positive cost).
            s_t = shifted_total / (t - 1) if scale is not None and shifted_total > 0 else 1.0
            w = bandit.probabilities()
            np.testing.assert_allclose(w, _tsallis_root(l_hat, 2 / math.sqrt(t) / s_t), rtol=1e-9)
            arm = bandit.select()
            loss = float(rng.random() < means[arm])
            bandit.update(loss + 0.1 if scale is not None else loss)
            l_hat[arm] += loss / w[arm]  # E[l_i 1{I_t = i} / w_i] = l_i: an unbiased estimate of every arm's loss
            shifted_total += loss
        np.testing.assert_allclose(bandit.estimates, l_hat, rtol=1e-12)


@pytest.mark.slow
def test_tsallis_inf_pseudo_regret_is_order_sqrt_kt_on_a_stochastic_instance():
    """Zimmert & Seldin (2021), Thm. 1: pseudo-regret <= 4 sqrt(K T) + 1 for losses in [0, 1] at eta_t = 2/sqrt(t).

    Bernoulli losses, best arm 0.3, the others 0.5. The expected regret of round t given the past is
    <w_t, mu> - min mu; its mean over independent runs estimates the pseudo-regret at every prefix T
    (the learner does not know the horizon). Its log-log slope in T must be at most about 1/2.
    """
    mu = np.array([0.5, 0.3, 0.5, 0.5])
    k, horizon, runs = len(mu), 2048, 8
    per_round = np.zeros((runs, horizon))
    for r in range(runs):
        draws = np.random.default_rng([11, r])
        bandit = TsallisINF(k, rng=np.random.default_rng([12, r]))
        for t in range(horizon):
            per_round[r, t] = bandit.probabilities() @ mu - mu.min()
            arm = bandit.select()
            bandit.update(float(draws.random() < mu[arm]))
    regret = per_round.cumsum(1).mean(0)
    horizons = 2 ** np.arange(6, 12)
    values = regret[horizons - 1]
    assert np.all(values <= 4 * np.sqrt(k * horizons) + 1), values
    slope = np.polyfit(np.log(horizons[2:]), np.log(values[2:]), 1)[0]
    assert slope <= 0.6, (slope, values)
    assert values[-1] < 0.06 * horizons[-1]  # uniform play has linear regret 0.75 * 0.2 T = 0.15 T


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


def test_chebcb_is_inverse_gap_weighting_of_box_constrained_chebyshev_least_squares(seeded_sequence):
    """ChebCB (Khodak et al. 2024, sec. 5; SquareCB of Foster & Rakhlin 2020), recomputed from its observations.

    Per arm the model is the least-squares Chebyshev fit of the scaled costs (cost - 1) / s on the
    rounds the arm was played, inside the box |theta_0| <= 1/N, |theta_j| <= 2 (b - a) Lip / (s j);
    the play distribution is inverse-gap weighting with rate eta_t = 2 t sqrt(K t / (R_t + 2 alpha^2 t)).
    """
    _, c, costs = seeded_sequence
    k, m, (a, b) = costs.shape[1], 6, (-0.15, 0.65)
    learner = ChebCB(k, (a, b), rng=np.random.default_rng(0), degree=m)
    arms, predicted = [], []
    for t in range(len(costs)):
        arm = learner.select(float(c[t]))
        x = np.clip(2 * (c[t] - a) / (b - a) - 1, -1, 1)
        predicted.append(float(npcheb.chebval(x, learner.theta[arm])))
        arms.append(arm)
        learner.update(float(costs[t, arm]))
    arms, predicted = np.array(arms), np.array(predicted)
    y = costs[np.arange(len(costs)), arms] - 1.0
    width, lip = b - a, np.ptp(y) / (b - a)
    n_norm = 2 + 4 * width * lip / y.max() * (1 + math.log(m))
    scale = y.max() * n_norm
    assert abs(learner.scale - scale) <= 1e-12 * scale
    bound = np.maximum(np.r_[1 / n_norm, 2 * width * lip / scale / np.arange(1, m)], 1e-12)
    fitted = 0
    for arm in range(k):
        mine = arms == arm
        x = np.clip(2 * (c[mine] - a) / width - 1, -1, 1)
        if len(np.unique(x)) < m:  # too few distinct contexts: the fit is not unique
            continue
        design, target = npcheb.chebvander(x, m - 1), y[mine] / scale
        reference = lsq_linear(design, target, bounds=(-bound, bound), method="bvls", tol=1e-14).x
        theta = learner.theta[arm]
        assert np.all(np.abs(theta) <= bound * (1 + 1e-9))

        def misfit(coef, design=design, target=target):
            return np.sum((design @ coef - target) ** 2)

        # Both minimise a convex quadratic on the box; with theta feasible and theta_ref optimal,
        # misfit(theta) - misfit(theta_ref) >= |Phi (theta - theta_ref)|^2, so equal misfits mean equal fits.
        # (The coefficients themselves are ill-determined where the contexts cluster, as Beta(0.5, 1.5) makes
        # them, and ChebCB solves the normal equations, whose condition number is cond(Phi)^2, up to 2e6^2 here.)
        assert misfit(theta) <= misfit(reference) + 1e-7 * np.sum(target**2)
        assert np.linalg.norm(design @ (theta - reference)) <= 1e-4 * np.linalg.norm(target)
        fitted += 1
    assert fitted >= 5, fitted
    # The learning rate from the squared prediction errors (predictions made before each update, rescaled).
    alpha = (math.pi + 2 / math.pi * math.log(2 * m + 1)) / (2 * scale * (m + 1)) * width * lip
    t = len(costs)
    error = np.sum((predicted - y / scale) ** 2)  # R_t as the paper's schedule uses it: past predictions, current s
    eta = 2 * t * math.sqrt(k * t / (error + 2 * alpha**2 * t))
    assert abs(learner.eta - eta) <= 1e-9 * eta
    # Inverse-gap weighting of the predictions at a few contexts.
    for context in (a, 0.0, 0.3, b):
        pred = npcheb.chebval(np.clip(2 * (context - a) / width - 1, -1, 1), learner.theta.T)
        best = int(np.argmin(pred))
        p = 1 / (k + learner.eta * (pred - pred[best]))
        p[best] = 1 - np.delete(p, best).sum()
        np.testing.assert_allclose(learner.probabilities(context), p, rtol=1e-12, atol=1e-15)
        assert p[best] == p.max() and abs(p.sum() - 1) < 1e-12


def test_binned_tsallis_inf_runs_one_tsallis_inf_per_cell(seeded_sequence):
    _, c, costs = seeded_sequence
    a, b, bins = -0.15, 0.65, 5
    learner = BinnedTsallisINF(costs.shape[1], (a, b), rng=np.random.default_rng(0), bins=bins)
    arms, _ = play(learner, costs, c)
    # Each context goes to the cell of the nearest centre, i.e. the equal-width cell that holds it.
    cell = np.clip(np.floor((c - a) / (b - a) * bins).astype(int), 0, bins - 1)
    for j, cell_learner in enumerate(learner.learners):
        mine = cell == j
        assert cell_learner.t - 1 == mine.sum()
        # Its own running mean of the shifted costs (1 for a cell no context reached: the shifts stop at 0.45).
        mean = (costs[mine, arms[mine]] - 1.0).mean() if mine.any() else 1.0
        assert abs(cell_learner.scale.value - mean) < 1e-12 * mean
        eta = 2 / math.sqrt(cell_learner.t) / mean
        np.testing.assert_allclose(cell_learner.probabilities(), _tsallis_root(cell_learner.estimates, eta), rtol=1e-9)
    assert sum(cell_learner.t - 1 for cell_learner in learner.learners) == len(costs)
