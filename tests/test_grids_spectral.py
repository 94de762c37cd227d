import math

import numpy as np
import pytest
import scipy.fft
import torch

from pdeforge.grids import Grid
from pdeforge.spectral import (
    GaussianRandomField,
    cosine_synthesis,
    dct1,
    dct2,
    dealias_mask,
    dst1,
    dst1n,
    idct2,
    sobolev_norm,
)


def test_grid_layouts():
    periodic = Grid((8, 4), extent=(2.0, 1.0))
    assert periodic.spacing == (0.25, 0.25)
    assert periodic.coordinates()[0][-1].item() == pytest.approx(1.75)
    nodes = Grid((5,), boundary="dirichlet")
    assert nodes.coordinates()[0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert nodes.refine(2).shape == (9,)
    assert periodic.refine(2).shape == (16, 8)
    with pytest.raises(ValueError):
        Grid((1,), boundary="neumann")


def test_wavenumbers_are_the_symbol_of_the_laplacian():
    grid = Grid((32, 24), extent=(1.0, 2.0))
    x, y = grid.mesh()
    u = torch.sin(2 * math.pi * 3 * x) * torch.cos(2 * math.pi * 2 * y / 2.0)
    lap = -torch.fft.irfftn(grid.wavenumber_squared() * torch.fft.rfftn(u), s=grid.shape)
    expected = -((2 * math.pi * 3) ** 2 + (2 * math.pi * 2 / 2.0) ** 2) * u
    torch.testing.assert_close(lap, expected, atol=1e-9, rtol=0)


@pytest.mark.parametrize("n", [2, 3, 9, 16])
def test_dct1_agrees_with_scipy(n):
    x = torch.randn(3, n, dtype=torch.float64)
    np.testing.assert_allclose(dct1(x).numpy(), scipy.fft.dct(x.numpy(), type=1), atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 17])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_orthonormal_dct2_and_its_inverse_agree_with_scipy_and_keep_energy(n, dim):
    x = torch.randn(n, n, 3, dtype=torch.float64) if dim != -1 else torch.randn(2, 3, n, dtype=torch.float64)
    axis = dim % x.ndim
    y = dct2(x, dim=dim)
    np.testing.assert_allclose(y.numpy(), scipy.fft.dct(x.numpy(), type=2, norm="ortho", axis=axis), atol=1e-13)
    np.testing.assert_allclose(idct2(x, dim=dim).numpy(), scipy.fft.idct(x.numpy(), type=2, norm="ortho", axis=axis),
                               atol=1e-13)
    torch.testing.assert_close(idct2(y, dim=dim), x, rtol=0, atol=1e-13)
    torch.testing.assert_close(y.square().sum(), x.square().sum(), rtol=1e-13, atol=0)  # Parseval


def test_dct2_is_differentiable_and_its_adjoint_is_its_inverse():
    """Orthonormal: the gradient of <w, dct2(x)> is idct2(w); gradcheck against finite differences."""
    x = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 6, dtype=torch.float64)
    (grad,) = torch.autograd.grad((dct2(x) * w).sum(), x)
    torch.testing.assert_close(grad, idct2(w), rtol=0, atol=1e-13)
    assert torch.autograd.gradcheck(lambda t: idct2(dct2(t, 0) ** 2, 0), (x,))


@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_dst1_agrees_with_scipy_and_is_its_own_inverse(n):
    x = torch.randn(3, n, 4, dtype=torch.float64)
    np.testing.assert_allclose(dst1(x, dim=1).numpy(), scipy.fft.dst(x.numpy(), type=1, axis=1), atol=1e-12)
    torch.testing.assert_close(dst1(dst1(x, 1), 1) / (2 * (n + 1)), x, rtol=0, atol=1e-13)


