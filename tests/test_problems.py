"""The generators' numerics against known answers."""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from pdeforge.grids import Grid
from pdeforge.problems import Burgers, BurgersConfig, Darcy, DarcyConfig, NavierStokes, NavierStokesConfig
from pdeforge.problems.burgers import BurgersEquation
from pdeforge.problems.darcy import darcy_operator
from pdeforge.problems.gallery import ColeHopfBurgers, TaylorGreen
from pdeforge.problems.navier_stokes import VorticityEquation
from pdeforge.solvers import INTEGRATORS, integrate, method_for
from pdeforge.spectral import dealias_mask

COLE_HOPF = ColeHopfBurgers(nu=0.05, a0=1.5, modes=(1.0, 0.3))


def _burgers_error(method, dt: float, t_final: float = 0.5) -> float:
    grid = Grid((64,))
    eq = BurgersEquation(grid, COLE_HOPF.nu)
    u0 = torch.fft.rfft(COLE_HOPF.solution(grid, 0.0))[None]
    u_hat, _ = integrate(method, eq, u0, [t_final], dt)
    u = torch.fft.irfft(u_hat[0, -1], n=64)
    return float((u - COLE_HOPF.solution(grid, t_final)).abs().max())


def test_burgers_matches_cole_hopf_at_small_step():
    assert _burgers_error(INTEGRATORS["etdrk4"].run, 1e-3) < 1e-11


def test_burgers_problem_solves_cole_hopf_through_its_own_pipeline():
    cfg = BurgersConfig(resolution=64, solver_resolution=128, nu=COLE_HOPF.nu, t_final=0.5, n_times=5, dt=1e-3)
    problem = Burgers(cfg)
    u0 = COLE_HOPF.solution(problem.fine_grid, 0.0)[None]
    solution = problem.solve({"u0": u0}, method_for(problem))
    assert bool(solution.converged.all())
    for i, t in enumerate(np.linspace(0.1, 0.5, 5)):
        exact = COLE_HOPF.solution(problem.grid, float(t))
        assert float((solution.outputs["u"][0, i] - exact).abs().max()) < 1e-9


@pytest.mark.parametrize("name, tol", [("etdrk4", 1e-13), ("ars443", 1e-4)])
def test_taylor_green_decays_exactly(name, tol):
    tg = TaylorGreen(nu=1e-2, k=2)
    grid = Grid((32, 32))
    eq = VorticityEquation(grid, tg.nu, torch.zeros(grid.shape, dtype=torch.float64))
    w0 = torch.fft.rfft2(tg.vorticity(grid, 0.0))[None]
    times = [0.5, 1.0, 2.0]
    w_hat, _ = integrate(INTEGRATORS[name].run, eq, w0, times, 0.05)
    for i, t in enumerate(times):
        w = torch.fft.irfft2(w_hat[0, i], s=grid.shape)
        error = float((w - tg.vorticity(grid, t)).abs().max())
        # ETDRK4 integrates the linear decay exactly; the third-order IMEX method to O(dt^3).
        assert error < tol, error


def test_navier_stokes_velocity_is_divergence_free_and_curls_to_the_vorticity():
    grid = Grid((32, 32))
    eq = VorticityEquation(grid, 1e-3, torch.zeros(grid.shape, dtype=torch.float64))
    w = NavierStokes(NavierStokesConfig(resolution=32)).sample_inputs(0, [0])["w0"]
    w_hat = torch.fft.rfft2(w) * dealias_mask(grid)  # drop the mean and the underivable Nyquist modes
    w_hat[0, 0] = 0
    w = torch.fft.irfft2(w_hat, s=grid.shape)
    u, v = eq.velocity(w_hat)
    kx, ky = grid.wavenumbers()
    div = torch.fft.irfft2(1j * kx * torch.fft.rfft2(u) + 1j * ky * torch.fft.rfft2(v), s=grid.shape)
    curl = torch.fft.irfft2(1j * kx * torch.fft.rfft2(v) - 1j * ky * torch.fft.rfft2(u), s=grid.shape)
    assert float(div.abs().max()) < 1e-12
    torch.testing.assert_close(curl, w, atol=1e-12, rtol=0)


