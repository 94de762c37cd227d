"""Bounded cost before work starts, configs that refuse non-numbers, and error advice that works when followed."""

import json
import time
import typing

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import one_line_error
from pdeforge.cli import app
from pdeforge.data import _memory, generate, open_dataset
from pdeforge.data._format import read_manifest
from pdeforge.errors import PdeforgeError
from pdeforge.problems import PROBLEMS, Darcy, DarcyConfig, NavierStokes, NavierStokesConfig
from pdeforge.training import TrainConfig

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def float_fields(model) -> list[str]:
    """Every field of a pydantic model whose annotation admits a float (``float`` or ``float | None``).

    A tuple of floats (a velocity vector) is not a float field; its components are refused alike (tested there).
    """
    names = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if annotation is float or (typing.get_origin(annotation) is not tuple and float in typing.get_args(annotation)):
            names.append(name)
    return names


FLOAT_CASES = [(problem, name) for problem, cls in PROBLEMS.items() for name in float_fields(cls.Config)]


def test_every_problem_has_float_fields_in_the_table():
    assert {problem for problem, _ in FLOAT_CASES} == set(PROBLEMS)
    assert ("darcy", "rtol") in FLOAT_CASES and ("navier-stokes", "nu") in FLOAT_CASES
    assert ("burgers", "dt") in FLOAT_CASES  # an optional float is a float field too


@pytest.mark.parametrize(("problem", "name"), FLOAT_CASES)
def test_non_finite_values_are_refused_for_every_float_field(tmp_path, problem, name):
    for text in ("inf", "-inf", "nan"):
        out = tmp_path / f"{name}-{text}"
        result = invoke("generate", problem, "--n", 1, "--out", out, "--set", f"{name}={text}")
        one_line_error(result, f"'{name}'", "finite number")
        assert not out.exists()


@pytest.mark.parametrize("name", float_fields(TrainConfig))
def test_non_finite_training_settings_are_refused(tmp_path, name):
    assert name in TrainConfig.model_fields
    for text in ("inf", "-inf", "nan"):
        result = invoke("train", "--data", tmp_path / "none", "--out", tmp_path / "run", "--set", f"{name}={text}")
        one_line_error(result, f"'{name}'", "finite number")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("model", "name", "allowed"), [
    (DarcyConfig, "coefficient", ("piecewise", "lognormal")),
    (DarcyConfig, "store_dtype", ("float32", "float64")),
    (NavierStokesConfig, "forcing", ("fno", "kolmogorov", "none")),
    (TrainConfig, "schedule", ("cosine", "step", "constant")),
])
def test_choice_options_are_literals_and_a_bad_value_names_them(model, name, allowed):
    assert typing.get_args(model.model_fields[name].annotation) == allowed
    if model is TrainConfig:
        result = invoke("train", "--data", "nowhere", "--out", "nowhere-run", "--set", f"{name}=bogus")
    else:
        problem = "darcy" if model is DarcyConfig else "navier-stokes"
        result = invoke("generate", problem, "--n", 1, "--out", "nowhere", "--set", f"{name}=bogus")
    line = one_line_error(result, f"'{name}'", "'bogus'")
    assert all(f"'{value}'" in line for value in allowed), line


@pytest.mark.parametrize("resolution", [100000, 20000])
def test_a_resolution_beyond_the_memory_is_refused_fast_without_allocating(tmp_path, monkeypatch, resolution):
    monkeypatch.setattr(_memory, "available_memory", lambda: 8 * 2**30)
    allocated = []
    monkeypatch.setattr(Darcy, "draw_inputs", lambda self, rngs: allocated.append(1))
    out = tmp_path / "big"
    t0 = time.perf_counter()
    result = invoke("generate", "darcy", "--n", 4, "--resolution", resolution, "--out", out)
    assert time.perf_counter() - t0 < 5
    one_line_error(result, f"resolution {resolution}", "(estimate)", "8.0 GB is available", "lower --resolution")
    assert not out.exists() and not allocated


def test_the_estimate_is_the_measured_cost_per_grid_point():
    small, big = Darcy(DarcyConfig(resolution=100)), Darcy(DarcyConfig(resolution=100000))
    assert _memory.sample_bytes(big) == _memory.sample_bytes(small) * 1000**2
    assert _memory.sample_bytes(big) > 2**40  # 10^10 points: no machine holds one sample
    ns = NavierStokes(NavierStokesConfig(resolution=64, n_times=10))
    assert _memory.sample_bytes(ns) == 64**2 * (_memory.INTEGRATOR_BYTES_PER_POINT + 80)


