"""Latent Spectral Models: the trigonometric basis, the latent cross-attention, patches, padding, scales."""

import doctest
import inspect

import numpy as np
import pytest
import torch
from torch import nn

import pdeforge.models._lsm as lsm_module
from pdeforge.errors import PdeforgeError
from pdeforge.models import LSM, MODELS, LatentSpectralTransition, NeuralSpectralBlock, build_model, model_options
from pdeforge.models._lsm import attention_weights, patchify, spectral_basis, unpatchify
from test_models import test_every_public_model_class_and_function_has_a_numpydoc_docstring as check_numpydoc


def small_lsm(**options) -> LSM:
    settings = {"width": 8, "num_basis": 3, "num_tokens": 2, "patch_size": 3, "depth": 2, "heads": 2,
                "projection_channels": 8, **options}
    return build_model("lsm", 2, 3, 2, **settings).double()


def test_spectral_basis_is_the_cosines_and_sines_of_frequencies_pi_k_over_K():
    """Columns cos(pi k z / K), k = 0..K-1, then sin(pi k z / K), k = 1..K-1, checked against numpy."""
    z = torch.randn(3, 4, 5, dtype=torch.float64) * 4
    K = 5
    phi = spectral_basis(z, K)
    assert phi.shape == (3, 4, 5, 2 * K - 1)
    zz = z.numpy()
    for k in range(K):
        np.testing.assert_allclose(phi[..., k].numpy(), np.cos(np.pi * k * zz / K), rtol=0, atol=1e-14)
    for k in range(1, K):
        np.testing.assert_allclose(phi[..., K - 1 + k].numpy(), np.sin(np.pi * k * zz / K), rtol=0, atol=1e-14)


def test_spectral_basis_is_orthogonal_over_one_period():
    """On N uniform points of one period [-K, K) the Gram matrix is diag(1, 1/2, ..., 1/2): an orthogonal basis."""
    K, N = 6, 64
    z = -K + 2 * K * torch.arange(N, dtype=torch.float64) / N
    phi = spectral_basis(z, K)
    gram = phi.T @ phi / N
    expected = torch.diag(torch.tensor([1.0] + [0.5] * (2 * K - 2), dtype=torch.float64))
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-13)


def test_latent_transition_adds_the_trigonometric_series_with_its_coefficients():
    """z -> z + sum_k a_ck cos(pi k z / K) + sum_k b_ck sin(pi k z / K), per channel c, the same for every token."""
    K, C = 4, 3
    transition = LatentSpectralTransition(C, K).double()
    with torch.no_grad():
        transition.weight.normal_()
    z = torch.randn(2, C, 5, dtype=torch.float64)
    a, b = transition.weight[:, :K].detach(), transition.weight[:, K:].detach()
    expected = z.clone()
    for c in range(C):
        for k in range(K):
            expected[:, c] += a[c, k] * torch.cos(torch.pi * k * z[:, c] / K)
        for k in range(1, K):
            expected[:, c] += b[c, k - 1] * torch.sin(torch.pi * k * z[:, c] / K)
    torch.testing.assert_close(transition(z), expected, rtol=0, atol=1e-13)
    assert transition.weight.shape == (C, 2 * K - 1)


def test_cross_attention_rows_are_probability_vectors():
    q, k = torch.randn(2, 3, 4, 5, dtype=torch.float64) * 3, torch.randn(2, 3, 7, 5, dtype=torch.float64) * 3
    w = attention_weights(q, k)
    assert w.shape == (2, 3, 4, 7) and (w >= 0).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 4, dtype=torch.float64), rtol=0, atol=1e-14)


def test_latent_encoder_is_per_head_softmax_attention_of_the_learned_queries():
    """tokens[n, h d + j, t] = latent[h, t, j] + sum_l softmax_l(latent[h, t] . k[n, h, l]) v[n, h, l, j]."""
    C, heads, T = 6, 2, 3
    block = NeuralSpectralBlock(C, num_basis=2, num_tokens=T, patch=(2, 3), heads=heads).double()
    patches = torch.randn(5, C, 2, 3, dtype=torch.float64)
    tokens = block.encode(patches)
    assert tokens.shape == (5, C, T)
    kv = torch.einsum("oc,ncl->nol", block.keys_values.weight, patches.flatten(2)) + block.keys_values.bias[:, None]
    keys, values = kv[:, :C], kv[:, C:]
    d = C // heads
    for n in range(5):
        for h in range(heads):
            kh, vh = keys[n, h * d:(h + 1) * d].T, values[n, h * d:(h + 1) * d].T  # [L, d]
            weights = torch.softmax(block.latent[h] @ kh.T, dim=-1)  # [T, L]
            torch.testing.assert_close(tokens[n, h * d:(h + 1) * d], (block.latent[h] + weights @ vh).T,
                                       rtol=0, atol=1e-13)


