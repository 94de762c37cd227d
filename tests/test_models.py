"""Neural operators: spectral-layer mathematics, gradients, invariants, the model table."""

import copy
import doctest
import inspect
import math
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from jaxtyping import jaxtyped
from safetensors.torch import load_file, save_file

import pdeforge.models
import pdeforge.models._fno as fno_module
from model_helpers import THROWAWAY, assert_all_params_get_grad, band_limited, neuralop_file_with_bad_value
from pdeforge._typing import InFields, OutFields
from pdeforge.errors import PdeforgeError
from pdeforge.models import (
    FNO,
    MODELS,
    TFNO,
    ChannelMLP,
    DeepONet,
    DomainPadding,
    GridCoordinates,
    PODDeepONet,
    SpectralConv,
    TuckerSpectralKernel,
    build_model,
    fit_pod,
    kept_modes,
    model_names,
    model_options,
    truncated_irfft,
    truncated_rfft,
    tucker_ranks,
)
from pdeforge.training import TrainConfig, load_run, train

BACKENDS = ["dft", "fft"]


def _kept_index(shape, modes):
    return [torch.tensor([k % n for k in kept_modes(n, m, last=a == len(shape) - 1)[0]])
            for a, (n, m) in enumerate(zip(shape, modes, strict=True))]


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
    for g, g1 in zip(grads, grads1, strict=True):
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


# ---------------------------------------------------------------------------------------------
# Table-driven: every row of MODELS inherits these checks (a test-only row does too, see below).

GRID = {1: (20,), 2: (14, 10), 3: (7, 6, 5)}
"""The grid of the shared checks, by number of spatial axes."""

RESOLUTION = {"periodic": {"kmax": 2, "n": {1: 32, 2: 24, 3: 16}, "rtol": 3e-3},
              "nodes": {"kmax": 1, "n": {1: 33, 2: 25, 3: 17}, "rtol": 2e-2}}
"""Stated tolerances of resolution invariance: the relative difference between a model's output on
``n`` points and its output on the refined grid at the common points, for the same smooth input.
Spectral models ("periodic": n and 2n points j/n) differ only by the aliasing of the harmonics that
their nonlinearities create; models that interpolate to sensors ("nodes": n and 2n - 1 points
j/(n - 1)) by the O(h^2) error of multilinear interpolation."""


def table_cases():
    return [pytest.param(name, d, id=f"{name}-{d}d") for name, spec in MODELS.items() for d in spec.spatial_dims]


def tiny(name: str, dims: int, *, seed: int = 0, dtype=torch.float64, fit_grid=None):
    """The table's tiny instance of ``name`` (fit step done on random outputs when it has one)."""
    spec = MODELS[name]
    torch.manual_seed(seed)
    net = build_model(name, 2, 3, dims, **spec.tiny).to(dtype)
    if spec.fit is not None:
        gen = torch.Generator().manual_seed(seed + 100)
        spec.fit(net, torch.randn(12, 3, *(fit_grid or GRID[dims]), generator=gen, dtype=dtype))
    return net


@jaxtyped(typechecker=None)
def honours_its_signature(x: torch.Tensor, y: torch.Tensor) -> bool:
    """``x: InFields -> y: OutFields`` with one binding of ``batch`` and ``*space`` (jaxtyping, checked by hand)."""
    return isinstance(x, InFields) and isinstance(y, OutFields)


def check_gradients(name: str, dims: int) -> None:
    net = tiny(name, dims, dtype=torch.float32)
    x = torch.randn(4, 2, *GRID[dims])
    y = net(x)
    assert y.shape == (4, 3, *GRID[dims]) and honours_its_signature(x, y)
    assert not honours_its_signature(x, y[:1]) and not honours_its_signature(x, y[..., :-1])
    assert_all_params_get_grad(net, x)


def check_float32_and_float64(name: str, dims: int) -> None:
    """Forward and backward run in both precisions and agree to float32 rounding."""
    net64 = tiny(name, dims)
    net32 = copy.deepcopy(net64).float()
    x64 = band_limited(GRID[dims], 2, kmax=2, batch=3).requires_grad_()
    x32 = x64.detach().float().requires_grad_()
    results = {}
    for net, x in ((net64, x64), (net32, x32)):
        y = net(x)
        assert y.dtype == x.dtype and torch.isfinite(y).all()
        grads = torch.autograd.grad((y.square().mean() + y.mean()), [x, *net.parameters()])
        assert all(g.dtype == x.dtype and torch.isfinite(g).all() for g in grads)
        results[x.dtype] = (y.detach().double(), torch.cat([g.double().flatten() for g in grads]))
    (y64, g64), (y32, g32) = results[torch.float64], results[torch.float32]
    assert (y32 - y64).norm() <= 1e-5 * y64.norm(), float((y32 - y64).norm() / y64.norm())
    assert (g32 - g64).norm() <= 1e-4 * g64.norm(), float((g32 - g64).norm() / g64.norm())


