"""Trajectory tasks: the all2all and window samplers, recurrent rollouts, the H^-1 residual and Spectral-Refiner."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from pdeforge.data import generate, open_dataset
from pdeforge.errors import PdeforgeError
from pdeforge.evaluation._refine import refine_sample
from pdeforge.models import STFNO, widen_spectral_conv
from pdeforge.problems import Burgers, BurgersConfig, NavierStokes, NavierStokesConfig
from pdeforge.problems.navier_stokes import VorticityResidual
from pdeforge.solvers import choose_method, method_for
from pdeforge.training import ChannelNormaliser, NormalisedModel, TrainConfig
from pdeforge.training._data import FieldLayout, SampleSource
from pdeforge.training._tasks import Rollout, TaskConfig, TrajectoryView, task_split

NS_EXACT = {"resolution": 16, "solver_resolution": 16, "t_final": 2.0, "n_times": 8, "dt": 0.05, "nu": 1e-2}
"""A Navier-Stokes setting solved on the stored grid with a fixed step: the residual's solver step is exact."""


@pytest.fixture(scope="module")
def burgers(tmp_path_factory):
    out = tmp_path_factory.mktemp("burgers") / "data"
    generate(Burgers(BurgersConfig(resolution=32, n_times=5, t_final=0.5)), n=5, seed=3, out=out, shard_size=2)
    return out


@pytest.fixture(scope="module")
def navier_stokes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ns") / "data"
    generate(NavierStokes(NavierStokesConfig(**NS_EXACT)), n=4, seed=5, out=out)
    return out


def _snapshots(path):
    source = open_dataset(path)
    inputs, outputs = source.read(0, len(source))
    return np.concatenate([inputs["u0"][:, None], outputs["u"]], axis=1), source


def test_all2all_yields_every_pair_once_per_trajectory_and_never_crosses_trajectories(burgers):
    raw, source = _snapshots(burgers)
    count = raw.shape[1]  # K + 1 snapshots
    view = TrajectoryView(source, TaskConfig(kind="all2all"), cache_mb=0)  # streamed from the shards
    assert view.per_trajectory == count * (count + 1) // 2  # (K + 1)(K + 2) / 2
    assert len(view) == len(source) * view.per_trajectory
    times = np.concatenate([[0.0], source.coords()["t"]])
    for lo, hi in view.blocks():  # read block by block, in random order within each, as training does
        rows = np.sort(np.random.default_rng(lo).permutation(np.arange(lo, hi)))
        inputs, outputs = view.take(rows)
        for r, row in enumerate(rows):
            n = row // view.per_trajectory
            i = [a for a in range(count) if np.array_equal(raw[n, a], inputs["state"][r])]
            j = [b for b in range(count) if np.array_equal(raw[n, b], outputs["target"][r])]
            assert len(i) == 1 and len(j) == 1 and i[0] <= j[0]
            assert inputs["lead_time"][r] == pytest.approx(np.full(32, times[j[0]] - times[i[0]]))
    seen = {(int(a), int(b)) for a, b in view.items}
    assert seen == {(a, b) for a in range(count) for b in range(a, count)}
    nxt = TrajectoryView(source, TaskConfig(kind="all2all", pairs="next"))
    assert [tuple(p) for p in nxt.items] == [(a, a + 1) for a in range(count - 1)]


def test_windows_slide_within_a_trajectory_and_splits_never_share_one(burgers):
    raw, source = _snapshots(burgers)
    task = TaskConfig(kind="rollout", history=2, horizon=2, stride=1)
    view = TrajectoryView(source, task)
    assert view.per_trajectory == raw.shape[1] - 3
    inputs, outputs = view.read(0, len(view))
    for r in range(len(view)):
        n, start = divmod(r, view.per_trajectory)
        np.testing.assert_array_equal(inputs["history"][r], raw[n, start:start + 2])
        np.testing.assert_array_equal(outputs["future"][r], raw[n, start + 2:start + 4])
    split = task_split(view, n_train=3, n_val=1, n_test=1)
    p = view.per_trajectory
    assert split.train == (0, 3 * p) and split.val == (3 * p, 4 * p) and split.test == (4 * p, 5 * p)
    layout = FieldLayout.of(view)
    assert (layout.in_channels, layout.out_channels, layout.space) == (2, 2, (32,))


