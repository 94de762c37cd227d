"""train / evaluate / report from the command line, and their bad-input paths."""

import json

import pytest
from model_helpers import neuralop_file_with_bad_value
from test_cli import assert_one_line_error, invoke

SMALL = ["--set", "epochs=2", "--set", "batch_size=8", "--set", "n_val=8", "--set", "n_test=8",
         "--set", "model_options.width=8", "--set", "model_options.modes=4", "--set", "model_options.layers=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "darcy"
    result = invoke("generate", "darcy", "--n", 48, "--resolution", 17, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_train_evaluate_report_end_to_end(tmp_path, dataset):
    run = tmp_path / "run"
    result = invoke("train", "--data", dataset, "--model", "fno", "--out", run, *SMALL)
    assert result.exit_code == 0, result.output
    assert "test relative L2" in result.output
    spec = json.loads((run / "run.json").read_text())
    assert spec["status"] == "finished" and spec["config"]["model_options"]["width"] == 8
    assert spec["split"] == {"train": [0, 32], "val": [32, 40], "test": [40, 48]}
    result = invoke("evaluate", run, "--superres", "2", "--n-superres", 4)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"rel_l2", "h1", "n"} and metrics["test"]["n"] == 8
    assert metrics["superres"]["x2"]["resolution"] == [33, 33]
    assert metrics["throughput"]["speedup_over_solver"] > 0
    for name in ("samples.png", "error_spectrum.png", "training.png", "superres_x2.png"):
        assert (run / "plots" / name).stat().st_size > 1000, name
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert "data:image/png;base64," in page and "relative L2" in page
    # Evaluating again reuses the generated super-resolution data.
    assert invoke("evaluate", run, "--superres", "2", "--n-superres", 4).exit_code == 0


def test_train_refuses_to_overwrite_and_resume_needs_a_run(tmp_path, dataset):
    run = tmp_path / "run"
    assert invoke("train", "--data", dataset, "--out", run, *SMALL).exit_code == 0
    assert_one_line_error(invoke("train", "--data", dataset, "--out", run, *SMALL), "finished run")
    assert_one_line_error(invoke("train", "--data", dataset, "--out", tmp_path / "new", "--resume", *SMALL),
                          "no interrupted run")


@pytest.mark.parametrize("args, fragments", [
    (["--model", "transformer"], ["unknown model 'transformer'"]),
    (["--set", "epocs=3"], ["unknown key 'epocs'"]),
    (["--set", "lr=-1"], ["'lr'"]),
    (["--set", "model_options.depth=3"], ["no option 'depth'"]),
    (["--set", "loss=h"], ["'loss'"]),
])
def test_train_bad_settings(tmp_path, dataset, args, fragments):
    assert_one_line_error(invoke("train", "--data", dataset, "--out", tmp_path / "run", *args), *fragments)


def test_train_bad_data(tmp_path):
    bad = neuralop_file_with_bad_value(tmp_path / "bad.pt", 20, 11, float("inf"))
    assert_one_line_error(invoke("train", "--data", bad, "--out", tmp_path / "r1", *SMALL), "sample 11", "non-finite")
    assert_one_line_error(invoke("train", "--data", tmp_path / "missing", "--out", tmp_path / "r2"), "does not exist")


def test_evaluate_and_report_need_a_run(tmp_path, dataset):
    assert_one_line_error(invoke("evaluate", tmp_path), "not a pdeforge run")
    assert_one_line_error(invoke("evaluate", tmp_path / "nowhere"), "not a run directory")
    run = tmp_path / "run"
    assert invoke("train", "--data", dataset, "--out", run, *SMALL).exit_code == 0
    assert_one_line_error(invoke("report", run), "not been evaluated")
    assert_one_line_error(invoke("evaluate", run, "--superres", "x"), "--superres")
    pointer = json.loads((run / "checkpoints" / "best.json").read_text())
    weights = run / "checkpoints" / pointer["directory"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert_one_line_error(invoke("evaluate", run), "corrupt or truncated")
