"""Losses: relative Lp and Sobolev H^s errors against exact values and finite-difference norms."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from pydantic import ValidationError

from helpers import assert_converges
from pdeforge.errors import PdeforgeError
from pdeforge.training import TrainConfig
from pdeforge.training.losses import (
    LOSS_GRAMMAR,
    LossName,
    RelativeLpLoss,
    SobolevLoss,
    loss_for,
    parse_loss_name,
    per_sample_metrics,
    periodic_extension,
    relative_lp_error,
    sobolev_error,
)


def test_relative_lp_is_per_sample_then_mean():
    target = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    pred = target * torch.tensor([1.1, 0.7], dtype=torch.float64)[:, None, None, None]
    torch.testing.assert_close(relative_lp_error(pred, target), torch.tensor([0.1, 0.3], dtype=torch.float64))
    torch.testing.assert_close(RelativeLpLoss()(pred, target), torch.tensor(0.2, dtype=torch.float64))
    torch.testing.assert_close(RelativeLpLoss(1)(pred, target), torch.tensor(0.2, dtype=torch.float64))
    # scale invariance of relative errors
    torch.testing.assert_close(RelativeLpLoss()(5 * pred, 5 * target), RelativeLpLoss()(pred, target))


@pytest.mark.parametrize("s", [2.0, 1.0, 0.5, 0.0, -1.0, -2.5])
@pytest.mark.parametrize("k", [(3,), (2, -5), (1, 0, 2)])
def test_sobolev_norm_of_a_fourier_mode_is_exact(s, k):
    """||cos(2 pi k.x)||_{H^s}^2 = (1 + |2 pi k|^2)^s / 2 on the unit box, s of either sign."""
    d = len(k)
    n = 16
    mesh = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) / n] * d, indexing="ij")
    u = torch.cos(2 * math.pi * sum(ki * xi for ki, xi in zip(k, mesh, strict=True)))[None, None]
    got = sobolev_error(u, torch.zeros_like(u), s, spatial_dims=d, relative=False)
    k2 = (2 * math.pi) ** 2 * sum(ki * ki for ki in k)
    torch.testing.assert_close(got, torch.tensor([math.sqrt((1 + k2) ** s / 2)], dtype=torch.float64))


def _smooth_periodic(n: int) -> tuple[np.ndarray, float]:
    x = np.arange(n) / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    return np.exp(np.sin(2 * np.pi * X) + 0.5 * np.cos(2 * np.pi * Y)), 1.0 / n


def _fd_laplacian(n: int, h: float) -> sp.csr_matrix:
    one = sp.diags([1.0, -2.0, 1.0], [-1, 0, 1], shape=(n, n), format="lil", dtype=float)
    one[0, n - 1] = one[n - 1, 0] = 1
    one = sp.csr_matrix(one) / h**2
    eye = sp.identity(n)
    return sp.kron(one, eye) + sp.kron(eye, one)


def test_h1_norm_matches_finite_difference_norms():
    """Second-order FD gradients give ||u||_H1 with error O(h^2) against the spectral value."""
    u, _ = _smooth_periodic(128)
    exact = float(sobolev_error(torch.as_tensor(u)[None, None], torch.zeros(1, 1, 128, 128, dtype=torch.float64),
                                1.0, spatial_dims=2, relative=False))

    def fd_error(h: float) -> float:
        v, h = _smooth_periodic(round(1 / h))
        gx = (np.roll(v, -1, 0) - np.roll(v, 1, 0)) / (2 * h)
        gy = (np.roll(v, -1, 1) - np.roll(v, 1, 1)) / (2 * h)
        return abs(math.sqrt(h * h * np.sum(v * v + gx * gx + gy * gy)) - exact)

    assert_converges([1 / 16, 1 / 24, 1 / 32, 1 / 48], fd_error, order=2)


def test_negative_order_norm_matches_a_finite_difference_solve():
    """||u||_{H^-1}^2 = <u, (I - Lap)^{-1} u>; the FD solve converges at O(h^2) to the spectral value."""
    u, _ = _smooth_periodic(64)
    exact = float(sobolev_error(torch.as_tensor(u)[None, None], torch.zeros(1, 1, 64, 64, dtype=torch.float64),
                                -1.0, spatial_dims=2, relative=False))

    def fd_error(h: float) -> float:
        n = round(1 / h)
        v, h = _smooth_periodic(n)
        w = spla.spsolve(sp.identity(n * n, format="csr") - _fd_laplacian(n, h), v.ravel())
        return abs(math.sqrt(h * h * float(v.ravel() @ w)) - exact)

    assert_converges([1 / 12, 1 / 16, 1 / 24, 1 / 32], fd_error, order=2)


@pytest.mark.parametrize("padding,field,norm2", [
    ("odd", lambda x, y: torch.sin(math.pi * x) * torch.sin(math.pi * y), 0.25 * (1 + 2 * math.pi**2)),
    ("even", lambda x, y: torch.cos(math.pi * x) * torch.cos(math.pi * y), 0.25 * (1 + 2 * math.pi**2)),
    ("even", lambda x, y: torch.cos(math.pi * x) + 0 * y, 0.5 * (1 + math.pi**2)),
])
def test_non_periodic_fields_are_extended_by_reflection(padding, field, norm2):
    """Node data on [0, 1]^2 (both ends stored): the reflected extension is one Fourier mode, so exact."""
    x = torch.linspace(0, 1, 33, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    u = field(X, Y)[None, None]
    got = sobolev_error(u, torch.zeros_like(u), 1.0, spatial_dims=2, periodic=False, padding=padding, relative=False)
    torch.testing.assert_close(got, torch.tensor([math.sqrt(norm2)], dtype=torch.float64))


def test_periodic_extension_shapes_and_zero_padding():
    u = torch.arange(5.0)[None, None]
    ext, factor = periodic_extension(u, 1, "odd")
    assert ext.tolist() == [[[0.0, 1.0, 2.0, 3.0, 4.0, -3.0, -2.0, -1.0]]] and factor == 2.0
    ext, factor = periodic_extension(u, 1, "zero")
    assert ext.tolist() == [[[0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0]]] and factor == 1.0


def test_relative_sobolev_loss_weights_high_frequencies_by_order():
    """An error in mode k: relative H^1 > relative L2 > relative H^-1 when k exceeds the target's modes."""
    n = 32
    x = torch.arange(n, dtype=torch.float64) / n
    target = torch.sin(2 * math.pi * x)[None, None]
    pred = target + 0.1 * torch.sin(2 * math.pi * 6 * x)[None, None]
    errs = {s: float(sobolev_error(pred, target, s, spatial_dims=1)) for s in (1.0, 0.0, -1.0)}
    assert errs[1.0] > errs[0.0] > errs[-1.0]
    torch.testing.assert_close(errs[0.0], float(relative_lp_error(pred, target)))
    ratio = (1 + (12 * math.pi) ** 2) / (1 + (2 * math.pi) ** 2)
    assert errs[1.0] == pytest.approx(0.1 * math.sqrt(ratio))