def test_task_shorthand_and_one_line_refusals(burgers):
    assert TrainConfig.model_validate({"task": "rollout"}).task.kind == "rollout"
    with pytest.raises(ValueError, match="unroll"):
        TaskConfig(kind="rollout", horizon=2, unroll=3)
    source = open_dataset(burgers)
    with pytest.raises(PdeforgeError, match="needs 9 snapshots; the trajectories .* have 6"):
        TrajectoryView(source, TaskConfig(kind="spacetime", history=4, horizon=4, offset=1))


class SolverStep(nn.Module):
    """A test double: the one-step model that is pdeforge's own solver step over one snapshot interval."""

    def __init__(self, residual: VorticityResidual) -> None:
        super().__init__()
        self.residual = residual

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.residual.advance(window[:, -1:]).to(window.dtype)


def _identity(channels: int) -> ChannelNormaliser:
    return ChannelNormaliser(channels, 2).double()


def test_a_rollout_of_the_exact_solver_step_reproduces_the_stored_trajectory(navier_stokes):
    source = open_dataset(navier_stokes)
    config = NavierStokesConfig(**NS_EXACT)
    grid = NavierStokes(config).grid
    # dt = 0.05: the generating solver's steps
    residual = VorticityResidual(config, grid, 0.25, 5, choose_method(NavierStokes(config)).run)
    view = TrajectoryView(source, TaskConfig(kind="rollout", history=2, horizon=6, offset=1))
    x, y = SampleSource(view, FieldLayout.of(view), device=torch.device("cpu"), dtype=torch.float64).read(0, 4)
    rollout = Rollout(NormalisedModel(SolverStep(residual), _identity(2), _identity(1)), 2, 6, 1)
    pred = rollout(x)
    scale = y.abs().max()
    # stored in float32: each step starts from a snapshot rounded to float32, and errors carry over six steps
    assert float((pred - y).abs().max() / scale) < 2e-6
    forced = rollout.unroll(x, 6, truth=y, teacher=torch.ones(6, dtype=torch.bool))
    one_step = torch.cat([residual.advance(torch.cat([x[:, -1:], y[:, :5]], 1)[:, s:s + 1]) for s in range(6)], 1)
    torch.testing.assert_close(forced, one_step, rtol=0, atol=1e-12)  # teacher forcing feeds the truth


def test_h_minus1_residual_vanishes_on_the_solver_trajectory_and_grows_with_a_perturbation():
    config = NavierStokesConfig(**NS_EXACT)
    problem = NavierStokes(config)
    w0 = problem.sample_inputs(0, range(2))["w0"]
    w = problem.solve({"w0": w0}, method_for(problem)).outputs["w"]
    trajectory = torch.cat([w0[:, None], w], 1).double()
    residual = VorticityResidual(config, problem.grid, config.t_final / config.n_times, 5,
                                 choose_method(problem).run)
    scale = float(trajectory.abs().max()) / residual.interval
    exact = residual.h_minus1(trajectory)
    assert float(exact.max()) < 1e-13 * scale
    bump = torch.cos(2 * math.pi * 3 * problem.grid.mesh()[0]).double()
    sizes = [float(residual.h_minus1(trajectory + eps * bump).mean()) for eps in (1e-6, 1e-4, 1e-2)]
    assert sizes[0] > 1e3 * float(exact.max()) and sizes[0] < sizes[1] < sizes[2]
    assert sizes[1] / sizes[0] == pytest.approx(100, rel=0.05)  # linear in a small perturbation


def test_spectral_refiner_never_raises_the_residual_and_changes_only_the_last_layer():
    torch.manual_seed(0)
    config = NavierStokesConfig(**NS_EXACT)
    problem = NavierStokes(config)
    w0 = problem.sample_inputs(0, range(1))["w0"]
    w = torch.cat([w0[:, None], problem.solve({"w0": w0}, method_for(problem)).outputs["w"]], 1).float()
    x, truth = w[:, 1:4], w[:, 4:8]
    net = STFNO(3, 4, spatial_dims=2, modes=3, width=6, layers=3, time_padding=2, projection_channels=8)
    model = NormalisedModel(net, ChannelNormaliser(3, 2), ChannelNormaliser(4, 2))
    before = copy.deepcopy(model.state_dict())
    start = widen_spectral_conv(copy.deepcopy(net.last.conv), (4, 9, 9)).kernel.weight.detach()
    residual = VorticityResidual(config, problem.grid, config.t_final / config.n_times, 5,
                                 choose_method(problem).run)
    history = refine_sample(model, x, residual, steps=15, lr=1e-2, truth=truth)
    h = history["h_minus1"]
    assert len(h) == 16 and all(b <= a for a, b in zip(h, h[1:], strict=False)) and h[-1] < 0.99 * h[0]
    after = model.state_dict()
    for key, value in before.items():
        if not key.startswith("model.last.conv."):
            assert torch.equal(after[key], value), key
    assert net.last.conv.modes == (4, 9, 9)  # every frequency of the padded (4 + 2) x 16 x 16 output grid
    assert not torch.equal(after["model.last.conv.kernel.weight"], start)


