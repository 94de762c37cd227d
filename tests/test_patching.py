"""Multi-grid patching (MG-TFNO's domain decomposition): exact split/stitch identities, coarse views, runs."""

import json
import math

import numpy as np
import pytest
import torch

from helpers import one_line_error
from model_helpers import assert_all_params_get_grad, band_limited, neuralop_file_with_bad_value
from pdeforge.data import open_dataset
from pdeforge.errors import PdeforgeError
from pdeforge.models import FNO, MODELS, ChannelMLP, MultigridPatching, build_model, window_indices
from pdeforge.training import PatchingConfig, TrainConfig, load_run, train
from pdeforge.training._data import SampleSource
from pdeforge.training._run import per_sample_errors
from test_cli import invoke


def coarse_view(x: torch.Tensor, starts: list[int], step: int, m: list[int]) -> torch.Tensor:
    """Points ``start_a + step * j`` (``j < m_a``) of the periodic field ``x [C, *space]``, by rolling and tiling."""
    view = x
    for axis, (start, size) in enumerate(zip(starts, m, strict=True)):
        dim = 1 + axis
        n = view.shape[dim]
        view = torch.roll(view, -start, dims=dim)  # position `start` first
        view = torch.cat([view] * math.ceil(step * size / n + 1), dim=dim)  # long enough to read step * size points
        view = view.narrow(dim, 0, step * size).unfold(dim, 1, step).squeeze(-1)
    return view