def test_dst1n_on_the_cpu_equals_the_device_generic_transform():
    """scipy's ``dstn`` (the CPU path) and the torch FFT of the odd extension (every other device) agree."""
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    expected = dst1(dst1(x, -1), -3)
    torch.testing.assert_close(dst1n(x, (-3, -1)), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(dst1n(x.requires_grad_(), (-3, -1)), expected, rtol=0, atol=1e-12)


def test_cosine_synthesis_evaluates_the_cosine_series():
    n = 11
    c = torch.randn(n, dtype=torch.float64)
    j = torch.arange(n, dtype=torch.float64)
    direct = (c[None, :] * torch.cos(math.pi * j[:, None] * torch.arange(n)[None, :] / (n - 1))).sum(1)
    torch.testing.assert_close(cosine_synthesis(c), direct)


def _product_modes(a_hat: torch.Tensor, b_hat: torch.Tensor, n: int) -> torch.Tensor:
    """Fourier coefficients (first ``len(a_hat)``) of the pointwise product computed on ``n`` points."""
    def pad(h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h, torch.zeros(n // 2 + 1 - len(h), dtype=h.dtype)])

    a = torch.fft.irfft(pad(a_hat), n=n, norm="forward")
    b = torch.fft.irfft(pad(b_hat), n=n, norm="forward")
    return torch.fft.rfft(a * b, norm="forward")[: len(a_hat)]


@pytest.mark.parametrize("band, aliased", [(15, False), (23, True)])
def test_dealiasing_makes_quadratic_products_exact(band, aliased):
    grid = Grid((48,))
    mask = dealias_mask(grid)
    assert torch.fft.rfftfreq(48, 1 / 48)[mask].max() == 15
    rng = np.random.default_rng(1)
    coeffs = []
    for _ in range(2):
        c = torch.zeros(25, dtype=torch.complex128)
        c[1 : band + 1] = torch.as_tensor(rng.standard_normal(band) + 1j * rng.standard_normal(band))
        coeffs.append(c)
    on_grid = _product_modes(*coeffs, 48)
    exact = _product_modes(*coeffs, 256)  # no aliasing on 256 points
    error = (on_grid[mask] - exact[mask]).abs().max()
    assert (error > 1e-3) if aliased else (error < 1e-13)


@pytest.mark.parametrize("s", [-1.0, 0.0, 1.0, 2.0])
def test_sobolev_norm_of_a_fourier_mode(s):
    grid = Grid((64, 64))
    x, y = grid.mesh()
    k = 2 * math.pi * math.hypot(3, 4)
    u = torch.cos(2 * math.pi * (3 * x + 4 * y))
    # ||cos||_L2^2 = 1/2 on the unit square, weighted by (1 + |k|^2)^s
    expected = math.sqrt(0.5 * (1 + k * k) ** s)
    assert float(sobolev_norm(u, grid, s)) == pytest.approx(expected, rel=1e-12)
    assert float(sobolev_norm(u, grid, s, seminorm=True)) == pytest.approx(math.sqrt(0.5 * k ** (2 * s)), rel=1e-12)


def test_sobolev_h1_seminorm_matches_finite_differences():
    grid = Grid((256,))
    (x,) = grid.coordinates()
    u = torch.exp(torch.sin(2 * math.pi * x))
    h = grid.spacing[0]
    du = (torch.roll(u, -1) - torch.roll(u, 1)) / (2 * h)
    fd = math.sqrt(float((du * du).sum() * h))
    assert float(sobolev_norm(u, grid, 1.0, seminorm=True)) == pytest.approx(fd, rel=1e-3)
    l2 = math.sqrt(float((u * u).sum() * h))
    assert float(sobolev_norm(u, grid, 0.0)) == pytest.approx(l2, rel=1e-12)


def _mode_power_zscores(power: torch.Tensor, expected: torch.Tensor, samples: int, dof: torch.Tensor) -> torch.Tensor:
    """z-scores of sample mean powers; a mode with ``dof`` real Gaussian parts has variance 2 E^2 / dof."""
    std = expected * torch.sqrt(2.0 / dof) / math.sqrt(samples)
    return (power - expected) / std


def test_periodic_grf_has_the_prescribed_spectrum():
    grid = Grid((32, 32))
    grf = GaussianRandomField(grid, scale=7**1.5, tau=7.0, alpha=2.5)
    samples = 400
    u = grf.sample([np.random.default_rng(i) for i in range(samples)])
    coeff = torch.fft.rfftn(u, dim=(-2, -1)) / grid.size  # Fourier coefficients c_k
    power = (coeff.abs() ** 2).mean(0) * grid.volume  # E|c_k|^2 V = lambda_k
    expected = grf.eigenvalues
    ky = torch.fft.rfftfreq(32, 1 / 32)
    kx = torch.fft.fftfreq(32, 1 / 32)
    real_mode = ((ky == 0) | (ky == 16))[None, :] & ((kx == 0) | (kx == -16))[:, None]
    dof = torch.where(real_mode, 1.0, 2.0).double()
    z = _mode_power_zscores(power, expected, samples, dof)
    assert z.abs().max() < 5.5  # 544 modes: a 5.5-sigma excursion has probability ~1e-5
    assert z.mean().abs() < 5 / math.sqrt(z.numel())  # no bias across the spectrum
    assert float(u.var()) == pytest.approx(grf.pointwise_variance(), rel=0.05)


def test_neumann_grf_has_the_prescribed_cosine_spectrum():
    grid = Grid((33,), boundary="neumann")
    grf = GaussianRandomField(grid, scale=1.0, tau=3.0, alpha=2.0)
    samples = 2000
    u = grf.sample([np.random.default_rng(i) for i in range(samples)])
    # Recover coefficients by trapezoid projection on the orthonormal cosines (exact for DCT-I).
    n = 33
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * k[:, None] * x[None, :]) * torch.where(k == 0, 1.0, math.sqrt(2.0))[:, None]
    w = torch.full((n,), 1.0 / (n - 1), dtype=torch.float64)
    w[0] = w[-1] = 0.5 / (n - 1)
    gamma = torch.where((k == 0) | (k == n - 1), 1.0, 0.5) * 2  # discrete norms of the basis
    gamma[0] = 1.0
    gamma[-1] = 2.0
    coeff = (u * w) @ basis.T / gamma
    power = (coeff**2).mean(0)
    z = _mode_power_zscores(power, grf.eigenvalues, samples, torch.ones(n, dtype=torch.float64))
    assert z.abs().max() < 5.0


@pytest.mark.parametrize("grid", [Grid((32, 32)), Grid((33,), boundary="neumann")])
def test_a_zero_mean_grf_drops_exactly_the_constant_mode(grid):
    """``zero_mean`` zeroes the k = 0 eigenvalue only: the samples are the mode-kept ones
    minus their constant-mode part, so their (trapezoid) mean over the box is zero to rounding."""
    kept = GaussianRandomField(grid, scale=25.0, tau=3.0, alpha=2.0)
    dropped = GaussianRandomField(grid, scale=25.0, tau=3.0, alpha=2.0, zero_mean=True)
    flat_kept, flat_dropped = kept.eigenvalues.flatten(), dropped.eigenvalues.flatten()
    assert float(flat_dropped[0]) == 0.0 and float(flat_kept[0]) == pytest.approx(25.0 * 9.0**-2.0)
    assert torch.equal(flat_dropped[1:], flat_kept[1:])
    rngs = [np.random.default_rng(i) for i in range(8)]
    u = dropped.sample(rngs)
    if grid.periodic:
        mean = u.mean(dim=(-2, -1))
    else:
        w = torch.full((33,), 1.0, dtype=torch.float64)
        w[0] = w[-1] = 0.5
        mean = (u * w).sum(-1) / w.sum()
    assert float(mean.abs().max()) < 1e-13 * float(u.abs().max())
    v = kept.sample([np.random.default_rng(i) for i in range(8)])
    assert float((v - u).std(dim=tuple(range(1, u.ndim))).max()) < 1e-12  # the difference is constant per sample