def test_the_batch_shrinks_to_fit_the_memory_and_the_data_stay_the_same(tmp_path, monkeypatch):
    problem = Darcy(DarcyConfig(resolution=16))
    reference = generate(problem, n=6, seed=2, out=tmp_path / "a", shard_size=6)
    per_sample = _memory.sample_bytes(problem)
    monkeypatch.setattr(_memory, "available_memory", lambda: int(per_sample * 2 / _memory.MEMORY_SHARE))
    assert _memory.fit_batch(problem, None) == 2
    with pytest.raises(PdeforgeError, match="use --batch-size 2 or less"):
        _memory.fit_batch(problem, 3)
    seen = []
    adapted = generate(problem, n=6, seed=2, out=tmp_path / "b", shard_size=6, progress=seen.append)
    assert seen == [0, 2, 2, 2]
    assert adapted.n_samples == reference.n_samples == 6  # the same data, solved two samples at a time
    for a, b in zip(open_dataset(tmp_path / "a").read(0, 6), open_dataset(tmp_path / "b").read(0, 6), strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_bad_batch_size_creates_nothing(tmp_path):
    out = tmp_path / "ds"
    result = invoke("generate", "darcy", "--n", 2, "--resolution", 12, "--out", out, "--batch-size", 0)
    one_line_error(result, "--batch-size must be positive")
    assert not out.exists()


def failing_when(predicate):
    """A Darcy solve that reports every sample unconverged when ``predicate(config)`` holds."""
    solve = Darcy.solve

    def patched(self, inputs, method):
        solution = solve(self, inputs, method)
        if predicate(self.config):
            solution.converged = torch.zeros_like(solution.converged)
            solution.reasons = [f"residual above rtol {self.config.rtol}"] * len(solution.reasons)
        return solution

    return patched


def test_a_failure_on_sample_0_leaves_a_stub_that_a_fixed_rerun_replaces(tmp_path, monkeypatch):
    monkeypatch.setattr(Darcy, "solve", failing_when(lambda c: c.rtol < 1e-20))
    out = tmp_path / "ds"
    failed = invoke("generate", "darcy", "--n", 3, "--resolution", 12, "--out", out, "--set", "rtol=1e-30")
    one_line_error(failed, "sample 0 was not stored", "--overwrite")
    assert not read_manifest(out).shards  # the stub: a manifest and no shard
    fixed = invoke("generate", "darcy", "--n", 3, "--resolution", 12, "--out", out, "--set", "rtol=1e-8")
    assert fixed.exit_code == 0, fixed.output
    assert read_manifest(out).complete and read_manifest(out).config["rtol"] == 1e-8


def test_a_dataset_with_a_verified_shard_is_not_a_stub(tmp_path):
    out = tmp_path / "ds"
    generate(Darcy(DarcyConfig(resolution=12)), n=2, seed=0, out=out, shard_size=1)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["complete"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PdeforgeError, match="already exists"):
        generate(Darcy(DarcyConfig(resolution=12)), n=2, seed=0, out=out)


def test_the_advice_of_a_solver_failure_succeeds_when_followed(tmp_path, monkeypatch):
    calls = []

    def late(config):  # the second shard's batch fails at the tight tolerance
        calls.append(1)
        return config.rtol > 1e-9 and len(calls) > 1

    monkeypatch.setattr(Darcy, "solve", failing_when(late))
    out = tmp_path / "ds"
    args = ("generate", "darcy", "--n", 4, "--resolution", 12, "--out", out, "--shard-size", 2)
    failed = invoke(*args, "--set", "rtol=1e-8")
    line = one_line_error(failed, "sample 2 was not stored", "change the solver settings (--set)",
                          "rerun with --overwrite (or a new --out)")
    assert "--resume" not in line
    assert len(read_manifest(out).shards) == 1  # one verified shard: not a stub, so the advice names --overwrite
    followed = invoke(*args, "--set", "rtol=1e-10", "--overwrite")
    assert followed.exit_code == 0, followed.output
    assert read_manifest(out).complete and read_manifest(out).config["rtol"] == 1e-10
    elsewhere = invoke("generate", "darcy", "--n", 4, "--resolution", 12, "--out", tmp_path / "new",
                       "--shard-size", 2, "--set", "rtol=1e-10")
    assert elsewhere.exit_code == 0, elsewhere.output


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "sub/shard-00000.h5", "..", "a\\b", ""])
def test_a_manifest_cannot_point_outside_its_dataset(tmp_path, path):
    out = tmp_path / "ds"
    generate(Darcy(DarcyConfig(resolution=12)), n=2, seed=0, out=out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["path"] = path
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PdeforgeError, match=r"malformed at 'shards\.0\.path'.*not a file name inside"):
        read_manifest(out)
    with pytest.raises(PdeforgeError, match="not a file name inside"):
        open_dataset(out)
    result = invoke("info", out)
    one_line_error(result, "not a file name inside the dataset directory")


def test_time_dependent_batches_are_small_enough_for_progress_to_move():
    from pdeforge.problems import Burgers, BurgersConfig

    # Measured: a default batch takes about 3 s (Navier-Stokes at 64^2: 64 samples at once sat at 0/64 for 45 s).
    assert _memory.default_batch(NavierStokes(NavierStokesConfig(resolution=64))) == 4
    assert _memory.default_batch(Burgers(BurgersConfig())) == 16
    assert _memory.default_batch(NavierStokes(NavierStokesConfig(resolution=256))) == 1
    assert _memory.default_batch(Darcy(DarcyConfig(resolution=64))) == 256  # elliptic batches are unchanged