def test_darcy_operator_is_symmetric_positive_definite_and_matches_its_matrix():
    problem = Darcy(DarcyConfig(resolution=12))
    a = problem.sample_inputs(0, range(2))["coefficient"]
    op = darcy_operator(a, problem.grid)
    for i in range(2):
        A = op.to_scipy(i).toarray()
        np.testing.assert_allclose(A, A.T, atol=0)
        assert np.linalg.eigvalsh(A).min() > 0
        v = torch.randn(1, *op.shape, dtype=torch.float64)
        batch = torch.zeros(2, *op.shape, dtype=torch.float64)
        batch[i] = v[0]
        np.testing.assert_allclose(op.matvec(batch)[i].numpy().ravel(), A @ v[0].numpy().ravel(), rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(op.diagonal()[i].numpy().ravel(), np.diag(A), rtol=1e-14)


def test_darcy_coefficients_follow_the_fno_prior():
    problem = Darcy(DarcyConfig(resolution=33))
    a = problem.sample_inputs(0, range(64))["coefficient"]
    values = set(torch.unique(a).tolist())
    assert values == {4.0, 12.0}  # the FNO data's code (its paper prints 3 for the low value)
    # The threshold of a zero-mean symmetric field splits the square about evenly on average.
    assert 0.4 < float((a == 12.0).double().mean()) < 0.6


def _fno_recipe_coefficients(s: int, count: int, rng: np.random.Generator, *, keep_mean: bool = False) -> np.ndarray:
    """The FNO data's Darcy coefficient, written here from its MATLAB recipe (``GRF.m`` + the threshold).

    KL coefficients ``s * tau^(alpha - 1) (pi^2 |k|^2 + tau^2)^(-alpha/2) xi`` for ``k`` in
    ``0..s-1`` per axis, the ``(0, 0)`` one set to zero, an orthonormal inverse DCT-II
    (MATLAB's ``idct2``), then 12 where the field is >= 0 and 4 elsewhere.
    """
    alpha, tau = 2.0, 3.0
    k1, k2 = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    coef = tau ** (alpha - 1) * (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2)
    out = np.empty((count, s, s))
    for i in range(count):
        spectrum = s * coef * rng.standard_normal((s, s))
        if not keep_mean:
            spectrum[0, 0] = 0.0
        field = scipy.fft.idctn(spectrum, type=2, norm="ortho")
        out[i] = np.where(field >= 0, 12.0, 4.0)
    return out


def _coefficient_statistics(a: np.ndarray) -> tuple[float, float]:
    """Share of samples more than 90% one value, and the mean share of neighbour pairs that differ."""
    high = (a == a.max()).reshape(len(a), -1).mean(1)
    near_uniform = float(np.mean((high > 0.9) | (high < 0.1)))
    jumps = np.concatenate([(np.diff(a, axis=1) != 0).reshape(len(a), -1),
                            (np.diff(a, axis=2) != 0).reshape(len(a), -1)], axis=1)
    return near_uniform, float(jumps.mean())


def test_darcy_coefficient_statistics_match_an_independent_fno_recipe():
    """Near-uniform samples and interface density of pdeforge's Darcy coefficients against
    the FNO recipe written independently above (400 samples at 64^2), with the constant mode
    dropped (the default) and kept (the explicit option, which the FNO data do not use)."""
    s, n = 64, 400
    rng = np.random.default_rng(7)
    ours = Darcy(DarcyConfig(resolution=s)).sample_inputs(0, range(n))["coefficient"].numpy()
    theirs = _fno_recipe_coefficients(s, n, rng)
    uniform_ours, density_ours = _coefficient_statistics(ours)
    uniform_theirs, density_theirs = _coefficient_statistics(theirs)
    assert uniform_theirs < 0.01 and uniform_ours < 0.01  # balanced in every sample
    assert abs(density_ours / density_theirs - 1) < 0.05
    kept = Darcy(DarcyConfig(resolution=s, coeff_zero_mean=False)).sample_inputs(0, range(n))["coefficient"].numpy()
    uniform_kept, density_kept = _coefficient_statistics(kept)
    uniform_kept_theirs, density_kept_theirs = _coefficient_statistics(_fno_recipe_coefficients(s, n, rng,
                                                                                                keep_mean=True))
    assert uniform_kept > 0.15 and uniform_kept_theirs > 0.15
    assert density_kept < 0.8 * density_ours
    assert abs(density_kept / density_kept_theirs - 1) < 0.15


def test_a_preset_fills_its_values_under_the_explicit_ones_and_unknown_names_are_refused():
    class Toy(BurgersConfig):
        PRESETS = {"sticky": {"nu": 0.5, "t_final": 2.0}}

    filled = Toy(preset="sticky")
    assert (filled.nu, filled.t_final) == (0.5, 2.0)
    explicit = Toy(preset="sticky", nu=0.2)
    assert (explicit.nu, explicit.t_final) == (0.2, 2.0)
    assert Toy.model_validate(explicit.model_dump(mode="json")) == explicit  # a stored config re-validates unchanged
    with pytest.raises(ValueError, match="unknown preset 'runny' \\(known: sticky\\)"):
        Toy(preset="runny")
    with pytest.raises(ValueError, match="known: none"):
        BurgersConfig(preset="sticky")


def test_the_domain_length_scales_the_grid_and_its_wavenumbers():
    problem = Burgers(BurgersConfig(resolution=16, length=2 * math.pi))
    assert problem.grid.extent == (2 * math.pi,)
    (k,) = problem.fine_grid.wavenumbers()
    assert torch.allclose(k[:3], torch.tensor([0.0, 1.0, 2.0], dtype=k.dtype))
    assert problem.coords()["x"][1] == pytest.approx(2 * math.pi / 16)


def test_etdrk4_reuses_a_step_sizes_coefficients_with_unchanged_results():
    """Per-sample steps that recur across output intervals build their coefficients once, and a fresh
    integrator (no reuse) gives the same trajectory bit for bit."""
    from pdeforge.solvers.timestepping import ETDRK4, integrate

    grid = Grid((64,))
    u0 = torch.fft.rfft(torch.stack([COLE_HOPF.solution(grid, 0.0), 0.5 * COLE_HOPF.solution(grid, 0.0)]))
    times = [0.1 * (i + 1) for i in range(6)]
    reused = ETDRK4()
    equation = BurgersEquation(grid, COLE_HOPF.nu)
    calls = []
    original = reused._coefficients
    reused._coefficients = lambda *args: calls.append(args[1]) or original(*args)
    steps = torch.tensor([0.01, 0.0125], dtype=torch.float64)
    out, _ = integrate(reused, equation, u0, times, lambda u: steps)
    fresh = [integrate(ETDRK4(), BurgersEquation(grid, COLE_HOPF.nu), u0[i:i + 1].repeat(2, 1), times, float(h))[0][0]
             for i, h in enumerate(steps)]
    assert torch.equal(out[0], fresh[0]) and torch.equal(out[1], fresh[1])
    # 6 intervals x 2 distinct steps looked up, each built once: the memo answers the other 10 lookups.
    assert len(calls) == 12 and len(reused._memo[equation]) == 2