def check_resolution_invariance(name: str, dims: int) -> None:
    spec = MODELS[name]
    case, nodes = RESOLUTION[spec.resolution], spec.resolution == "nodes"
    coarse = case["n"][dims]
    fine = 2 * coarse - 1 if nodes else 2 * coarse
    net = tiny(name, dims)
    x_coarse = band_limited((coarse,) * dims, 2, kmax=case["kmax"], nodes=nodes)
    x_fine = band_limited((fine,) * dims, 2, kmax=case["kmax"], nodes=nodes)
    common = (..., *[slice(None, None, 2)] * dims)
    torch.testing.assert_close(x_fine[common], x_coarse)  # the same function on both grids
    with torch.no_grad():
        y_coarse, y_fine = net(x_coarse), net(x_fine)[common]
    rel = (y_fine - y_coarse).norm() / y_coarse.norm()
    assert rel < case["rtol"], float(rel)
    assert y_coarse.std() > 1e-3  # not a trivially constant output


def check_safetensors_round_trip(name: str, dims: int, path: Path) -> None:
    """Weights (and buffers such as a POD basis) saved as safetensors reload to bitwise-equal outputs."""
    net = tiny(name, dims)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path)
    torch.manual_seed(1)
    fresh = build_model(name, 2, 3, dims, **MODELS[name].tiny).double()  # other weights, no fit
    x = band_limited(GRID[dims], 2, kmax=2, batch=3)
    if MODELS[name].fit is None:
        assert not torch.equal(fresh(x), net(x))
    fresh.load_state_dict(load_file(path))
    with torch.no_grad():
        assert torch.equal(fresh(x), net(x))


@pytest.mark.parametrize("name,dims", table_cases())
def test_every_parameter_of_every_model_gets_a_gradient(name, dims):
    check_gradients(name, dims)


def test_every_fno_component_gets_a_gradient():
    """Padding, coordinates and the channel MLP together (the table's tiny FNO has none of the first two)."""
    net = build_model("fno", 2, 3, 2, width=8, modes=3, layers=2, padding=2, mlp_expansion=0.5)
    x = torch.randn(4, 2, 14, 10)
    assert net(x).shape == (4, 3, 14, 10)
    assert_all_params_get_grad(net, x)


@pytest.mark.parametrize("name,dims", table_cases())
def test_every_model_runs_forward_and_backward_in_float32_and_float64(name, dims):
    check_float32_and_float64(name, dims)


@pytest.mark.parametrize("name,dims", [c for c in table_cases() if MODELS[c.values[0]].resolution is not None])
def test_every_model_declared_resolution_invariant_is(name, dims):
    check_resolution_invariance(name, dims)


@pytest.mark.parametrize("name,dims", table_cases())
def test_every_model_round_trips_through_safetensors_exactly(name, dims, tmp_path):
    check_safetensors_round_trip(name, dims, tmp_path / "model.safetensors")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_table_row_is_complete(name):
    spec = MODELS[name]
    assert spec.summary and "\n" not in spec.summary
    assert any(str(year) in spec.reference for year in range(1950, 2100)), spec.reference
    assert set(spec.tiny) <= set(model_options(name))
    assert set(spec.spatial_dims) <= {1, 2, 3} and spec.resolution in ("periodic", "nodes", None)
    forward = typing.get_type_hints(type(build_model(name, 1, 1, spec.spatial_dims[0], **spec.tiny)).forward)
    assert forward["x"] is InFields and forward["return"] is OutFields  # shapes in the types


def test_unet_is_tied_to_its_grid_and_the_table_says_so():
    """The U-Net declares no resolution invariance, and indeed has none: its 3x3 stencils see grid cells."""
    net = tiny("unet", 2)
    x_coarse, x_fine = band_limited((24, 24), 2, kmax=2), band_limited((48, 48), 2, kmax=2)
    with torch.no_grad():
        y_coarse, y_fine = net(x_coarse), net(x_fine)[..., ::2, ::2]
    assert MODELS["unet"].resolution is None
    assert (y_fine - y_coarse).norm() > 10 * RESOLUTION["periodic"]["rtol"] * y_coarse.norm()