def test_untruncating_the_last_layer_keeps_the_function():
    torch.manual_seed(1)
    net = STFNO(4, 6, spatial_dims=2, modes=3, width=5, layers=3, time_padding=2).double()
    x = torch.randn(2, 4, 12, 12, dtype=torch.float64)
    y = net(x)
    wide = net.untruncate((12, 12))
    assert wide.modes == (5, 7, 7)
    torch.testing.assert_close(net(x), y, rtol=0, atol=1e-12)


def test_rollout_normalisers_share_one_statistic_per_channel_over_the_window():
    step = NormalisedModel(nn.Identity(), ChannelNormaliser(3, 1), ChannelNormaliser(1, 1))
    rollout = Rollout(step, 3, 2, 1)
    x = torch.randn(8, 3, 10) * 2 + 5
    y = torch.randn(8, 2, 10) * 2 + 5
    rollout.fit_normalisers([(x, y)])
    every = torch.cat([x, y], 1)
    assert step.outputs.mean.item() == pytest.approx(float(every.mean()), rel=1e-5)
    torch.testing.assert_close(step.inputs.mean, step.outputs.mean.repeat(3))
    torch.testing.assert_close(step.inputs.std, step.outputs.std.repeat(3))


def test_a_suite_mixes_rollout_and_spacetime_models_only_on_the_same_windows():
    from pathlib import Path

    from pdeforge.evaluation import suite_from_mapping

    window = {"history": 2, "horizon": 3, "offset": 1}
    base = {"data": "d", "split": {"n_train": 8, "n_test": 2}, "budget": {"epochs": 1},
            "train": {"task": {"kind": "spacetime", **window}}}
    suite = suite_from_mapping({**base, "models": [{"name": "fno", "train": {"task": {"kind": "rollout", **window}}},
                                                   {"name": "fno3d"}]}, "s.yaml", Path("/x"))
    assert [suite.train_config(m, 1).task.kind for m in suite.models] == ["rollout", "spacetime"]
    other = {"kind": "rollout", **window, "horizon": 4}
    with pytest.raises(PdeforgeError, match="different samples"):
        suite_from_mapping({**base, "models": [{"name": "fno", "train": {"task": other}}, {"name": "fno3d"}]},
                           "s.yaml", Path("/x"))


def test_a_trained_rollout_run_reports_its_windows_errors_per_predicted_snapshot(burgers, tmp_path):
    from pdeforge.evaluation import evaluate_run
    from pdeforge.training import load_run, train

    config = TrainConfig.model_validate({
        "task": {"kind": "rollout", "history": 2, "horizon": 3, "offset": 1, "teacher_forcing": 0.5},
        "model": "fno", "model_options": {"width": 6, "modes": 3, "layers": 2, "projection_channels": 8},
        "epochs": 2, "batch_size": 2, "n_train": 3, "n_val": 1, "n_test": 1})
    summary = train(tmp_path / "run", config, burgers, device=torch.device("cpu"))
    metrics = evaluate_run(tmp_path / "run", device=torch.device("cpu"), superres=[])
    source = open_dataset(burgers)
    assert metrics["lead_time"]["t"] == pytest.approx(list(source.coords()["t"][2:5]))  # snapshots 3..5
    spec, model = load_run(tmp_path / "run", device=torch.device("cpu"))
    raw, _ = _snapshots(burgers)
    x = torch.from_numpy(raw[4:5, 1:3]).float()
    with torch.no_grad():
        pred = model(x).double().numpy()[0]
    truth = raw[4, 3:6]
    direct = [np.linalg.norm(pred[s] - truth[s]) / np.linalg.norm(truth[s]) for s in range(3)]
    assert metrics["lead_time"]["rel_l2"] == pytest.approx(direct, rel=1e-4)
    whole = np.linalg.norm(pred - truth) / np.linalg.norm(truth)
    assert summary["test_rel_l2"] == pytest.approx(whole, rel=1e-4)
