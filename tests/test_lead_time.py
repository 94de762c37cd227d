"""Errors per stored snapshot (relative L2, VRMSE, binned spectral MSE) against direct NumPy computations."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from pdeforge.evaluation._lead_time import (
    band_edges,
    binned_spectral_mse,
    lead_time_errors,
    trajectory_steps,
    vrmse,
)


def _direct_band_mse(error: np.ndarray, low: float, high: float) -> float:
    """The share of ``mean(error^2)`` carried by Fourier modes with ``low <= |k| < high`` (radians per spacing)."""
    n = error.shape[0]
    coefficients = np.fft.fft2(error) / error.size  # the field is the sum of c_k exp(i k.x)
    total = 0.0
    for i in range(n):
        for j in range(n):
            kx = 2 * math.pi * (i if i < n // 2 else i - n) / n
            ky = 2 * math.pi * (j if j < n // 2 else j - n) / n
            if low <= math.hypot(kx, ky) < high:
                total += abs(coefficients[i, j]) ** 2
    return total


def test_per_step_metrics_equal_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    n, steps, per_step, size = 3, 4, 2, 16
    truth = rng.standard_normal((n, steps * per_step, size, size))
    pred = truth + 0.1 * rng.standard_normal(truth.shape)
    errors = lead_time_errors(truth, pred, steps, spatial_dims=2)
    edges = band_edges(size)
    for s in range(n):
        for t in range(steps):
            y = truth[s, t * per_step:(t + 1) * per_step]  # channels are time-major
            p = pred[s, t * per_step:(t + 1) * per_step]
            assert errors["rel_l2"][s, t] == pytest.approx(np.linalg.norm(p - y) / np.linalg.norm(y), rel=1e-12)
            direct_vrmse = np.mean([np.sqrt(np.mean((p[c] - y[c]) ** 2) / (np.var(y[c], ddof=1) + 1e-7))
                                    for c in range(per_step)])
            assert errors["vrmse"][s, t] == pytest.approx(direct_vrmse, rel=1e-12)
            for band in range(3):
                direct = np.mean([_direct_band_mse(p[c] - y[c], edges[band], edges[band + 1])
                                  for c in range(per_step)])
                assert errors["spectral_mse"][s, t, band] == pytest.approx(direct, rel=1e-10)


def test_band_edges_are_the_wells_three_log_spaced_bands():
    edges = band_edges(64)
    assert edges[0] == 0.0 and edges[-1] == pytest.approx(math.pi)
    low = 2 * math.pi / 64
    assert edges[1] == pytest.approx(low * (math.pi / low) ** (1 / 3))
    assert edges[2] == pytest.approx(low * (math.pi / low) ** (2 / 3))


@pytest.mark.parametrize("m, band", [(1, 0), (4, 1), (20, 2)])
def test_a_single_mode_error_lands_in_its_band_with_its_whole_mse(m, band):
    """``a cos(2 pi m x / N)`` has MSE ``a^2 / 2``, all at ``|k| = 2 pi m / N``."""
    size, amplitude = 64, 0.3
    x = np.arange(size)
    error = amplitude * np.cos(2 * math.pi * m * x / size)[:, None] * np.ones(size)[None, :]
    bands = binned_spectral_mse(np.zeros((1, size, size)), error[None], spatial_dims=2)[0]
    expected = np.zeros(3)
    expected[band] = amplitude**2 / 2
    np.testing.assert_allclose(bands, expected, atol=1e-15)


def test_bands_sum_to_the_mse_of_an_error_without_corner_modes():
    """Parseval: with no energy at ``|k| >= pi``, the three bands carry the whole MSE (1-D and 3-D)."""
    rng = np.random.default_rng(1)
    for shape in ((32,), (8, 8, 8)):
        error = rng.standard_normal((2, *shape))
        spectrum = np.fft.fftn(error, axes=tuple(range(1, error.ndim)))
        k = 2 * math.pi * np.fft.fftfreq(shape[0])
        radius = np.sqrt(sum(g**2 for g in np.meshgrid(*([k] * len(shape)), indexing="ij")))
        spectrum[:, radius >= math.pi] = 0.0
        error = np.fft.ifftn(spectrum, axes=tuple(range(1, error.ndim))).real
        bands = binned_spectral_mse(np.zeros_like(error), error, spatial_dims=len(shape))
        np.testing.assert_allclose(bands.sum(-1), (error**2).reshape(2, -1).mean(-1), rtol=1e-12)


def test_vrmse_of_a_constant_offset_is_the_offset_over_the_standard_deviation():
    rng = np.random.default_rng(2)
    y = rng.standard_normal((5, 32, 32))
    np.testing.assert_allclose(vrmse(y, y + 0.5, spatial_dims=2),
                               0.5 / np.sqrt(y.reshape(5, -1).var(-1, ddof=1) + 1e-7), rtol=1e-12)


def test_only_a_trajectory_output_of_a_known_problem_has_steps():
    ns = SimpleNamespace(problem="navier-stokes", output_shapes={"w": (10, 64, 64)})
    assert trajectory_steps(ns, ("w",)) == 10
    darcy = SimpleNamespace(problem="darcy", output_shapes={"solution": (64, 64)})
    assert trajectory_steps(darcy, ("solution",)) is None
    assert trajectory_steps(SimpleNamespace(problem=None, output_shapes={"y": (5, 16)}), ("y",)) is None
    gray_scott = SimpleNamespace(problem="gray-scott", output_shapes={"uv": (4, 2, 32, 32)})
    assert trajectory_steps(gray_scott, ("uv",)) == 4