def test_a_model_added_to_the_table_is_built_tested_trained_and_listed(monkeypatch, tmp_path):
    """One row in MODELS is all a model needs: the shared checks, train() and `pdeforge train` take it."""
    from test_cli import invoke

    monkeypatch.setitem(MODELS, "throwaway", THROWAWAY)
    assert model_names()[-1] == "throwaway" and model_options("throwaway") == {"hidden": 4}
    with pytest.raises(PdeforgeError, match="known: .*throwaway"):
        build_model("nope", 1, 1, 2)
    with pytest.raises(PdeforgeError, match="no option 'width' \\(options: hidden\\)"):
        build_model("throwaway", 1, 1, 2, width=3)
    for dims in THROWAWAY.spatial_dims:
        check_gradients("throwaway", dims)
        check_float32_and_float64("throwaway", dims)
        check_resolution_invariance("throwaway", dims)
        check_safetensors_round_trip("throwaway", dims, tmp_path / f"throwaway{dims}.safetensors")
    data = neuralop_file_with_bad_value(tmp_path / "tiny.pt", 24, 0, 0.5)
    config = TrainConfig(model="throwaway", model_options={"hidden": 3}, epochs=2, batch_size=4, n_val=4, n_test=4)
    cpu = torch.device("cpu")
    summary = train(tmp_path / "run", config, data, device=cpu)
    assert summary["epochs"] == 2 and math.isfinite(summary["test_rel_l2"])
    spec, model = load_run(tmp_path / "run", device=cpu)
    assert spec.config.model == "throwaway" and isinstance(model.model, ChannelMLP)
    result = invoke("train", "--data", data, "--model", "throwaway", "--out", tmp_path / "cli", "--set", "epochs=2",
                    "--set", "batch_size=4", "--set", "n_val=4", "--set", "n_test=4", "--set", "model_options.hidden=2")
    assert result.exit_code == 0, result.output
    assert "trained throwaway for 2 epochs" in result.output


def test_every_model_list_of_the_cli_and_the_config_is_the_table():
    """`pdeforge models` and TrainConfig list the table's rows, a row added before they load included.

    (`pdeforge train --help` points to `pdeforge models` instead of listing
    the names, so that it need not import the table and torch.)
    """
    from test_cli import invoke

    help_text = invoke("models").output
    description = TrainConfig.model_fields["model"].description
    for name in MODELS:
        assert f"{name}: {MODELS[name].summary[:20]}" in help_text and name in description
    assert "pdeforge models" in " ".join(invoke("train", "--help").output.replace("\u2502", " ").split())
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from model_helpers import THROWAWAY; "
              "from pdeforge.models import MODELS; MODELS['throwaway'] = THROWAWAY; "
              "from typer.testing import CliRunner; from pdeforge.cli import app; "
              "from pdeforge.training import TrainConfig; "
              "print(CliRunner().invoke(app, ['models']).output); "
              "print(TrainConfig.model_fields['model'].description)")
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout
    help_part, description_part = out.rstrip().rsplit("\n", 1)
    names = [line.split(":")[0] for line in help_part.splitlines() if line.split(":")[0] in (*MODELS, "throwaway")]
    assert names == [*MODELS, "throwaway"]
    assert description_part == f"model name ({', '.join([*MODELS, 'throwaway'])})"


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
    """On nested node grids whose common nodes include the sensors, the outputs agree to rounding; so do they
    for an affine input, which multilinear interpolation to the sensors reproduces exactly on any grid."""
    net = DeepONet(1, 1, spatial_dims=1, sensors=17, width=16, basis=4).double()
    x = torch.linspace(0, 1, 33, dtype=torch.float64)
    coarse = (x**2)[None, None]
    fine = (torch.linspace(0, 1, 65, dtype=torch.float64) ** 2)[None, None]
    a, b = net(coarse), net(fine)[..., ::2]
    assert (a - b).abs().max() < 1e-12 * a.abs().max()
    net2 = DeepONet(2, 2, spatial_dims=2, sensors=6, width=16, basis=3).double()
    affine = lambda n: torch.stack(torch.meshgrid(*[torch.linspace(0, 1, n, dtype=torch.float64)] * 2,  # noqa: E731
                                                  indexing="ij"))[None] * torch.tensor([2.0, -1.0]).view(1, 2, 1, 1)
    a, b = net2(affine(30)), net2(affine(59))[..., ::2, ::2]
    torch.testing.assert_close(b, a, rtol=0, atol=1e-12)