def test_constant_values_make_the_latent_projections_exact_averages():
    """Rows of the attention sum to 1: a pixel-independent value v gives tokens latent + v; equal tokens t give
    every pixel x + t, whatever the queries and keys."""
    C, heads, T = 4, 2, 3
    block = NeuralSpectralBlock(C, num_basis=2, num_tokens=T, patch=(3, 3), heads=heads).double()
    v = torch.randn(C, dtype=torch.float64)
    with torch.no_grad():
        block.keys_values.weight[C:] = 0  # values no longer depend on the pixel; the keys still do
        block.keys_values.bias[C:] = v
    patches = torch.randn(7, C, 3, 3, dtype=torch.float64)
    expected = block.latent.detach().transpose(-1, -2).reshape(C, T) + v[:, None]
    torch.testing.assert_close(block.encode(patches), expected.expand(7, C, T), rtol=0, atol=1e-13)
    t = torch.randn(7, C, 1, dtype=torch.float64)
    torch.testing.assert_close(block.decode(patches, t.expand(7, C, T)), patches + t[..., None],
                               rtol=0, atol=1e-13)


def test_neural_spectral_block_gradients_match_finite_differences():
    block = NeuralSpectralBlock(4, num_basis=3, num_tokens=2, patch=(2, 2), heads=2).double()
    x = torch.randn(2, 4, 4, 6, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in block.named_parameters()]
    params = [x, *[p.detach().clone().requires_grad_() for p in block.parameters()]]

    def f(x, *weights):
        return torch.func.functional_call(block, dict(zip(names, weights, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.parametrize("shape,patch", [((12, 18), (3, 2)), ((6, 6), (6, 6)), ((5, 7), (1, 1))])
def test_patches_are_the_tiles_and_unpatchify_inverts_patchify(shape, patch):
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    patches = patchify(x, patch)
    n1, n2 = shape[0] // patch[0], shape[1] // patch[1]
    assert patches.shape == (2 * n1 * n2, 3, *patch)
    for b in range(2):
        for i in range(n1):
            for j in range(n2):
                tile = x[b, :, i * patch[0]:(i + 1) * patch[0], j * patch[1]:(j + 1) * patch[1]]
                assert torch.equal(patches[(b * n1 + i) * n2 + j], tile)
    assert torch.equal(unpatchify(patches, shape), x)


def test_padded_shape_is_the_next_multiple_that_every_scale_tiles():
    net = LSM(1, 1)  # the paper's Darcy setting: depth 4, 6x6 patches
    assert net.padded_shape((85, 85)) == (96, 96)  # the authors' padding of 11 at s = 85
    assert net.padded_shape((421, 33)) == (480, 96)
    odd = LSM(1, 1, width=8, patch_size=(3, 5), depth=2, heads=8)
    for n in range(1, 130):
        p1, p2 = odd.padded_shape((n, n))
        assert p1 % 12 == 0 and 0 <= p1 - n < 12 and p2 % 20 == 0 and 0 <= p2 - n < 20


class _Recorder(nn.Module):
    """An identity map that keeps what it was given."""

    def forward(self, x):
        self.seen = x
        return x


@pytest.mark.parametrize("shape", [(33, 33), (85, 85), (14, 10)])
def test_padding_and_cropping_are_exact_around_an_identity_inner_map(shape):
    """With the U-Net replaced by the identity the model is its pointwise maps: the zero padding and the crop
    change nothing, and the inner map sees the lifted field, zero-padded at the far end to the padded shape."""
    net = small_lsm(patch_size=6, depth=4)
    net.body = _Recorder()
    x = torch.randn(2, 2, *shape, dtype=torch.float64)
    lifted = net.lifting(net.coordinates(x, 2))
    expected = net.projection(net.head(lifted))
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-13)
    seen, (h, w) = net.body.seen, shape
    assert tuple(seen.shape[-2:]) == net.padded_shape(shape) == (96, 96)
    assert torch.equal(seen[..., :h, :w], lifted)
    assert not seen[..., h:, :].any() and not seen[..., :, w:].any()


@pytest.mark.parametrize("shape,patch,depth,padded", [((33, 33), 6, 4, (96, 96)), ((85, 85), 6, 4, (96, 96)),
                                                      ((33, 17), 3, 2, (36, 24)), ((9, 11), (1, 3), 3, (16, 24))])
def test_every_scale_has_the_stated_shape_for_odd_sizes(shape, patch, depth, padded):
    """Scale l has width 2^min(l, depth-1) w channels on the padded grid / 2^l, tiled by the patches; the
    output is on the input's grid."""
    net = small_lsm(patch_size=patch, depth=depth, width=4, heads=4)
    x = torch.randn(2, 2, *shape, dtype=torch.float64)
    assert net(x).shape == (2, 3, *shape)
    lifted = net.lifting(net.coordinates(x, 2))
    padded_field = torch.nn.functional.pad(lifted, (0, padded[1] - shape[1], 0, padded[0] - shape[0]))
    levels = net.body.levels(padded_field)
    assert len(levels) == depth + 1
    p = (patch, patch) if isinstance(patch, int) else patch
    for level, field in enumerate(levels):
        size = (padded[0] // 2**level, padded[1] // 2**level)
        assert field.shape == (2, 4 * 2 ** min(level, depth - 1), *size)
        assert size[0] % p[0] == 0 and size[1] % p[1] == 0


def test_default_options_are_the_papers_darcy_setting_and_the_parameter_count_is_the_formula():
    """d_model 64, 12 bases, 4 tokens, 6x6 patches, 4 scales down (scripts/darcy_lsm.sh of the authors' code)."""
    options = model_options("lsm")
    assert {k: options[k] for k in ("width", "num_basis", "num_tokens", "patch_size", "depth")} == {
        "width": 64, "num_basis": 12, "num_tokens": 4, "patch_size": 6, "depth": 4}
    net = build_model("lsm", 1, 1, 2)
    w, K, T = 64, 12, 4
    widths = [w, 2 * w, 4 * w, 8 * w, 8 * w]

    def double_conv(cin, cout, mid):  # two bias-free 3x3 convolutions, each with a batch norm (2 per channel)
        return 9 * cin * mid + 2 * mid + 9 * mid * cout + 2 * cout

    def block(c):  # learned queries, key/value map, query map, trigonometric coefficients
        return T * c + (2 * c * c + 2 * c) + (c * c + c) + c * (2 * K - 1)

    unet = double_conv(w, w, w) + sum(double_conv(a, b, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    unet += sum(double_conv(2 * widths[lv], widths[max(lv - 1, 0)], widths[lv]) for lv in range(4))
    pointwise = (3 * w + w) + (w * w + w) + (w * 128 + 128) + (128 + 1)  # lifting (with x, y), head, projection
    expected = unet + sum(block(c) for c in widths) + pointwise
    assert sum(p.numel() for p in net.parameters()) == expected == 19_185_985


@pytest.mark.parametrize("options,dims,fragment", [
    ({}, 1, "2-D only"),
    ({"width": 12, "heads": 8}, 2, "do not split into 8 heads"),
    ({"patch_size": [2, 3, 4]}, 2, "patch_size must be"),
    ({"coordinates": "polar"}, 2, "unknown coordinate layout"),
])
def test_bad_lsm_requests_are_one_line_errors(options, dims, fragment):
    with pytest.raises(PdeforgeError, match=fragment) as info:
        build_model("lsm", 1, 1, dims, **options)
    assert "\n" not in str(info.value)


def test_lsm_is_tied_to_its_grid_and_the_table_says_so():
    net = small_lsm()
    assert MODELS["lsm"].resolution is None and MODELS["lsm"].spatial_dims == (2,)
    from model_helpers import band_limited

    x_coarse, x_fine = band_limited((24, 24), 2, kmax=2), band_limited((48, 48), 2, kmax=2)
    with torch.no_grad():
        y_coarse, y_fine = net(x_coarse), net(x_fine)[..., ::2, ::2]
    assert (y_fine - y_coarse).norm() > 0.1 * y_coarse.norm()


def test_lsm_runs_in_eval_mode_on_a_single_sample():
    """Batch norm uses its running statistics after training: one sample at a time gives the batch's outputs."""
    net = small_lsm()
    x = torch.randn(3, 2, 14, 10, dtype=torch.float64)
    net(x)  # one training-mode pass updates the running statistics
    net.eval()
    with torch.no_grad():
        batch = net(x)
        torch.testing.assert_close(torch.cat([net(x[i:i + 1]) for i in range(3)]), batch, rtol=1e-12, atol=1e-12)


def _lsm_callables():
    for name in lsm_module.__all__:
        obj = getattr(lsm_module, name)
        yield pytest.param(obj, id=name)
        if inspect.isclass(obj):
            for attr in ("forward", "encode", "decode", "padded_shape"):
                if attr in vars(obj):
                    yield pytest.param(getattr(obj, attr), id=f"{name}.{attr}")


@pytest.mark.parametrize("obj", list(_lsm_callables()))
def test_every_public_lsm_callable_has_a_numpydoc_docstring(obj):
    check_numpydoc(obj)
    if inspect.isclass(obj):
        assert "References\n----------" in inspect.getdoc(obj)


def test_lsm_docstring_examples_run():
    result = doctest.testmod(lsm_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
