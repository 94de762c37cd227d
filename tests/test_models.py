"""Neural operators: spectral-layer mathematics, gradients, invariants, the model table."""

import numpy as np
import pytest
import torch

import pdeforge.models._fno as fno_module
from model_helpers import assert_all_params_get_grad, band_limited
from pdeforge.errors import PdeforgeError
from pdeforge.models import (
    FNO,
    MODELS,
    TFNO,
    DeepONet,
    DomainPadding,
    GridCoordinates,
    PODDeepONet,
    SpectralConv,
    TuckerSpectralKernel,
    build_model,
    fit_pod,
    kept_modes,
    truncated_irfft,
    truncated_rfft,
)

BACKENDS = ["dft", "fft"]


def _kept_index(shape, modes):
    return [torch.tensor([k % n for k in kept_modes(n, m, last=a == len(shape) - 1)[0]])
            for a, (n, m) in enumerate(zip(shape, modes))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape,modes", [((16,), (5,)), ((17, 12), (4, 3)), ((10, 9, 8), (3, 2, 3)),
                                         ((6, 7), (5, 5)), ((8, 8), (4, 5))])
def test_truncated_transforms_match_rfftn(backend, shape, modes):
    """Both backends give rfftn's coefficients on the kept set and irfftn of the zero-padded spectrum."""
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    dims = tuple(range(-len(shape), 0))
    ref = torch.fft.rfftn(x, dim=dims, norm="forward")
    index = _kept_index(shape, modes)
    block = ref
    for a, i in enumerate(index):
        block = block.index_select(2 + a, i)
    z = truncated_rfft(x, modes, backend)
    torch.testing.assert_close(torch.complex(z[0], z[1]), block, rtol=0, atol=1e-13)
    padded = torch.zeros_like(ref)
    padded[(slice(None), slice(None), *torch.meshgrid(*index, indexing="ij"))] = block
    expected = torch.fft.irfftn(padded, s=shape, dim=dims, norm="forward")
    torch.testing.assert_close(truncated_irfft(z, shape, modes, backend), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mode_truncation_keeps_exactly_the_documented_set(backend):
    """modes=12 on 64x64 keeps k1 in -12..11, k2 in 0..11 (24 x 12 coefficients) and nothing else.

    The output is real, so in the k2 = 0 column the unpaired k1 = -12 comes out as the real mode
    pair (+-12, 0) at half amplitude, as with the paper's and neuraloperator's rfft truncation.
    """
    conv = SpectralConv(1, 1, modes=(12, 12), backend=backend).double()
    with torch.no_grad():  # identity on every kept mode: the layer is the projection onto the kept set
        conv.kernel.weight.zero_()
        conv.kernel.weight[..., 0, 0, 0] = 1.0
    x = torch.randn(3, 1, 64, 64, dtype=torch.float64)
    spectrum = torch.fft.rfftn(conv(x), dim=(-2, -1))
    k1 = torch.fft.fftfreq(64, 1 / 64)[:, None]
    k2 = torch.fft.rfftfreq(64, 1 / 64)[None, :]
    kept = ((k1 >= -12) & (k1 <= 11) & (k2 <= 11)).expand(64, 33)
    assert int(kept.sum()) == 24 * 12
    edge = ((k1.abs() == 12) & (k2 == 0)).expand(64, 33)
    expected = torch.fft.rfftn(x, dim=(-2, -1))
    torch.testing.assert_close(spectrum[..., kept & ~edge], expected[..., kept & ~edge])
    torch.testing.assert_close(spectrum[..., edge], expected[..., edge] / 2)
    assert spectrum[..., ~(kept | edge)].abs().max() < 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape,modes", [((10,), (3,)), ((7, 6), (2, 2))])
def test_spectral_conv_gradients_match_finite_differences(backend, shape, modes):
    conv = SpectralConv(2, 2, modes, backend=backend, bias=True).double()
    x = torch.randn(1, 2, *shape, dtype=torch.float64, requires_grad=True)
    params = [x, conv.kernel.weight, conv.bias]

    def f(x, w, b):
        return torch.func.functional_call(conv, {"kernel.weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-7, fast_mode=True)


def test_backends_agree_and_coarse_grids_use_a_sub_block():
    conv = SpectralConv(3, 2, modes=(6, 5)).double()
    for shape in [(40, 33), (9, 7), (8, 8)]:  # the coarse ones cannot hold every kept mode
        x = torch.randn(2, 3, *shape, dtype=torch.float64)
        conv.backend = "dft"
        a = conv(x)
        conv.backend = "fft"
        torch.testing.assert_close(a, conv(x), rtol=0, atol=1e-12)


def test_storage_lanes_do_not_change_the_fno():
    net = FNO(2, 3, modes=(4, 3), width=6, layers=2, padding=DomainPadding(3), coordinates=GridCoordinates()).double()
    x = torch.randn(2, 2, 13, 11, dtype=torch.float64, requires_grad=True)
    y = net(x)
    grads = torch.autograd.grad(y.square().sum(), [x, *net.parameters()])
    lane = fno_module.LANE
    try:
        fno_module.LANE = 1
        y1 = net(x)
        grads1 = torch.autograd.grad(y1.square().sum(), [x, *net.parameters()])
    finally:
        fno_module.LANE = lane
    torch.testing.assert_close(y, y1, rtol=0, atol=1e-12)
    for g, g1 in zip(grads, grads1):
        torch.testing.assert_close(g, g1, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("contraction", ["factorized", "reconstructed"])
def test_tucker_kernel_at_full_rank_equals_the_dense_layer(contraction):
    """Core = dense weight, identity factors: the Tucker layer is the dense layer, by either contraction."""
    dense = SpectralConv(3, 4, modes=(3, 2)).double()
    tucker = TuckerSpectralKernel(3, 4, (3, 2), rank=1.0, contraction=contraction).double()
    w = dense.kernel.weight.detach()  # [k1, k2, in, 2, out]
    with torch.no_grad():
        tucker.core.copy_(w.permute(3, 2, 4, 0, 1))  # [2, in, out, k1, k2]
        for f in tucker.factors:
            f.zero_()
            f[0] = torch.eye(f.shape[1], dtype=torch.float64)
    layer = SpectralConv(3, 4, modes=(3, 2), kernel=tucker)
    x = torch.randn(2, 3, 16, 12, dtype=torch.float64)
    torch.testing.assert_close(layer(x), dense(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(x[..., :5, :4]), dense(x[..., :5, :4]), rtol=0, atol=1e-12)


def test_tucker_contractions_agree_at_low_rank():
    tucker = TuckerSpectralKernel(6, 5, (4, 3), rank=0.4).double()
    layer = SpectralConv(6, 5, modes=(4, 3), kernel=tucker)
    x = torch.randn(3, 6, 16, 16, dtype=torch.float64)
    tucker.contraction = "factorized"
    a = layer(x)
    tucker.contraction = "reconstructed"
    torch.testing.assert_close(a, layer(x), rtol=1e-12, atol=1e-12)
    dense_params = 6 * 5 * 8 * 3 * 2
    assert sum(p.numel() for p in tucker.parameters()) < dense_params / 4


@pytest.mark.parametrize("dims", [1, 2])
def test_fno_is_resolution_invariant_on_band_limited_inputs(dims):
    """The same band-limited function on n and 2n points gives the same output at the common points."""
    torch.manual_seed(1)
    net = FNO(1, 1, modes=4, width=8, layers=3, spatial_dims=dims, projection_channels=16).double()
    coarse_n = 32 if dims == 1 else 24
    coarse = band_limited((coarse_n,) * dims, 1, kmax=3)
    fine = band_limited((2 * coarse_n,) * dims, 1, kmax=3)
    torch.testing.assert_close(fine[(..., *[slice(None, None, 2)] * dims)], coarse)  # same function
    with torch.no_grad():
        y_coarse, y_fine = net(coarse), net(fine)[(..., *[slice(None, None, 2)] * dims)]
    rel = (y_fine - y_coarse).norm() / y_coarse.norm()
    assert rel < 2e-3, float(rel)
    assert y_coarse.std() > 1e-3  # not a trivially constant output


def _small(name: str) -> dict:
    return {"fno": {"width": 8, "modes": 3, "layers": 2, "padding": 2, "mlp_expansion": 0.5},
            "tfno": {"width": 8, "modes": 3, "layers": 2, "rank": 0.5},
            "unet": {"width": 8, "depth": 2},
            "deeponet": {"sensors": 8, "width": 16, "basis": 4},
            "pod-deeponet": {"modes": 4, "sensors": 8, "width": 16}}[name]


@pytest.mark.parametrize("name", list(MODELS))
def test_every_parameter_of_every_model_gets_a_gradient(name):
    net = build_model(name, 2, 3, 2, **_small(name))
    if name == "pod-deeponet":
        net.fit_pod(torch.randn(12, 3, 14, 10))
    x = torch.randn(4, 2, 14, 10)
    assert net(x).shape == (4, 3, 14, 10)
    assert_all_params_get_grad(net, x)


@pytest.mark.parametrize("name", ["fno", "tfno", "deeponet"])
@pytest.mark.parametrize("dims", [1, 3])
def test_dimension_generic_models_build_in_1d_and_3d(name, dims):
    opts = {"fno": {"width": 4, "modes": 2, "layers": 1}, "tfno": {"width": 4, "modes": 2, "layers": 1},
            "deeponet": {"sensors": 4, "width": 8, "basis": 2}}[name]
    net = build_model(name, 1, 1, dims, **opts)
    x = torch.randn(2, 1, *(9,) * dims)
    assert_all_params_get_grad(net, x)


@pytest.mark.parametrize("name,options,fragment", [
    ("fno", {"widht": 3}, "no option 'widht'"),
    ("nope", {}, "unknown model 'nope'"),
    ("unet", {}, "2-D only"),
    ("fno", {"coordinates": "polar"}, "coordinates must be"),
    ("tfno", {"rank": 3.0}, "rank fraction"),
])
def test_bad_model_requests_are_one_line_errors(name, options, fragment):
    with pytest.raises(PdeforgeError, match=fragment) as info:
        build_model(name, 1, 1, 3 if name == "unet" else 2, **options)
    assert "\n" not in str(info.value)


def test_pod_modes_are_orthonormal_and_come_from_the_training_outputs_only():
    gen = torch.Generator().manual_seed(0)
    train = torch.randn(30, 2, 6, 5, generator=gen, dtype=torch.float64)
    test = torch.randn(10, 2, 6, 5, generator=gen, dtype=torch.float64)
    model = PODDeepONet(1, 2, 2, modes=8, sensors=4, width=8).double()
    model.fit_pod(train)
    modes = model.pod_modes.reshape(2, 8, -1)
    torch.testing.assert_close(modes @ modes.transpose(1, 2), torch.eye(8, dtype=torch.float64).expand(2, 8, 8))
    torch.testing.assert_close(model.pod_mean, train.mean(0))
    for c in range(2):  # the span is that of numpy's SVD of the centred training snapshots
        snap = (train[:, c] - train[:, c].mean(0)).reshape(30, -1).numpy()
        vt = np.linalg.svd(snap, full_matrices=False)[2][:8]
        np.testing.assert_allclose(np.abs(vt @ modes[c].numpy().T), np.eye(8), atol=1e-10)
    full = fit_pod(train, 29)  # the training set lies in its own 29-mode span, a test sample does not
    flat = (train - train.mean(0)).reshape(30, 2, -1)
    m = full.modes.reshape(2, 29, -1)
    recon = torch.einsum("ncp,ckp,ckq->ncq", flat, m, m)
    torch.testing.assert_close(recon, flat)
    flat_test = (test - train.mean(0)).reshape(10, 2, -1)
    assert (torch.einsum("ncp,ckp,ckq->ncq", flat_test, m, m) - flat_test).norm() > 0.1 * flat_test.norm()
    clone = build_model("pod-deeponet", 1, 2, 2, modes=8, sensors=4, width=8).double()
    clone.load_state_dict(model.state_dict())  # the basis travels with the weights
    x = torch.randn(3, 1, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(clone(x), model(x))


def test_pod_deeponet_without_a_basis_says_so():
    with pytest.raises(PdeforgeError, match="fit_pod"):
        PODDeepONet(1, 1, 2)(torch.randn(1, 1, 8, 8))


def test_deeponet_output_follows_the_grid_and_agrees_at_common_points():
    net = DeepONet(1, 1, spatial_dims=1, sensors=17, width=16, basis=4).double()
    x = torch.linspace(0, 1, 33, dtype=torch.float64)
    coarse = (x**2)[None, None]
    fine = (torch.linspace(0, 1, 65, dtype=torch.float64) ** 2)[None, None]
    a, b = net(coarse), net(fine)[..., ::2]
    assert (a - b).abs().max() < 1e-2 * a.abs().max()


def test_domain_padding_and_coordinates():
    x = torch.randn(2, 3, 10, 7)
    for pad in (DomainPadding(3), DomainPadding(2, symmetric=True), DomainPadding(fraction=0.2)):
        y = pad.pad(x, 2)
        assert y.shape[-2] > 10 and y.shape[-1] > 7
        torch.testing.assert_close(pad.unpad(y, (10, 7)), x)
    grid = GridCoordinates("nodes")(x, 2)
    assert grid.shape == (2, 5, 10, 7)
    torch.testing.assert_close(grid[0, 3, :, 0], torch.linspace(0, 1, 10))
    torch.testing.assert_close(GridCoordinates("periodic")(x, 2)[0, 4, 0], torch.arange(7) / 7)


def test_tfno_has_fewer_parameters_and_runs():
    dense = FNO(1, 1, modes=6, width=16, layers=2, spatial_dims=2)
    tucker = TFNO(1, 1, modes=6, width=16, layers=2, spatial_dims=2, rank=0.2)
    count = lambda m: sum(p.numel() for p in m.conv.kernel.parameters())  # noqa: E731
    assert count(tucker.layers[0]) < 0.1 * count(dense.layers[0])
    assert tucker(torch.randn(2, 1, 20, 20)).shape == (2, 1, 20, 20)