def test_progress_is_reported_per_batch_inside_a_shard(tmp_path, monkeypatch):
    ns = NavierStokes(NavierStokesConfig(resolution=16, t_final=0.2, n_times=2))
    seen = []
    generate(ns, n=5, seed=1, out=tmp_path / "a", shard_size=5, batch_size=2, progress=seen.append)
    assert seen == [0, 2, 2, 1]
    # The default batch of a time-dependent problem follows its grid: here two 16^2 samples per batch.
    monkeypatch.setattr(_memory, "BATCH_POINTS_TIME_DEPENDENT", 2 * 16**2)
    seen.clear()
    generate(ns, n=5, seed=1, out=tmp_path / "b", shard_size=5, progress=seen.append)
    assert seen == [0, 2, 2, 1]
    for a, b in zip(open_dataset(tmp_path / "a").read(0, 5), open_dataset(tmp_path / "b").read(0, 5), strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A two-epoch FNO on 24 Darcy samples at 17^2."""
    from pdeforge.training import train

    root = tmp_path_factory.mktemp("superres")
    generate(Darcy(DarcyConfig(resolution=17)), n=24, seed=0, out=root / "data")
    config = TrainConfig(model="fno", model_options={"width": 8, "modes": 4, "layers": 2}, epochs=2, batch_size=8,
                         n_val=4, n_test=4)
    train(root / "run", config, root / "data", device=torch.device("cpu"))
    return root / "run"


def test_the_superres_estimate_scales_with_the_grid_and_the_steps():
    from pdeforge.evaluation._evaluate import superres_seconds

    darcy = Darcy(DarcyConfig(resolution=17))
    ns = NavierStokes(NavierStokesConfig(resolution=16))
    assert superres_seconds(darcy, 0.5, 4) == pytest.approx(0.5 * 16)  # elliptic: r^2 grid points
    assert superres_seconds(ns, 0.5, 4) == pytest.approx(0.5 * 64)  # and r times the CFL-limited steps


def test_superres_is_scaled_down_then_skipped_within_its_budget_and_forced_on_request(trained_run, monkeypatch):
    from pdeforge.evaluation import _evaluate

    # Recorded solver time 3 s per sample: at 2x a sample takes ~12 s, at 4x ~48 s. The 120 s budget
    # holds 10 samples at 2x and leaves nothing for 4x.
    monkeypatch.setattr(_evaluate, "_solver_seconds", lambda source: 3.0)
    assert _evaluate.SUPERRES_BUDGET_SECONDS == 120
    notices, ticks = [], []
    metrics = _evaluate.evaluate_run(trained_run, device=torch.device("cpu"), superres=[2, 4],
                                     notice=notices.append, progress=lambda *a: ticks.append(a))
    assert metrics["superres"]["x2"]["n"] == 10 and "x4" not in metrics["superres"]
    assert len(notices) == 2 and set(metrics["superres_skipped"]) == {"x2", "x4"}
    assert "on 10 samples" in notices[0] and "about 384 s" in notices[0] and "--n-superres 32" in notices[0]
    assert "x4 skipped" in notices[1] and "--superres 4 --n-superres N forces it" in notices[1]
    assert all("\n" not in line for line in notices)
    assert ticks[0] == ("super-resolution x2", 0, 10) and ticks[-1] == ("super-resolution x2", 10, 10)

    forced = _evaluate.evaluate_run(trained_run, device=torch.device("cpu"), superres=[4], n_superres=4,
                                    notice=notices.append, progress=lambda *a: ticks.append(a))
    assert forced["superres"]["x4"]["n"] == 4 and forced["superres"]["x4"]["resolution"] == [65, 65]
    assert not forced["superres_skipped"] and len(notices) == 2
    assert ticks[-1] == ("super-resolution x4", 4, 4)


def test_superres_that_does_not_fit_in_memory_is_skipped_with_one_line(trained_run, monkeypatch):
    from pdeforge.evaluation import _evaluate

    monkeypatch.setattr(_memory, "available_memory", lambda: 2**20)
    notices = []
    metrics = _evaluate.evaluate_run(trained_run, device=torch.device("cpu"), superres=[2], notice=notices.append)
    assert not metrics["superres"] and len(notices) == 1
    assert "x2 skipped" in notices[0] and "(estimate)" in notices[0] and "1.0 MB is available" in notices[0]


def test_evaluate_prints_what_superres_skipped(trained_run, monkeypatch):
    from pdeforge.evaluation import _evaluate

    monkeypatch.setattr(_evaluate, "_solver_seconds", lambda source: 1000.0)
    result = invoke("evaluate", trained_run, "--superres", "2")
    assert result.exit_code == 0, result.output
    assert "super-resolution x2 skipped" in result.output and "--n-superres N forces it" in result.output
