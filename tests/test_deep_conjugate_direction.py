"""The deep conjugate direction method (Kaneda et al., ICML 2023) and its training pieces."""

import numpy as np
import pytest
import torch

from pdeforge.learned_solvers import (
    DirectionCNN,
    a_orthogonalize,
    dcdm,
    dcdm_loss,
    lanczos_ritz,
    learned_direction,
    load_direction_net,
    obstacle_poisson,
    random_obstacles,
    ritz_rhs,
    train_direction_net,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _layouts(count: int, n: int = 16, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(np.stack([random_obstacles(rng, n, count=(1, 3), size=(0.08, 0.2)) for _ in range(count)]))


def _rhs(fluid: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(fluid.shape, generator=g, dtype=F64) * fluid


def _textbook_cg(a: np.ndarray, b: np.ndarray, steps: int) -> list[np.ndarray]:
    x, r = np.zeros_like(b), b.copy()
    p, out = r.copy(), []
    for _ in range(steps):
        ap = a @ p
        alpha = (r @ r) / (p @ ap)
        x = x + alpha * p
        r_new = r - alpha * ap
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r = r_new
        out.append(x.copy())
    return out


def test_obstacle_operator_is_spd_with_identity_rows_on_solids():
    fluid = _layouts(3)
    op = obstacle_poisson(fluid)
    for i in range(3):
        a = op.to_scipy(i).toarray()
        assert np.array_equal(a, a.T)
        solid = ~fluid[i].numpy().ravel()
        np.testing.assert_array_equal(a[np.ix_(solid, solid)], np.eye(solid.sum()))
        assert not a[np.ix_(solid, ~solid)].any()
        assert np.linalg.eigvalsh(a).min() > 1e-4  # no sealed-off Neumann pocket


def test_identity_direction_reproduces_cg_iterates():
    fluid = _layouts(2)
    op = obstacle_poisson(fluid)
    b = _rhs(fluid)
    steps = 25
    iterates = []
    dcdm(op, b, rtol=0.0, maxiter=steps, callback=lambda k, x, r, d: iterates.append(x.clone()))
    for i in range(2):
        cg = _textbook_cg(op.to_scipy(i).toarray(), b[i].numpy().ravel(), steps)
        for k in range(steps):
            ref = cg[k]
            np.testing.assert_allclose(iterates[k][i].numpy().ravel(), ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def _nonlinear_map(r: torch.Tensor) -> torch.Tensor:
    """A fixed nonlinear direction map, so that conjugacy must come from the orthogonalisation."""
    return r + 0.5 * torch.tanh(3 * torch.roll(r, 1, dims=-1)) * r.abs().max()


@pytest.mark.parametrize("memory", [1, 2, 4])
def test_consecutive_directions_are_a_conjugate(memory):
    fluid = _layouts(2)
    op = obstacle_poisson(fluid)
    dirs = []
    dcdm(op, _rhs(fluid), rtol=0.0, maxiter=12, memory=memory,
         M=lambda r: _nonlinear_map(r) * fluid, callback=lambda k, x, r, d: dirs.append(d.clone()))

    def a_cos(u, v):
        au, av = op.matvec(u), op.matvec(v)
        return ((u * av).flatten(1).sum(1) / ((u * au).flatten(1).sum(1) * (v * av).flatten(1).sum(1)).sqrt()).abs()

    for k in range(1, len(dirs)):
        for lag in range(1, memory + 1):
            if k - lag >= 0:
                assert float(a_cos(dirs[k], dirs[k - lag]).max()) < 1e-10
    # Without the orthogonalisation the map's raw directions are far from conjugate.
    assert float(a_cos(_nonlinear_map(dirs[3]), dirs[3]).max()) > 1e-2


def test_a_orthogonalize_against_a_pair():
    op = obstacle_poisson(_layouts(1))
    g = torch.Generator().manual_seed(3)
    p1 = torch.randn(1, 16, 16, generator=g, dtype=F64)
    p2 = a_orthogonalize(torch.randn(1, 16, 16, generator=g, dtype=F64), [(p1, op.matvec(p1))])
    d = a_orthogonalize(torch.randn(1, 16, 16, generator=g, dtype=F64), [(p1, op.matvec(p1)), (p2, op.matvec(p2))])
    ad = op.matvec(d)
    scale = float((d * ad).sum().sqrt())
    for p in (p1, p2):
        assert abs(float((p * ad).sum())) < 1e-12 * scale * float((p * op.matvec(p)).sum().sqrt())


def test_loss_equals_its_closed_form_and_is_scale_invariant():
    fluid = torch.ones(2, 3, 3, dtype=torch.bool)
    fluid[1, 1, 1] = False
    op = obstacle_poisson(fluid)
    g = torch.Generator().manual_seed(1)
    b = torch.randn(2, 3, 3, generator=g, dtype=F64) * fluid
    q = torch.randn(2, 3, 3, generator=g, dtype=F64) * fluid
    expected = []
    for i in range(2):
        a = op.to_scipy(i).toarray()
        bi, qi = b[i].numpy().ravel(), q[i].numpy().ravel()
        step = (qi @ bi) / (qi @ a @ qi)
        expected.append(np.sum((bi - step * a @ qi) ** 2) / np.sum(bi**2))
    assert abs(float(dcdm_loss(op, b, q)) - np.mean(expected)) < 1e-14
    assert abs(float(dcdm_loss(op, b, -7.5 * q)) - np.mean(expected)) < 1e-14
    exact = torch.stack([torch.as_tensor(np.linalg.solve(op.to_scipy(i).toarray(), b[i].numpy().ravel())).reshape(3, 3)
                         for i in range(2)])
    assert float(dcdm_loss(op, b, exact)) < 1e-28
    assert 0 < float(dcdm_loss(op, b, q)) <= 1  # the best step along any q never increases ||r||


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = DirectionCNN(channels=4, levels=2, blocks=1)
    fluid = _layouts(2)
    b = _rhs(fluid).float()
    q = net(b[:, None])[:, 0] * fluid
    dcdm_loss(obstacle_poisson(fluid, dtype=torch.float32), b, q).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().max()) > 0, name


def test_lanczos_ritz_pairs_approximate_the_extreme_eigenpairs():
    fluid = _layouts(1)
    op = obstacle_poisson(fluid)
    values, vectors = lanczos_ritz(op, 80, np.random.default_rng(0), support=fluid[0])
    a = op.to_scipy(0).toarray()
    keep = fluid[0].numpy().ravel()
    exact = np.linalg.eigvalsh(a[np.ix_(keep, keep)])
    assert abs(float(values[0]) - exact[0]) < 1e-8 * exact[-1]
    assert abs(float(values[-1]) - exact[-1]) < 1e-8 * exact[-1]
    flat = vectors.flatten(1)
    np.testing.assert_allclose((flat @ flat.T).numpy(), np.eye(len(values)), atol=1e-10)
    assert float(vectors[:, ~fluid[0]].abs().max()) < 1e-12  # no component on solid cells
    b = ritz_rhs(values, vectors, 5, np.random.default_rng(1))
    np.testing.assert_allclose(b.flatten(1).norm(dim=1).numpy(), 1.0, rtol=1e-12)


def test_brief_training_lowers_the_loss_on_held_out_layouts(tmp_path):
    torch.manual_seed(0)
    n = 16
    fluid = _layouts(4, n, seed=5)
    rng = np.random.default_rng(0)
    rhs, layout = [], []
    for i in range(4):
        values, vectors = lanczos_ritz(obstacle_poisson(fluid[i:i + 1]), 60, rng, support=fluid[i])
        rhs.append(ritz_rhs(values, vectors, 48, rng))
        layout += [i] * 48
    rhs, layout = torch.cat(rhs).float(), torch.tensor(layout)
    train, held = layout < 3, layout == 3
    net = DirectionCNN(channels=8, levels=2, blocks=1)

    def held_out_loss():
        with torch.no_grad():
            b = rhs[held]
            mask = fluid[layout[held]]
            return float(dcdm_loss(obstacle_poisson(mask, dtype=torch.float32), b, net(b[:, None])[:, 0] * mask))

    before = held_out_loss()
    records = train_direction_net(net, fluid, rhs[train], layout[train], epochs=6, batch_size=12, lr=3e-3,
                                  run=tmp_path / "dcdm")
    losses = [r.train_loss for r in records]
    after = held_out_loss()
    assert losses[-1] < losses[0]
    assert after < 0.7 * before, (before, after)
    # The weights survive a round trip through the training checkpoint (safetensors) exactly.
    again = load_direction_net(tmp_path / "dcdm")
    x = rhs[:4, None]
    assert torch.equal(net(x), again(x))
    direction = learned_direction(again, fluid[layout[:4]])
    assert float(direction(rhs[:4].double())[~fluid[layout[:4]]].abs().max()) == 0.0


def test_residual_fallback_rescues_a_direction_map_that_stalls():
    fluid = _layouts(1)
    op = obstacle_poisson(fluid)
    b = _rhs(fluid)

    def stalling(r):  # returns a field orthogonal to r: no step along it can reduce the error
        d = torch.roll(r, 1, dims=-1) * fluid
        return d - ((d * r).flatten(1).sum(1) / (r * r).flatten(1).sum(1)).reshape(-1, 1, 1) * r

    stuck = dcdm(op, b, rtol=1e-8, maxiter=200, M=stalling)
    rescued = dcdm(op, b, rtol=1e-8, maxiter=200, M=stalling, fallback=0.1)
    assert not bool(stuck.converged[0]) and float(stuck.history[-1, 0]) > 0.5
    assert bool(rescued.converged[0])