def test_deeponet_is_the_sum_of_branch_times_trunk_products():
    """G(a)(y)_c = sum_k b_ck(a) t_ck(y) + b_0c with the branch on the sensor nodes and the trunk on the grid's."""
    net = DeepONet(2, 3, spatial_dims=2, sensors=5, width=16, basis=4).double()
    with torch.no_grad():
        net.bias.normal_()
    x = torch.randn(4, 2, 9, 13, dtype=torch.float64)
    at_sensors = x[..., ::2, ::3]  # sensors j/4 are every 2nd node j/8 and every 3rd node j/12
    branch = net.branch.net(at_sensors.reshape(4, -1)).reshape(4, 3, 4)
    y1, y2 = np.meshgrid(np.linspace(0, 1, 9), np.linspace(0, 1, 13), indexing="ij")
    points = torch.from_numpy(np.stack([y1.ravel(), y2.ravel()], axis=1))
    trunk = net.trunk(points).reshape(9 * 13, 3, 4)
    expected = torch.einsum("bck,pck->bcp", branch, trunk) + net.bias[:, None]
    torch.testing.assert_close(net(x), expected.reshape(4, 3, 9, 13), rtol=0, atol=1e-12)


def test_pod_deeponet_is_branch_times_basis_plus_mean_and_projects_like_numpy_svd():
    gen = torch.Generator().manual_seed(2)
    outputs = torch.randn(30, 2, 6, 5, generator=gen, dtype=torch.float64)
    model = PODDeepONet(1, 2, 2, modes=8, sensors=4, width=8).double()
    basis = model.fit_pod(outputs)
    modes = model.pod_modes.reshape(2, 8, -1)
    for c in range(2):  # the rank-8 projection of the centred training outputs is numpy's truncated SVD
        centred = (outputs[:, c] - outputs[:, c].mean(0)).reshape(30, -1)
        u, s, vt = np.linalg.svd(centred.numpy(), full_matrices=False)
        projection = centred @ modes[c].T @ modes[c]
        np.testing.assert_allclose(projection.numpy(), (u[:, :8] * s[:8]) @ vt[:8], rtol=0, atol=1e-12)
        np.testing.assert_allclose(basis.singular_values[c].numpy(), s[:8], rtol=1e-13)
    x = torch.randn(3, 1, 6, 5, dtype=torch.float64)
    branch = model.branch(x).reshape(3, 2, 8)
    expected = torch.einsum("bck,ckp->bcp", branch, modes) + model.pod_mean.reshape(2, -1)
    torch.testing.assert_close(model(x), expected.reshape(3, 2, 6, 5), rtol=0, atol=1e-12)


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


def _tucker_weight_by_einsum(kernel: TuckerSpectralKernel) -> torch.Tensor:
    """W[i, o, k1, k2] = sum G[a, b, c, d] U_in[i, a] U_out[o, b] U_1[k1, c] U_2[k2, d] (complex)."""
    core = torch.complex(kernel.core[0], kernel.core[1])
    factors = [torch.complex(f[0], f[1]) for f in kernel.factors]
    return torch.einsum("abcd,ia,ob,kc,ld->iokl", core, *factors)


def _as_dense(w: torch.Tensor) -> torch.Tensor:
    return torch.stack([w.real, w.imag]).permute(3, 4, 1, 0, 2)  # [2, in, out, k1, k2] -> [k1, k2, in, 2, out]


def _copy_all_but_kernels(source: torch.nn.Module) -> dict:
    return {k: v for k, v in source.state_dict().items() if ".conv.kernel." not in k}


@pytest.mark.parametrize("contraction", ["factorized", "reconstructed"])
def test_tfno_is_the_fno_whose_dense_weights_are_the_reconstructed_tucker_tensors(contraction):
    tfno = TFNO(2, 3, modes=(4, 3), width=6, layers=2, rank=0.5, contraction=contraction,
                projection_channels=8).double()
    fno = FNO(2, 3, modes=(4, 3), width=6, layers=2, projection_channels=8).double()
    state = _copy_all_but_kernels(tfno)
    for index, layer in enumerate(tfno.layers):
        dense = _as_dense(_tucker_weight_by_einsum(layer.conv.kernel))
        torch.testing.assert_close(layer.conv.kernel.full_weight(), dense, rtol=0, atol=1e-13)
        state[f"layers.{index}.conv.kernel.weight"] = dense
    fno.load_state_dict(state)
    for shape in [(16, 12), (7, 5)]:  # the full kept block and a coarse grid's sub-block
        x = torch.randn(2, 2, *shape, dtype=torch.float64)
        torch.testing.assert_close(tfno(x), fno(x), rtol=0, atol=1e-12)


