"""MgNO: the smoothing step, linearity of the V-cycle, the grid hierarchy on odd sizes, a classical multigrid inside."""

import doctest
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pdeforge.models._mgno as mgno_module
from pdeforge.errors import PdeforgeError
from pdeforge.models import FNO, MgNO, MgNOLayer, MultigridLevel, VCycle, build_model, level_shapes

SIZES = [85, 33, 17]
"""Odd grid sizes of the nodes grids pdeforge's elliptic problems use (both ends included)."""


def _stencil(d: int, centre: float, neighbour: float = 0.0) -> torch.Tensor:
    """A 3^d single-channel kernel with ``centre`` in the middle and ``neighbour`` at the 2 d axis neighbours."""
    w = torch.zeros((3,) * d, dtype=torch.float64)
    mid = (1,) * d
    w[mid] = centre
    for axis in range(d):
        for side in (0, 2):
            index = list(mid)
            index[axis] = side
            w[tuple(index)] = neighbour
    return w[None, None]


def _tensor_stencil(d: int, taps) -> torch.Tensor:
    """The tensor product of one 1-D three-tap stencil over ``d`` axes, as a single-channel kernel."""
    one = torch.tensor(taps, dtype=torch.float64)
    w = one
    for _ in range(d - 1):
        w = w[..., None] * one
    return w[None, None]


# ---------------------------------------------------------------------------------------------
# One smoothing step u <- u + S * (f - A * u)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_with_S_zero_the_smoother_is_the_identity_on_u(d):
    level = MultigridLevel(3, 4, pre=2, post=1, spatial_dims=d, operator=True).double()
    with torch.no_grad():
        for s in [*level.pre, *level.post]:
            s.weight.zero_()
    f, u = torch.randn(2, 3, *(9,) * d, dtype=torch.float64), torch.randn(2, 4, *(9,) * d, dtype=torch.float64)
    assert torch.equal(level.smooth(f, u, level.pre), u)
    assert torch.equal(level.smooth(f, u, level.post), u)
    assert not torch.equal(level.residual(f, u), f)  # A itself is not zero: S alone makes the step trivial


def test_a_smoothing_step_is_u_plus_S_of_the_residual_with_zero_dirichlet_ghosts():
    """One channel, 2-D: the step equals the stencil sums written out on the grid padded by zeros."""
    torch.manual_seed(0)
    level = MultigridLevel(1, 1, pre=1, post=0, spatial_dims=2, operator=True).double()
    a = level.operator.weight.detach()[0, 0].numpy()
    s = level.pre[0].weight.detach()[0, 0].numpy()
    f, u = torch.randn(1, 1, 7, 5, dtype=torch.float64), torch.randn(1, 1, 7, 5, dtype=torch.float64)

    def correlate(w, v):  # sum_{p,q} w[p, q] v[i + p - 1, j + q - 1], v = 0 outside the grid
        padded = np.pad(v, 1)
        return sum(w[p, q] * padded[p:p + v.shape[0], q:q + v.shape[1]] for p in range(3) for q in range(3))

    expected = u[0, 0].numpy() + correlate(s, f[0, 0].numpy() - correlate(a, u[0, 0].numpy()))
    np.testing.assert_allclose(level.smooth(f, u, level.pre)[0, 0].detach().numpy(), expected, rtol=0, atol=1e-13)
    np.testing.assert_allclose(level.smooth(f, None, level.pre)[0, 0].detach().numpy(),
                               correlate(s, f[0, 0].numpy()), rtol=0, atol=1e-13)  # from the zero guess


# ---------------------------------------------------------------------------------------------
# The V-cycle is linear; the nonlinearity is only outside it


@pytest.mark.parametrize("d,shape", [(1, (85,)), (2, (33, 17)), (2, (16, 10)), (3, (9, 8, 7))])
def test_the_v_cycle_is_linear_in_f_and_u(d, shape):
    torch.manual_seed(1)
    cycle = VCycle(2, 3, smoothing=(1, 2, 1, 2), post_smoothing=1, spatial_dims=d).double()
    f1, f2 = (torch.randn(2, 2, *shape, dtype=torch.float64) for _ in range(2))
    u1, u2 = (torch.randn(2, 3, *shape, dtype=torch.float64) for _ in range(2))
    a, b = 0.7, -1.9
    with torch.no_grad():
        combined = cycle(a * f1 + b * f2, a * u1 + b * u2)
        superposed = a * cycle(f1, u1) + b * cycle(f2, u2)
        zero_guess = cycle(f1)
        torch.testing.assert_close(combined, superposed, rtol=0, atol=1e-12)
        torch.testing.assert_close(zero_guess, cycle(f1, torch.zeros_like(u1)), rtol=0, atol=1e-12)
        assert combined.abs().max() > 1e-2  # a non-trivial linear map