def test_sobolev_loss_is_differentiable_and_gradchecks():
    pred = torch.randn(2, 1, 8, 6, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 1, 8, 6, dtype=torch.float64)
    for loss in (SobolevLoss(1.0, spatial_dims=2), SobolevLoss(-1.0, spatial_dims=2, periodic=False, padding="odd")):
        assert torch.autograd.gradcheck(lambda p, loss=loss: loss(p, target), (pred,), fast_mode=True)


def test_loss_names_and_metrics():
    assert isinstance(loss_for("l2", spatial_dims=2), RelativeLpLoss)
    assert loss_for("h-1", spatial_dims=1).options["s"] == -1.0
    assert loss_for("H0.5", spatial_dims=3, periodic=False).options["periodic"] is False
    for bad in ("l0.5", "sobolev", "h"):
        with pytest.raises(PdeforgeError):
            loss_for(bad, spatial_dims=2)
    y = torch.randn(3, 2, 9, 9)
    m = per_sample_metrics(1.5 * y, y, spatial_dims=2, periodic=False)
    torch.testing.assert_close(m["rel_l2"], torch.full((3,), 0.5))
    torch.testing.assert_close(m["rel_h1"], torch.full((3,), 0.5))
    with pytest.raises(PdeforgeError, match="differs from target"):
        relative_lp_error(y, y[:, :1])


def test_one_loss_name_grammar_case_ignored_in_config_and_loss_for():
    """``loss=H1`` and ``loss=h1`` are one configuration and build the same loss; the config
    accepts exactly the names loss_for accepts, and a bad name's message states the grammar in words."""
    upper, lower = TrainConfig(loss="H1"), TrainConfig(loss="h1")
    assert upper == lower and upper.loss == "h1"
    pred, target = torch.randn(2, 1, 9, 9, dtype=torch.float64), torch.randn(2, 1, 9, 9, dtype=torch.float64)
    a, b = (loss_for(c.loss, spatial_dims=2, periodic=False) for c in (upper, lower))
    assert repr(a) == repr(b) == repr(loss_for("H1", spatial_dims=2, periodic=False))
    torch.testing.assert_close(a(pred, target), sobolev_error(pred, target, 1.0, spatial_dims=2, periodic=False).mean())
    assert parse_loss_name(" L1.5 ") == LossName("l1.5", "l", 1.5)
    assert TrainConfig(loss="h-0.5").loss == "h-0.5"
    for bad in ("h", "sobolev", "l0.5", "l-1", "x2", "h1e3", "", "h 1"):
        with pytest.raises(PdeforgeError) as direct:
            parse_loss_name(bad)
        with pytest.raises(ValidationError) as config:
            TrainConfig(loss=bad)
        for message in (str(direct.value), config.value.errors()[0]["msg"]):
            assert LOSS_GRAMMAR in message and "\n" not in message
            assert not set(message) & set("^$\\[]{}|*+?"), message