def test_full_rank_tfno_represents_an_fno_exactly():
    """rank=1.0 with identity factors and the dense weights as cores: the TFNO is the FNO."""
    fno = FNO(1, 2, modes=(3, 3), width=5, layers=3, projection_channels=8).double()
    tfno = TFNO(1, 2, modes=(3, 3), width=5, layers=3, rank=1.0, projection_channels=8).double()
    tfno.load_state_dict(_copy_all_but_kernels(fno), strict=False)
    with torch.no_grad():
        for dense, tucker in zip(fno.layers, tfno.layers, strict=True):
            kernel = tucker.conv.kernel
            assert kernel.ranks == kernel.shape
            kernel.core.copy_(dense.conv.kernel.weight.permute(3, 2, 4, 0, 1))
            for f in kernel.factors:
                f.zero_()
                f[0] = torch.eye(f.shape[1], dtype=torch.float64)
    x = torch.randn(3, 1, 18, 14, dtype=torch.float64)
    torch.testing.assert_close(tfno(x), fno(x), rtol=0, atol=1e-12)


def test_tfno_parameter_count_is_the_tucker_formula():
    """Per layer 2 (prod r + sum n r) real numbers for the [in, out, 2m, m] weight, the rest as the FNO."""
    dense = FNO(1, 1, modes=6, width=16, layers=2, spatial_dims=2)
    tucker = TFNO(1, 1, modes=6, width=16, layers=2, spatial_dims=2, rank=0.2)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    shape = (16, 16, 12, 6)
    ranks = tucker_ranks(shape, 0.2)
    assert ranks == (4, 4, 3, 2)  # ceil(0.2 n)
    per_layer = 2 * (math.prod(ranks) + sum(n * r for n, r in zip(shape, ranks, strict=True)))
    for layer in tucker.layers:
        assert count(layer.conv.kernel) == per_layer == 2 * (96 + 64 + 64 + 36 + 12)
    dense_kernel = 12 * 6 * 16 * 2 * 16
    assert count(tucker) == count(dense) - 2 * dense_kernel + 2 * per_layer
    assert count(tucker.layers[0].conv.kernel) < 0.1 * count(dense.layers[0].conv.kernel)
    assert tucker(torch.randn(2, 1, 20, 20)).shape == (2, 1, 20, 20)


# ---------------------------------------------------------------------------------------------
# Documentation: numpydoc on the public surface, examples that run.

MODULES = ["_deeponet", "_fno", "_fourier", "_layers", "_registry", "_spectral_conv", "_tucker", "_unet"]
PUBLISHED = {"FNO", "TFNO", "DeepONet", "PODDeepONet", "UNet2d", "SpectralConv", "TuckerSpectralKernel", "fit_pod"}


def _public_callables():
    """Every public class (with its public methods and forward) and function defined in pdeforge/models/."""
    found = {}
    for module in MODULES:
        mod = getattr(pdeforge.models, module)
        found.update({n: o for n, o in vars(mod).items()
                      if not n.startswith("_") and getattr(o, "__module__", None) == mod.__name__
                      and (inspect.isclass(o) or inspect.isfunction(o))})
    for name, obj in sorted(found.items()):
        if inspect.isclass(obj):
            yield pytest.param(obj, id=name)
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and not attr.startswith("_") and attr not in vars(torch.nn.Module):
                    yield pytest.param(member, id=f"{name}.{attr}")
                elif isinstance(member, classmethod):
                    yield pytest.param(member.__func__, id=f"{name}.{attr}")
            if "forward" in vars(obj):
                yield pytest.param(obj.forward, id=f"{name}.forward")
        elif inspect.isfunction(obj):
            yield pytest.param(obj, id=name)


@pytest.mark.parametrize("obj", list(_public_callables()))
def test_every_public_model_class_and_function_has_a_numpydoc_docstring(obj):
    doc = inspect.getdoc(obj)
    assert doc and doc.splitlines()[0].strip(), "no summary line"
    if inspect.isclass(obj):
        params = list(inspect.signature(obj).parameters)  # the constructor's (or the dataclass fields)
        if obj.__qualname__ in PUBLISHED:
            assert "References\n----------" in doc
    else:
        params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
        returns = inspect.signature(obj).return_annotation
        if returns not in ("None", None, inspect.Signature.empty):
            assert "Returns\n-------" in doc, "no Returns section"
        if obj.__qualname__ in PUBLISHED:
            assert "References\n----------" in doc
    if params:
        assert "Parameters\n----------" in doc, "no Parameters section"
        for p in params:
            if p not in ("args", "kwargs", "options"):
                assert p in doc, f"parameter {p} undocumented"


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    """What `python -m pytest --doctest-modules src/pdeforge/models` runs, inside the suite."""
    mod = getattr(pdeforge.models, module)
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    if module in ("_fno", "_deeponet", "_registry", "_fourier", "_tucker", "_unet"):
        assert result.attempted > 0