def test_the_mgno_layer_is_its_activation_of_an_affine_map():
    """sigma(W_Mg x + W x + b): with sigma the identity the layer is affine (superposition about x = 0)."""
    torch.manual_seed(2)
    layer = MgNOLayer(VCycle(2, 4, smoothing=(1, 1, 2)), 2, 4, torch.nn.GELU()).double()
    x, y = torch.randn(3, 2, 17, 33, dtype=torch.float64), torch.randn(3, 2, 17, 33, dtype=torch.float64)
    with torch.no_grad():
        pre = layer.cycle(x) + layer.skip(x)
        torch.testing.assert_close(layer(x), F.gelu(pre), rtol=0, atol=1e-13)
        layer.act = torch.nn.Identity()
        zero = layer(torch.zeros_like(x))
        torch.testing.assert_close(zero, layer.skip.bias.view(1, -1, 1, 1).expand_as(zero), rtol=0, atol=0)
        torch.testing.assert_close(layer(2.0 * x - 3.0 * y) - zero,
                                   2.0 * (layer(x) - zero) - 3.0 * (layer(y) - zero), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# The grid hierarchy: any size, coarse points on fine points, no crop


def _record_shapes(cycle: VCycle):
    seen = {"restrict": [], "prolong": []}
    hooks = []
    for kind in seen:
        for index, module in enumerate(getattr(cycle, kind)):
            def hook(mod, args, out, kind=kind, index=index):
                seen[kind].append((index, tuple(args[0].shape[2:]), tuple(out.shape[2:])))
            hooks.append(module.register_forward_hook(hook))
    return seen, hooks


@pytest.mark.parametrize("shape", [(85, 85), (33, 33), (17, 17), (85, 33), (17, 16), (85,), (33,), (9, 17, 5)])
def test_restriction_and_prolongation_shapes_at_every_level(shape):
    levels = 6
    cycle = VCycle(1, 2, smoothing=(1,) * (levels - 1) + (2,), spatial_dims=len(shape)).double()
    seen, hooks = _record_shapes(cycle)
    x = torch.randn(2, 1, *shape, dtype=torch.float64)
    with torch.no_grad():
        y = cycle(x)
    for h in hooks:
        h.remove()
    grids = level_shapes(shape, levels)
    assert seen["restrict"] == [(i, grids[i], grids[i + 1]) for i in range(levels - 1)]
    assert sorted(seen["prolong"]) == [(i, grids[i + 1], grids[i]) for i in range(levels - 1)]
    assert y.shape == (2, 2, *shape)


def test_level_shapes_of_the_odd_nodes_grids():
    assert level_shapes((85,), 6) == [(85,), (43,), (22,), (11,), (6,), (3,)]
    assert level_shapes((33,), 6) == [(33,), (17,), (9,), (5,), (3,), (2,)]
    assert level_shapes((17,), 6) == [(17,), (9,), (5,), (3,), (2,), (1,)]
    for n in (85, 33, 17):  # halving with ceil: the points 0, 2, 4, ..., n - 1 of an odd axis
        assert level_shapes((n,), 2)[1] == (len(range(0, n, 2)),)


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("n", [*SIZES, 16])
def test_restriction_by_the_centre_tap_is_injection_onto_the_even_points(d, n):
    """Coarse point j sits on fine point 2 j at every size: no shift and no crop."""
    cycle = VCycle(1, 1, smoothing=(1, 1), spatial_dims=d).double()
    with torch.no_grad():
        cycle.restrict[0].weight.copy_(_stencil(d, 1.0))
        f = torch.randn(3, 1, *(n,) * d, dtype=torch.float64)
        assert torch.equal(cycle.restrict[0](f), f[(..., *[slice(None, None, 2)] * d)])


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("n", SIZES)
def test_prolongation_by_the_linear_stencil_reproduces_multilinear_functions_on_odd_grids(d, n):
    """The transposed convolution, told the fine size, is exact (multi)linear interpolation from the even points."""
    cycle = VCycle(1, 1, smoothing=(1, 1), spatial_dims=d).double()
    axes = torch.meshgrid(*[torch.linspace(0, 1, n, dtype=torch.float64)] * d, indexing="ij")
    g = 0.3 + sum((k + 1.5) * x for k, x in enumerate(axes)) + (math.prod(axes) if d > 1 else 0.0)
    g = g[None, None]
    with torch.no_grad():
        cycle.prolong[0].weight.copy_(_tensor_stencil(d, [0.5, 1.0, 0.5]))
        coarse = g[(..., *[slice(None, None, 2)] * d)]
        torch.testing.assert_close(cycle.prolong[0](coarse, output_size=[n] * d), g, rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# A known answer: with the classical weights the V-cycle is a convergent multigrid for Poisson


def _classical_multigrid(d: int, n: int, levels: int) -> VCycle:
    """Five-point (three-point) Laplacian ``A_l`` on spacing ``h_l = 2^l / (n + 1)``, damped Jacobi ``S``
    (omega = 2/3), full weighting ``R``, multilinear ``P``: the textbook V(2, 2)-cycle, as MgNO weights."""
    cycle = VCycle(1, 1, smoothing=(2,) * levels, post_smoothing=2, spatial_dims=d).double()
    with torch.no_grad():
        for index, grid in enumerate(cycle.grids):
            h = 2**index / (n + 1)
            grid.operator.weight.copy_(_stencil(d, 2 * d / h**2, -1 / h**2))
            for s in [*grid.pre, *grid.post]:
                s.weight.copy_(_stencil(d, (2 / 3) * h**2 / (2 * d)))
        for r in cycle.restrict:
            r.weight.copy_(_tensor_stencil(d, [0.25, 0.5, 0.25]))
        for p in cycle.prolong:
            p.weight.copy_(_tensor_stencil(d, [0.5, 1.0, 0.5]))
    return cycle


def test_with_classical_weights_the_v_cycle_solves_the_dirichlet_poisson_problem():
    """Zero padding is u = 0 outside the grid on every level: repeated cycles converge to the solution of the
    Dirichlet 5-point system -Lap_h u = f, with the coarse grids doing what smoothing alone cannot."""
    n, d = 17, 2
    cycle = _classical_multigrid(d, n, levels=4)
    gen = torch.Generator().manual_seed(3)
    f = torch.randn(1, 1, n, n, generator=gen, dtype=torch.float64)
    h = 1 / (n + 1)
    lap1 = (2 * torch.eye(n) - torch.diag(torch.ones(n - 1), 1) - torch.diag(torch.ones(n - 1), -1)).double() / h**2
    matrix = torch.kron(lap1, torch.eye(n, dtype=torch.float64)) + torch.kron(torch.eye(n, dtype=torch.float64), lap1)
    exact = torch.linalg.solve(matrix, f.flatten()).reshape(f.shape)
    with torch.no_grad():
        torch.testing.assert_close(cycle.grids[0].operator(exact), f, rtol=0, atol=1e-9)  # A_h is that matrix
        u, history = None, []
        for _ in range(45):
            u = cycle(f, u)
            history.append(float((f - cycle.grids[0].operator(u)).norm() / f.norm()))
        smoothing_only = _classical_multigrid(d, n, levels=4)
        for p in smoothing_only.prolong:
            p.weight.zero_()  # no coarse-grid correction: 4 damped Jacobi sweeps per cycle
        v = None
        for _ in range(45):
            v = smoothing_only(f, v)
    # A cycle removes over 40 % of the residual (measured: 0.56 per cycle; textbook vertex-centred grids do better,
    # but a stride-2 zero-padded convolution puts each coarse boundary one fine cell further out).
    assert max(b / a for a, b in zip(history[:-1], history[1:], strict=True)) < 0.6, history
    torch.testing.assert_close(u, exact, rtol=0, atol=1e-9 * float(exact.abs().max()))
    assert (v - exact).norm() > 0.1 * exact.norm()  # 180 Jacobi sweeps alone are still far from it


# ---------------------------------------------------------------------------------------------
# The model


def test_the_default_mgno_has_about_the_default_fnos_parameters_on_darcy():
    """The default configuration compares with the default FNO at equal size: 1 in, 1 out channel, 2-D."""
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    mgno, fno = build_model("mgno", 1, 1, 2), build_model("fno", 1, 1, 2)
    assert abs(count(mgno) / count(fno) - 1) < 0.01, (count(mgno), count(fno))
    width, levels = 52, 6
    per_cycle = 9 * width * width * (7 + 6 + 5 + 5)  # S: 7 steps, A: 6 levels, R and P: 5 transfers each
    first = 9 * width * (7 + 6) + 9 * 5 + 9 * width * width * 5 + 2 * width  # f has 1 channel in layer 1
    assert count(mgno) == first + 4 * (per_cycle + width * width + width) + width
    assert len(mgno.layers) == 5 and mgno.layers[0].cycle.levels == levels


@pytest.mark.parametrize("n", SIZES)
def test_mgno_keeps_the_grid_of_odd_sizes(n):
    net = MgNO(1, 2, width=4, layers=2, smoothing=(1,) * 5 + (2,)).double()
    x = torch.randn(2, 1, n, n, dtype=torch.float64)
    y = net(x)
    assert y.shape == (2, 2, n, n) and torch.isfinite(y).all()
    assert net(x[..., :, : n - 4]).shape == (2, 2, n, n - 4)


def test_the_coarse_levels_make_one_layer_reach_across_the_grid():
    """A point change of the input reaches the whole grid through the coarse levels (a global operator)."""
    torch.manual_seed(4)
    net = MgNO(1, 1, width=4, layers=1, smoothing=(1, 1, 1, 1, 2)).double()
    x = torch.randn(1, 1, 33, 33, dtype=torch.float64)
    bumped = x.clone()
    bumped[..., 0, 0] += 1.0
    with torch.no_grad():
        change = (net(bumped) - net(x)).abs()[0, 0]
    assert change[-1, -1] > 0  # the opposite corner, 32 points away from a 3x3 stencil's reach of a few points
    shallow = MgNO(1, 1, width=4, layers=1, smoothing=(1, 1)).double()
    with torch.no_grad():
        near = (shallow(bumped) - shallow(x)).abs()[0, 0]
    assert near[-1, -1] == 0 and near[0, 0] > 0  # two levels reach only a few points


@pytest.mark.parametrize("options,fragment", [
    ({"smoothing": 2}, "smoothing must be a list"),
    ({"smoothing": [1]}, "at least 2 levels"),
    ({"smoothing": [1, 0]}, "at least one pre-smoothing step"),
    ({"smoothing": [1, 1.5]}, "whole numbers of steps"),
    ({"post_smoothing": -1}, "post_smoothing >= 0"),
    ({"width": 0}, "width >= 1"),
])
def test_bad_options_end_in_one_clear_line(options, fragment):
    with pytest.raises(PdeforgeError, match=fragment) as info:
        build_model("mgno", 1, 1, 2, **options)
    assert "\n" not in str(info.value)


def test_mgno_runs_with_the_fno_in_one_pipeline_of_shapes():
    """Same signature as every model: [batch, channel, *space] in and out, 1-D included."""
    for d, shape in ((1, (64,)), (2, (24, 20))):
        x = torch.randn(2, 3, *shape)
        mgno = build_model("mgno", 3, 2, d, width=4, layers=1, smoothing=[1, 2])
        fno = FNO(3, 2, modes=4, width=4, layers=1, spatial_dims=d)
        assert mgno(x).shape == fno(x).shape == (2, 2, *shape)


# ---------------------------------------------------------------------------------------------
# Documentation


def _public():
    for name in mgno_module.__all__:
        obj = getattr(mgno_module, name)
        yield pytest.param(obj, id=name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if inspect.isfunction(member) and not attr.startswith("_"):
                    yield pytest.param(member, id=f"{name}.{attr}")


@pytest.mark.parametrize("obj", list(_public()))
def test_every_public_name_has_a_numpydoc_docstring(obj):
    doc = inspect.getdoc(obj)
    assert doc and doc.splitlines()[0].strip()
    params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
    if params:
        assert "Parameters\n----------" in doc
        for p in params:
            assert p in doc, f"parameter {p} undocumented"
    if inspect.isfunction(obj) and inspect.signature(obj).return_annotation not in ("None", None):
        assert "Returns\n-------" in doc
    if obj in (MgNO, VCycle):
        assert "References\n----------" in doc and "ICLR 2024" in doc


def test_docstring_examples_run():
    result = doctest.testmod(mgno_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
