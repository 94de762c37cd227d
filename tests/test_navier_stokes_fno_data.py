"""Navier-Stokes data faithful to the FNO data: the initial vorticity's law, and targets that depend on it.

The reference below re-implements, in NumPy and from its description only,
the recipe of the code that generated the FNO paper's Navier-Stokes data
(``GaussianRF(2, s, alpha=2.5, tau=7)`` of its ``random_fields.py``): complex
Fourier coefficients whose real and imaginary parts are independent unit
normals, each multiplied by ``s^2 sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2)``
with ``sigma = tau^(alpha - 1)``, the constant mode zeroed, then the real part
of the inverse FFT (which divides by ``s^2``).
"""

import math

import numpy as np
import pytest
import torch

from pdeforge.problems import NavierStokes, NavierStokesConfig
from pdeforge.problems.navier_stokes import forcing_field
from pdeforge.solvers import method_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TAU, ALPHA = 7.0, 2.5


def fno_recipe(size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` initial vorticities ``[count, size, size]`` drawn as the FNO data code draws them."""
    sigma = TAU ** (ALPHA - 1.0)  # tau^(0.5 (2 alpha - d)) with d = 2
    k = np.fft.fftfreq(size, d=1.0 / size)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    sqrt_eig = size**2 * math.sqrt(2.0) * sigma * (4 * math.pi**2 * k2 + TAU**2) ** (-ALPHA / 2)
    sqrt_eig[0, 0] = 0.0
    coefficients = sqrt_eig * (rng.standard_normal((count, size, size)) + 1j * rng.standard_normal((count, size, size)))
    return np.fft.ifft2(coefficients).real


def radial_power(w: np.ndarray, shells: int) -> np.ndarray:
    """Mean ``|w_hat(k)|^2 / s^4`` over the samples and the lattice modes of each shell ``round(|k|) = 1 .. shells``."""
    size = w.shape[-1]
    power = np.abs(np.fft.fft2(w)) ** 2 / size**4
    k = np.fft.fftfreq(size, d=1.0 / size)
    radius = np.rint(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2))
    return np.array([power[:, radius == m].mean() for m in range(1, shells + 1)])


def covariance_eigenvalues(size: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``(|k| in cycles, scale (4 pi^2 |k|^2 + tau^2)^-alpha)`` on the FFT layout, the constant mode zeroed."""
    k = np.fft.fftfreq(size, d=1.0 / size)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    eig = scale * (4 * math.pi**2 * k2 + TAU**2) ** (-ALPHA)
    eig[0, 0] = 0.0
    return np.sqrt(k2), eig


def expected_radial_power(size: int, shells: int, scale: float) -> np.ndarray:
    """The covariance's eigenvalues averaged over the same shells."""
    modulus, eig = covariance_eigenvalues(size, scale)
    radius = np.rint(modulus)
    return np.array([eig[radius == m].mean() for m in range(1, shells + 1)])


def pdeforge_w0(count: int, **overrides) -> np.ndarray:
    problem = NavierStokes(NavierStokesConfig(resolution=64, **overrides))
    return problem.sample_inputs(0, range(count))["w0"].numpy()


def test_default_initial_vorticity_has_the_fno_data_codes_law():
    count, shells = 400, 8
    ours = pdeforge_w0(count)
    theirs = fno_recipe(64, count, np.random.default_rng(1))
    expected = expected_radial_power(64, shells, 2 * 7.0**3)
    # Pointwise standard deviation: both recipes, and the covariance's sum over the modes.
    std_exact = math.sqrt(covariance_eigenvalues(64, 686.0)[1].sum())
    assert std_exact == pytest.approx(0.262, abs=1e-3)
    assert ours.std() == pytest.approx(std_exact, rel=0.06)
    assert theirs.std() == pytest.approx(std_exact, rel=0.06)
    assert ours.std() / theirs.std() == pytest.approx(1.0, rel=0.08)
    # Radial spectrum shell by shell (400 samples: a few percent of sampling noise per shell).
    np.testing.assert_allclose(radial_power(ours, shells), expected, rtol=0.15)
    np.testing.assert_allclose(radial_power(theirs, shells), expected, rtol=0.15)
    np.testing.assert_allclose(radial_power(ours, shells) / radial_power(theirs, shells), 1.0, rtol=0.2)
    # No constant mode in either.
    assert np.abs(ours.mean((-2, -1))).max() < 1e-12
    assert np.abs(theirs.mean((-2, -1))).max() < 1e-12


def test_the_printed_formula_is_an_option_six_times_smaller_in_standard_deviation():
    default = pdeforge_w0(50)
    printed = pdeforge_w0(50, ic_scale=7.0**1.5)
    # Same noise, covariance multipliers 686 and 7^(3/2): the fields are proportional.
    np.testing.assert_allclose(printed * math.sqrt(686.0 / 7.0**1.5), default, rtol=1e-12, atol=1e-15)
    assert math.sqrt(686.0 / 7.0**1.5) == pytest.approx(6.09, abs=0.01)


def test_the_fno_presets_are_the_papers_data_sets():
    for name, nu, horizon in (("fno-1e-3", 1e-3, 50), ("fno-1e-4", 1e-4, 30), ("fno-1e-5", 1e-5, 20)):
        c = NavierStokesConfig(preset=name)
        assert (c.nu, c.t_final, c.n_times, c.resolution, c.fine_resolution) == (nu, horizon, horizon, 64, 256)
        assert c.ic_scale == 686.0 and c.forcing == "fno" and c.ic_zero_mean


def _last_snapshots(config: NavierStokesConfig, w0: torch.Tensor) -> torch.Tensor:
    problem = NavierStokes(config)
    return problem.solve({"w0": w0}, method_for(problem)).outputs["w"][:, -1]


def test_the_stored_trajectory_depends_on_the_initial_vorticity():
    """Two initial fields give last snapshots apart by far more than a negligible share of the forcing's response.

    With the printed formula's amplitude the response to the forcing alone
    (from ``w0 = 0``) dominates every target: the two last snapshots differ by
    about 3% of it. With the FNO code's amplitude, about 20%.
    """
    config = NavierStokesConfig(resolution=32, t_final=10.0, n_times=2)
    w0 = NavierStokes(config).sample_inputs(0, range(2))["w0"]
    printed = config.model_copy(update={"ic_scale": 7.0**1.5})
    forced_only = _last_snapshots(config, torch.zeros_like(w0[:1]))[0]
    last = _last_snapshots(config, w0)
    last_printed = _last_snapshots(printed, w0 * math.sqrt(7.0**1.5 / 686.0))
    apart = float((last[0] - last[1]).norm() / forced_only.norm())
    apart_printed = float((last_printed[0] - last_printed[1]).norm() / forced_only.norm())
    assert apart > 0.1
    assert apart > 3 * apart_printed
    # The forcing pattern still shapes the flow, but no longer fixes the target.
    f = forcing_field(config, NavierStokes(config).grid)
    corr = torch.nn.functional.cosine_similarity((last - last.mean((-2, -1), keepdim=True)).flatten(1),
                                                 f.flatten()[None], dim=1)
    assert float(corr.max()) < 0.99