class Softsign1x1(torch.nn.Module):
    """A pointwise (1x1) model of correctly rounded operations only: ``z / (1 + |z|)`` with ``z = W x + b``.

    Every output point goes through the same sequence of IEEE operations, whatever the tensor's layout or
    batch, so a split of the field must reproduce its output bit for bit (a matmul's blocking need not).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, dtype=torch.float64))
        self.bias = torch.nn.Parameter(torch.randn(out_channels, dtype=torch.float64))

    def forward(self, x):
        outs = []
        for k in range(self.weight.shape[0]):
            z = self.bias[k] + self.weight[k, 0] * x[:, 0]
            for c in range(1, x.shape[1]):
                z = z + self.weight[k, c] * x[:, c]
            outs.append(z / (1 + z.abs()))
        return torch.stack(outs, dim=1)


@pytest.mark.parametrize("space,patches,padding,boundary", [
    ((20,), 4, 0.25, "periodic"), ((21,), 4, 0.5, "reflect"), ((14, 10), 2, 0.25, "periodic"),
    ((15, 9), 4, 0.4, "reflect"), ((8, 8), 8, 1.0, "periodic"), ((7, 6, 5), 2, 0.5, "reflect")])
def test_patching_a_pointwise_model_without_levels_is_the_model_on_the_whole_field(space, patches, padding, boundary):
    """levels = 0, a 1x1 model: split, apply, crop and stitch reproduce the model on the whole field exactly.

    The cases include grids the patches do not divide (21 points in 4 patches, 15 x 9 in 4 x 4): the last
    patch runs past the end and its excess is cropped.
    """
    torch.manual_seed(0)
    x = torch.randn(3, 2, *space, dtype=torch.float64)
    exact = Softsign1x1(2, 3)
    with torch.no_grad():
        assert torch.equal(MultigridPatching(exact, 0, patches, padding, boundary=boundary)(x), exact(x))
        mlp = ChannelMLP(2, 5, 3).double()  # matmuls: equal up to the rounding of their summation order
        torch.testing.assert_close(MultigridPatching(mlp, 0, patches, padding, boundary=boundary)(x), mlp(x),
                                   rtol=0, atol=1e-15)
    net = MultigridPatching(exact, 0, patches, padding, boundary=boundary)
    sizes = [net.patch_size(n) for n in space]
    assert all(q > 0 for _, q in sizes)  # the padding is really there, and cropped
    assert net.split(x).shape == (3 * patches ** len(space), 2, *[p + 2 * q for p, q in sizes])


def test_one_patch_without_padding_or_levels_is_the_inner_model_itself():
    """P = 1, no padding, no levels: the decomposition is the identity, so any model (a TFNO here) is unchanged."""
    torch.manual_seed(0)
    inner = build_model("tfno", 2, 3, 2, **MODELS["tfno"].tiny).double()
    x = band_limited((14, 10), 2, kmax=2)
    with torch.no_grad():
        assert torch.equal(MultigridPatching(inner, 0, 1, 0.0)(x), inner(x))


@pytest.mark.parametrize("space,patches,levels,padding", [((24,), 4, 3, 0.25), ((16, 12), 2, 2, 0.25),
                                                         ((12, 16), 4, 2, 0.5), ((15, 10), 2, 1, 0.2)])
def test_coarse_view_channels_are_subsampled_windows_of_the_periodic_field(space, patches, levels, padding):
    """Level l of patch i is every 2^l-th point of the periodic field from s_i - (2^l - 1) floor(p/2) - 2^l q on."""
    c, d = 2, len(space)
    net = MultigridPatching(torch.nn.Identity(), levels, patches, padding, boundary="periodic")
    x = torch.randn(2, c, *space, dtype=torch.float64)
    views = net.split(x)
    sizes = [net.patch_size(n) for n in space]
    m = [p + 2 * q for p, q in sizes]
    assert views.shape == (2 * patches ** d, c * (levels + 1), *m)
    for b in range(2):
        for k, patch in enumerate(np.ndindex(*[patches] * d)):
            for level in range(levels + 1):
                step = 2 ** level
                starts = [i * p - (step - 1) * (p // 2) - step * q for i, (p, q) in zip(patch, sizes, strict=True)]
                expected = coarse_view(x[b], starts, step, m)
                got = views[b * patches ** d + k, level * c:(level + 1) * c]
                assert torch.equal(got, expected), (b, patch, level)
    # in every case the coarsest view is wider than the field, so it reads the field more than once around
    assert all(2 ** levels * size > n for size, n in zip(m, space, strict=True))


def test_reflected_views_equal_numpy_reflect_padding():
    """Bounded data: positions outside the grid mirror about the end points exactly as numpy's "reflect" pad."""
    n, patches, levels, padding = 9, 3, 2, 0.5
    index = window_indices(n, patches, levels, 2, "reflect")
    field = np.arange(n) * 1.0
    wide = 40  # more than any view reaches beyond either end
    padded = np.pad(field, wide, mode="reflect")
    p = 3
    for level in range(levels + 1):
        step = 2 ** level
        for i in range(patches):
            positions = i * p - (step - 1) * (p // 2) + step * np.arange(-2, p + 2)
            np.testing.assert_array_equal(field[index[level, i].numpy()], padded[positions + wide])
    net = MultigridPatching(torch.nn.Identity(), levels, patches, padding, boundary="reflect")
    assert net.patch_size(n) == (3, 2)


def test_periodic_patching_commutes_with_shifts_by_whole_patches():
    """Shifting a periodic input by one patch length permutes the patches, so the output shifts the same way."""
    torch.manual_seed(0)
    inner = build_model("fno", 2 * 3, 1, 2, **MODELS["fno"].tiny).double()
    net = MultigridPatching(inner, 2, 4, 0.25).double()
    x = torch.randn(2, 2, 16, 12, dtype=torch.float64)
    with torch.no_grad():
        y, y_shifted = net(x), net(torch.roll(x, (4, -3), dims=(2, 3)))
    torch.testing.assert_close(y_shifted, torch.roll(y, (4, -3), dims=(2, 3)), rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # one grid point is not a whole patch: the decomposition is not shift-invariant
        off = net(torch.roll(x, 1, dims=2))
    assert (off - torch.roll(y, 1, dims=2)).abs().max() > 1e-6


@pytest.mark.parametrize("dims", [1, 2])
def test_every_parameter_of_a_wrapped_fno_gets_a_gradient(dims):
    levels = 2
    inner = build_model("fno", 2 * (levels + 1), 3, dims, width=8, modes=3, layers=2, padding=0.2, mlp_expansion=0.5)
    net = MultigridPatching(inner, levels, 2, 0.25, boundary="reflect")
    x = torch.randn(3, 2, *((20,) if dims == 1 else (14, 10)), requires_grad=True)
    assert net(x).shape == (3, 3, *x.shape[2:])
    assert_all_params_get_grad(net, x)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().min() > 0  # every input point reaches the output


@pytest.mark.parametrize("name,dims", [(name, d) for name, spec in MODELS.items() if spec.fit is None
                                       for d in spec.spatial_dims if d in (1, 2)])
def test_every_table_model_taking_the_channels_can_be_patched(name, dims):
    """Any 1-D/2-D row of the table, built for in_channels (levels + 1), runs and trains inside the wrapper."""
    levels, grid = 1, (20,) if dims == 1 else (14, 10)
    torch.manual_seed(0)
    inner = build_model(name, 2 * (levels + 1), 3, dims, **MODELS[name].tiny)
    net = MultigridPatching(inner, levels, 2, 0.25)
    x = torch.randn(2, 2, *grid)
    assert net(x).shape == (2, 3, *grid)
    assert_all_params_get_grad(net, x)


def test_bad_settings_are_refused():
    with pytest.raises(PdeforgeError, match="an axis of 3 points cannot hold 4 patches") as info:
        MultigridPatching(torch.nn.Identity(), 1, 4, 0.1)(torch.randn(1, 1, 8, 3))
    assert "\n" not in str(info.value)
    for levels, patches, padding in ((-1, 2, 0.1), (1, 0, 0.1), (1, 2, -0.5), (1, 2, float("nan"))):
        with pytest.raises(ValueError):
            MultigridPatching(torch.nn.Identity(), levels, patches, padding)
    with pytest.raises(ValueError, match="boundary must be one of periodic, reflect"):
        MultigridPatching(torch.nn.Identity(), 1, 2, 0.1, boundary="zeros")
    assert PatchingConfig() == PatchingConfig(levels=0, patches=2, padding=0.25)
    assert TrainConfig().patching is None


def test_a_patched_run_round_trips_through_its_directory(tmp_path):
    """Train one epoch with patching, load the run: the same wrapper, and exactly the recorded test errors."""
    data = neuralop_file_with_bad_value(tmp_path / "tiny.pt", 24, 0, 0.5)
    config = TrainConfig(model="fno", model_options={"width": 6, "modes": 2, "layers": 1, "coordinates": "none",
                                                     "projection_channels": 8},
                         patching={"levels": 2, "patches": 2, "padding": 0.25}, epochs=1, batch_size=4, n_val=4,
                         n_test=4)
    cpu = torch.device("cpu")
    summary = train(tmp_path / "run", config, data, device=cpu)
    assert math.isfinite(summary["test_rel_l2"])
    stored = json.loads((tmp_path / "run" / "run.json").read_text())["config"]["patching"]
    assert stored == {"levels": 2, "patches": 2, "padding": 0.25, "chunks": 1}
    spec, model = load_run(tmp_path / "run", device=cpu)
    wrapper = model.model
    assert isinstance(wrapper, MultigridPatching) and isinstance(wrapper.inner, FNO)
    assert (wrapper.levels, wrapper.patches, wrapper.padding_fraction, wrapper.boundary) == (2, 2, 0.25, "reflect")
    assert wrapper.inner.lifting.weight.shape == (6, 1 * (2 + 1))  # in_channels (levels + 1) inputs
    recorded = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    stream = SampleSource(open_dataset(data), spec.layout, device=cpu)
    l2, _ = per_sample_errors(model, stream, tuple(recorded["span"]), 4, periodic=spec.periodic)
    assert l2.tolist() == recorded["rel_l2"]


def test_patching_from_the_command_line(tmp_path):
    data = neuralop_file_with_bad_value(tmp_path / "tiny.pt", 16, 0, 0.5)
    small = ["--set", "epochs=1", "--set", "batch_size=4", "--set", "n_val=4", "--set", "n_test=4",
             "--set", "model_options.width=6", "--set", "model_options.modes=2", "--set", "model_options.layers=1"]
    result = invoke("train", "--data", data, "--model", "tfno", "--out", tmp_path / "run", *small,
                    "--set", "patching.levels=2", "--set", "patching.patches=4")
    assert result.exit_code == 0, result.output
    spec, model = load_run(tmp_path / "run", device=torch.device("cpu"))
    assert spec.config.patching == PatchingConfig(levels=2, patches=4, padding=0.25)
    assert isinstance(model.model, MultigridPatching) and model.model.patches == 4
    for command in (("evaluate", tmp_path / "run", "--superres", "none"), ("report", tmp_path / "run")):
        result = invoke(*command)
        assert result.exit_code == 0, result.output
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<b>tfno</b> on multi-grid patches (4 per axis, 2 coarse levels, padding 0.25 of a patch)" in page
    bad = [("patching.patches=9", "patching.patches=9 is more than the 8 points"),
           ("patching.levels=-1", "'patching.levels'"),
           ("patching.level=1", "known keys: chunks, levels, padding, patches"),
           ("patching.padding=inf", "'patching.padding'")]
    for setting, fragment in bad:
        result = invoke("train", "--data", data, "--model", "tfno", "--out", tmp_path / "bad", *small,
                        "--set", setting)
        one_line_error(result, fragment)
    result = invoke("train", "--data", data, "--model", "pod-deeponet", "--out", tmp_path / "pod", *small[:8],
                    "--set", "patching.levels=1")
    one_line_error(result, "cannot be patched")


def _saved_bytes(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The output of ``net(x)`` and the bytes autograd keeps for its backward pass."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = net(x)
    return y, total


def test_chunked_patches_give_the_same_gradients_and_keep_fewer_activations():
    torch.manual_seed(0)
    inner = build_model("fno", 2 * 2, 1, 2, width=8, modes=3, layers=2, padding=0.2).double()
    x = torch.randn(2, 2, 24, 24, dtype=torch.float64)
    grads, saved = [], []
    for chunks in (1, 4):
        net = MultigridPatching(inner, levels=1, patches_per_axis=2, padding_fraction=0.25, chunks=chunks)
        inner.zero_grad()
        y, kept = _saved_bytes(net, x)
        y.square().sum().backward()
        grads.append([p.grad.clone() for p in inner.parameters()])
        saved.append(kept)
        with torch.no_grad():
            assert torch.allclose(net(x), y, rtol=0, atol=1e-12)
    for g1, g4 in zip(*grads, strict=True):
        assert torch.allclose(g1, g4, rtol=1e-10, atol=1e-12)
    assert saved[1] < 0.5 * saved[0], saved  # checkpointed groups: only their inputs are kept
