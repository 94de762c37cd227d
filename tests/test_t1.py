"""Transform Once (T1): its transforms, its block identities, Parseval training, invariance, initialisation."""

import math

import numpy as np
import pytest
import torch

import pdeforge.models
import test_models
from model_helpers import band_limited
from pdeforge.models import MODELS, T1, T1Layer, build_model, real_fourier, real_fourier_inverse
from pdeforge.training import (
    ChannelNormaliser,
    NormalisedModel,
    RelativeLpLoss,
    TrainConfig,
    fit,
    frequency_output,
    make_split,
    parseval_relative_l2,
    relative_lp_error,
)

TRANSFORMS = ["dct", "fft"]


@pytest.mark.parametrize("n", [1, 2, 5, 8, 9])
def test_real_fourier_is_the_orthonormal_cos_sin_basis(n):
    """Columns 1/sqrt(n), sqrt(2/n) cos_k, sqrt(2/n) sin_k (interleaved), (-1)^j/sqrt(n) for even n."""
    j = np.arange(n)
    basis = [np.ones(n) / np.sqrt(n)]
    for k in range(1, (n - 1) // 2 + 1):
        basis += [np.sqrt(2 / n) * np.cos(2 * np.pi * k * j / n), np.sqrt(2 / n) * np.sin(2 * np.pi * k * j / n)]
    if n % 2 == 0:
        basis.append((-1.0) ** j / np.sqrt(n))
    basis = np.stack(basis)  # [n, n], rows are the basis vectors
    np.testing.assert_allclose(basis @ basis.T, np.eye(n), atol=1e-13)
    x = torch.randn(3, n, 4, dtype=torch.float64)
    expected = np.einsum("kj,bjc->bkc", basis, x.numpy())
    np.testing.assert_allclose(real_fourier(x, dim=1).numpy(), expected, atol=1e-13)
    torch.testing.assert_close(real_fourier_inverse(real_fourier(x, 1), 1), x, rtol=0, atol=1e-13)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("shape,modes", [((13,), (5,)), ((9, 12), (4, 3)), ((3, 7), (5, 4)), ((5, 4, 6), (3, 2, 2))])
def test_forward_is_the_one_inverse_of_the_predicted_block_and_the_block_is_exact(transform, shape, modes):
    """y = B^-1(zero-filled block), and B(y) is that block with nothing outside (odd and coarse grids too)."""
    torch.manual_seed(0)
    net = T1(2, 3, modes, width=6, layers=2, transform=transform, projection_channels=8).double()
    x = torch.randn(2, 2, *shape, dtype=torch.float64)
    y = net(x)
    block = net.predict_coefficients(x)
    assert block.shape == (2, 3, *[min(m, n) for m, n in zip(modes, shape, strict=True)])
    again, outside = net.transform_target(y)
    torch.testing.assert_close(again, block, rtol=0, atol=1e-12)
    assert outside.abs().max() < 1e-24 * y.square().sum()
    # Parseval: the field's energy is the block's
    torch.testing.assert_close(y.square().flatten(2).sum(-1), block.square().flatten(2).sum(-1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_lifting_on_the_block_is_the_block_of_the_lifted_field(transform):
    """P is pointwise and linear, so it commutes with B; its bias (a constant field) is the constant coefficient."""
    torch.manual_seed(1)
    net = T1(2, 1, (4, 3), width=5, layers=1, transform=transform).double()
    with torch.no_grad():
        net.lifting_bias.normal_()
    x = torch.randn(3, 2, 10, 9, dtype=torch.float64)
    scale = math.sqrt(90)
    lifted_field = torch.einsum("oi,bixy->boxy", net.lifting, x) + net.lifting_bias[:, None, None]
    expected = net._block(lifted_field) / scale
    got = net._add_to_constant(net._pointwise(net.lifting, net._block(x) / scale), net.lifting_bias)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("shape", [(31,), (17, 12)])
@torch.no_grad()
def test_parseval_loss_equals_the_grid_relative_l2_in_float64(transform, shape):
    """Bare and normalised (physical units): the frequency-space loss is the grid's, to 1e-10."""
    torch.manual_seed(2)
    d = len(shape)
    net = T1(1, 2, 5, width=6, layers=2, spatial_dims=d, transform=transform, projection_channels=8).double()
    x = torch.randn(4, 1, *shape, dtype=torch.float64)
    y = torch.randn(4, 2, *shape, dtype=torch.float64) + 3.0  # white noise on a mean: energy off the block
    block, outside = net.transform_target(y)
    spectral = parseval_relative_l2(net.predict_coefficients(x), block, outside)
    grid = relative_lp_error(net(x), y)
    np.testing.assert_allclose(spectral.numpy(), grid.numpy(), rtol=1e-10, atol=0)
    assert (outside > 0.05 * y.square().flatten(2).sum(-1)).all()  # a target with energy off the block
    normalised = NormalisedModel(net, ChannelNormaliser(1, d), ChannelNormaliser(2, d)).double()
    with torch.no_grad():
        normalised.outputs.mean.copy_(torch.tensor([1.5, -0.7]))
        normalised.outputs.std.copy_(torch.tensor([0.3, 2.0]))
        normalised.inputs.mean.fill_(0.2)
    decoded = frequency_output(normalised)
    assert decoded is not None and frequency_output(normalised.outputs) is None
    target, outside = decoded.transform_target(y)
    spectral = parseval_relative_l2(decoded.predict_coefficients(x), target, outside)
    physical = RelativeLpLoss(2)(normalised(x), y)
    assert abs(float(spectral.mean()) - float(physical)) <= 1e-10 * float(physical)


def test_training_steps_use_the_frequency_space_loss_and_skip_the_inverse(tmp_path):
    """With l2 the steps never call forward (validation still does); with l1 they do. Both lower the loss."""
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(24, 1, 12, 12, generator=gen, dtype=torch.float64)
    u = torch.nn.functional.avg_pool2d(a, 3, stride=1, padding=1)  # a smoothing operator to learn

    class Source:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def batches(self, start, stop, batch_size, shuffle_seed=None):
            order = torch.arange(start, stop)
            if shuffle_seed is not None:
                order = order[torch.randperm(len(order), generator=torch.Generator().manual_seed(shuffle_seed[1]))]
            for i in range(0, len(order), batch_size):
                yield self.x[order[i:i + batch_size]], self.y[order[i:i + batch_size]]

    split = make_split(24, n_train=20, n_val=4, n_test=0, val_fraction=0.0, test_fraction=0.0, external_test=False)
    for name, calls_in_steps in (("l2", 0), ("l1", 1)):
        net = T1(1, 1, 6, width=8, layers=2, spatial_dims=2, projection_channels=16).double()
        model = NormalisedModel(net, ChannelNormaliser(1, 2), ChannelNormaliser(1, 2)).double()
        calls = []
        net.register_forward_hook(lambda module, *_, calls=calls: calls.append(module.training))
        config = TrainConfig(model="t1", epochs=8, batch_size=5, lr=1e-2, loss=name)
        loss = RelativeLpLoss(2.0 if name == "l2" else 1.0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        records = fit(model, optimizer, Source(a, u), split, config, loss)  # type: ignore[arg-type]
        assert records[-1].train_loss < 0.75 * records[0].train_loss, [r.train_loss for r in records]
        assert (sum(calls) > 0) == bool(calls_in_steps)  # forward in training mode: only the l1 steps
        assert calls.count(False) > 0  # validation on the grid


def test_pdeforge_train_with_t1_on_tiny_darcy_reduces_the_loss(tmp_path):
    from pdeforge.training import read_metrics
    from test_cli import invoke

    data = tmp_path / "darcy"
    result = invoke("generate", "darcy", "--n", 40, "--resolution", 17, "--out", data)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    result = invoke("train", "--data", data, "--model", "t1", "--out", run, "--set", "epochs=8",
                    "--set", "batch_size=8", "--set", "n_val=4", "--set", "n_test=4", "--set", "lr=0.03",
                    "--set", "model_options.width=8", "--set", "model_options.modes=6",
                    "--set", "model_options.layers=2", "--set", "model_options.projection_channels=16")
    assert result.exit_code == 0, result.output
    rows = read_metrics(run)
    assert len(rows) == 8 and rows[-1]["train_loss"] < 0.8 * rows[0]["train_loss"], [r["train_loss"] for r in rows]
    assert "test relative L2" in result.output


@pytest.mark.parametrize("dims", [1, 2])
def test_fft_t1_is_exactly_resolution_invariant_on_periodic_band_limited_input(dims):
    """The kept real Fourier coefficients of a band-limited function are the same on n and 2n points."""
    torch.manual_seed(4)
    net = T1(2, 3, 5, width=8, layers=2, spatial_dims=dims, transform="fft", projection_channels=16).double()
    n = 32 if dims == 1 else 24
    coarse = band_limited((n,) * dims, 2, kmax=2)
    fine = band_limited((2 * n,) * dims, 2, kmax=2)
    common = (..., *[slice(None, None, 2)] * dims)
    with torch.no_grad():
        y_coarse, y_fine = net(coarse), net(fine)[common]
    assert (y_fine - y_coarse).norm() < 1e-12 * y_coarse.norm()


def test_dct_t1_on_node_grids_is_not_resolution_invariant_and_the_table_says_so():
    """DCT-II reads nodes j/(n-1) as cell centres (j + 1/2)/n: an O(1/n) stretch, beyond the table's 2e-2."""
    assert MODELS["t1"].resolution is None and build_model("t1", 1, 1, 2).transform == "dct"
    torch.manual_seed(0)
    net = build_model("t1", 2, 3, 2, **MODELS["t1"].tiny).double()
    coarse = band_limited((25, 25), 2, kmax=1, nodes=True)
    fine = band_limited((49, 49), 2, kmax=1, nodes=True)
    with torch.no_grad():
        y_coarse, y_fine = net(coarse), net(fine)[..., ::2, ::2]
    assert (y_fine - y_coarse).norm() > 2e-2 * y_coarse.norm()


def test_dct_t1_blocks_converge_with_resolution_on_cell_centred_grids():
    """On its own grid (cell centres) the normalised DCT block approximates the cosine series: the blocks of
    one smooth function at n and 2n points differ by O(h^2), so the difference falls about 4x per doubling."""
    net = T1(1, 1, 6, width=4, layers=1, spatial_dims=1)

    def block(n):
        x = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        f = torch.exp(torch.sin(2.0 * x) + x**2)[None, None]
        return net._block(f)[0, 0] / math.sqrt(n)

    gaps = [float((block(2 * n) - block(n)).norm()) for n in (16, 32, 64)]
    assert 3.5 < gaps[0] / gaps[1] < 4.5 and 3.5 < gaps[1] / gaps[2] < 4.5, gaps


def test_variance_preserving_initialisation_keeps_white_input_variance_over_depth():
    """8 freshly initialised layers (the paper's Navier-Stokes depth) on white unit-variance blocks: every
    layer's output variance is within a factor 2 of the input's; the mode mixing alone keeps it exactly in
    expectation (checked to sampling error)."""
    torch.manual_seed(5)
    width, modes = 32, (12, 10)
    z = torch.randn(64, width, *modes, dtype=torch.float64)
    v0 = float(z.square().mean())
    layers = [T1Layer(width, modes).double() for _ in range(8)]
    with torch.no_grad():
        for layer in layers:
            z = layer(z)
            assert 0.5 < float(z.square().mean()) / v0 < 2.0, float(z.square().mean()) / v0
        g = torch.randn(64, width, *modes, dtype=torch.float64)
        s = layers[0].mode_mixing[0]
        mixed = torch.einsum("bcky,cjk->bcjy", g, s)
        assert abs(float(mixed.square().mean()) / float(g.square().mean()) - 1) < 0.1


def test_t1_default_configuration_and_its_parameter_count():
    """Per layer prod(m) w^2 (channel mixing) + w sum(m_a^2) (mode mixing); lifting, projection as documented."""
    net = build_model("t1", 1, 1, 2)
    assert net.modes == (24, 24) and net.transform == "dct" and len(net.layers) == 4
    w, m, p = 32, 24, 128
    per_layer = m * m * w * w + w * 2 * m * m
    expected = 4 * per_layer + (w * 1 + w) + (p * w) + (1 * p + 1)
    assert sum(q.numel() for q in net.parameters()) == expected == 2_511_041
    assert build_model("t1", 1, 1, 2, transform="fft").modes == (25, 25)


def test_bad_options_are_one_line_errors():
    from pdeforge.errors import PdeforgeError

    with pytest.raises(PdeforgeError, match="transform must be one of dct, fft"):
        build_model("t1", 1, 1, 2, transform="wavelet")
    with pytest.raises(PdeforgeError, match="coordinates"):
        build_model("t1", 1, 1, 2, coordinates="polar")


def test_t1_docstrings_are_numpydoc_and_their_examples_run():
    module = pdeforge.models._t1
    for name in module.__all__:
        obj = getattr(module, name)
        if callable(obj):
            test_models.test_every_public_model_class_and_function_has_a_numpydoc_docstring(obj)
    for method in ("forward", "predict_coefficients", "transform_target"):
        test_models.test_every_public_model_class_and_function_has_a_numpydoc_docstring(getattr(T1, method))
    test_models.test_every_public_model_class_and_function_has_a_numpydoc_docstring(T1Layer.forward)
    test_models.test_docstring_examples_run("_t1")
