"""``pdeforge compare``: one data set, split and budget for every model; tables equal run records; reruns reuse."""

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from helpers import one_line_error
from test_cli import invoke

TINY_FNO = {"width": 8, "modes": 3, "layers": 2, "coordinates": "none", "projection_channels": 16}
SUITE = {
    "title": "tiny darcy",
    "generate": {"problem": "darcy", "resolution": 10, "samples": 26, "seed": 3},
    "split": {"n_train": 16, "n_val": 4, "n_test": 6},
    "train": {"batch_size": 4, "lr": 0.003},
    "budget": {"epochs": 2},
    "models": [
        {"name": "fno", "model_options": TINY_FNO, "published": {"value": 0.0108, "source": "a paper, Table 4"}},
        {"name": "unet", "label": "unet-small", "model_options": {"width": 8, "depth": 2}, "train": {"lr": 0.001}},
    ],
}


def write_suite(path: Path, suite: dict) -> Path:
    path.write_text(yaml.safe_dump(suite))
    return path


def table_rows(out: Path) -> list[dict]:
    with open(out / "table.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def weights(run: Path) -> dict[str, int]:
    """Modification times of a run's weights and records: any retraining rewrites them."""
    files = [*run.glob("checkpoints/*/model.safetensors"), run / "run.json", run / "metrics.csv"]
    return {str(p): p.stat().st_mtime_ns for p in files}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    suite = write_suite(root / "suite.yaml", SUITE)
    out = root / "out"
    result = invoke("compare", suite, "--out", out)
    assert result.exit_code == 0, result.output
    return suite, out, result


def test_every_model_gets_a_row_equal_to_its_run_records(compared):
    _, out, result = compared
    rows = table_rows(out)
    assert sorted(r["label"] for r in rows) == ["fno", "unet-small"]
    errors = [float(r["rel_l2"]) for r in rows]
    assert errors == sorted(errors)  # sorted by test relative L2
    for row in rows:
        run = out / "runs" / row["label"]
        metrics = json.loads((run / "metrics.json").read_text())
        spec = json.loads((run / "run.json").read_text())
        measured = json.loads((out / "measurements" / f"{row['label']}.json").read_text())
        assert float(row["rel_l2"]) == metrics["test"]["rel_l2"]
        assert float(row["rel_h1"]) == metrics["test"]["h1"]
        assert int(row["epochs"]) == spec["config"]["epochs"] == 2
        assert int(row["parameters"]) == measured["parameters"] > 0
        assert float(row["inference_ms"]) == measured["inference_ms_per_sample"] > 0
        assert float(row["peak_memory_mib"]) == pytest.approx(measured["peak_memory_bytes"] / 2**20)
        with open(run / "metrics.csv", newline="") as fh:
            seconds = sorted(float(r["seconds"]) for r in csv.DictReader(fh))
        assert float(row["seconds_per_epoch"]) == pytest.approx(sum(seconds) / 2)  # the median of two epochs
        assert float(row["training_seconds"]) == pytest.approx(float(row["seconds_per_epoch"]) * 2)
    by_label = {r["label"]: r for r in rows}
    assert by_label["fno"]["published"] == "0.0108" and by_label["fno"]["source"] == "a paper, Table 4"
    assert by_label["unet-small"]["published"] == "" and by_label["unet-small"]["source"] == ""
    # the per-model override reached that model only
    assert json.loads((out / "runs" / "unet-small" / "run.json").read_text())["config"]["lr"] == 0.001
    assert json.loads((out / "runs" / "fno" / "run.json").read_text())["config"]["lr"] == 0.003
    assert "unet-small" in result.output


def test_every_model_sees_the_same_split_and_test_data(compared):
    _, out, _ = compared
    specs = [json.loads((out / "runs" / label / "run.json").read_text()) for label in ("fno", "unet-small")]
    tests = [json.loads((out / "runs" / label / "test_metrics.json").read_text()) for label in ("fno", "unet-small")]
    assert specs[0]["split"] == specs[1]["split"] == {"train": [0, 16], "val": [16, 20], "test": [20, 26]}
    assert specs[0]["data"] == specs[1]["data"] == str((out / "data").resolve())
    assert tests[0]["data_fingerprint"] == tests[1]["data_fingerprint"]
    assert tests[0]["span"] == tests[1]["span"] == [20, 26]
    assert {k: specs[0]["config"][k] for k in ("loss", "epochs", "seed", "batch_size")} == {
        k: specs[1]["config"][k] for k in ("loss", "epochs", "seed", "batch_size")}


def test_table_md_and_html_show_every_model_with_the_caption(compared):
    _, out, _ = compared
    markdown = (out / "table.md").read_text()
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(lines) == 3 and "test rel L2" in lines[0] and "peak training RSS MiB" in lines[0]
    assert "2 epochs per model" in markdown and "16 train / 4 validation / 6 test" in markdown
    assert "cores" in markdown and "torch threads" in markdown and "peak RSS of the training process" in markdown
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "unet-small" in page and "a paper, Table 4" in page


def test_a_rerun_reuses_the_data_and_every_finished_run(compared):
    suite, out, _ = compared
    before = {label: weights(out / "runs" / label) for label in ("fno", "unet-small")}
    shards = {p: p.stat().st_mtime_ns for p in (out / "data").glob("shard-*.h5")}
    table = table_rows(out)
    again = invoke("compare", suite, "--out", out)
    assert again.exit_code == 0, again.output
    assert {label: weights(out / "runs" / label) for label in before} == before
    assert {p: p.stat().st_mtime_ns for p in (out / "data").glob("shard-*.h5")} == shards
    assert table_rows(out) == table
    assert "training" not in again.output.replace("unet-small", "")  # each model is reported as finished
    assert again.output.count(": finished") == 2


def test_a_run_with_other_settings_is_refused_not_overwritten(compared, tmp_path):
    _, out, _ = compared
    changed = json.loads(json.dumps(SUITE))
    changed["models"][0]["train"] = {"lr": 0.01}
    before = weights(out / "runs" / "fno")
    result = invoke("compare", write_suite(tmp_path / "changed.yaml", changed), "--out", out)
    one_line_error(result, "runs/fno", "other settings (lr)", "delete that directory")
    assert weights(out / "runs" / "fno") == before


def test_a_seconds_budget_calibrates_and_records_the_epochs(tmp_path):
    data, test = tmp_path / "ds", tmp_path / "test"
    for path, n, seed in ((data, 10, 0), (test, 3, 1)):
        made = invoke("generate", "darcy", "--n", n, "--resolution", 8, "--seed", seed, "--out", path)
        assert made.exit_code == 0, made.output
    suite = {"data": "ds", "test_data": "test", "split": {"n_train": 10, "n_val": 0}, "train": {"batch_size": 5},
             "budget": {"seconds": 0.5}, "models": [{"name": "fno", "model_options": TINY_FNO}]}
    out = tmp_path / "out"
    result = invoke("compare", write_suite(tmp_path / "suite.yaml", suite), "--out", out)  # data relative to the suite
    assert result.exit_code == 0, result.output
    measured = json.loads((out / "measurements" / "fno.json").read_text())
    calibration = measured["calibration"]
    assert calibration["steps_per_epoch"] == 2 and calibration["val_batches"] == 0
    assert calibration["seconds_per_epoch"] == pytest.approx(2 * calibration["seconds_per_step"])
    epochs = max(1, math.floor(0.5 / calibration["seconds_per_epoch"]))
    spec = json.loads((out / "runs" / "fno" / "run.json").read_text())
    assert spec["config"]["epochs"] == measured["epochs"] == epochs >= 1
    assert spec["data"] == str(data.resolve()) and spec["test_data"] == str(test.resolve())
    assert spec["status"] == "finished" and measured["test_span"] == [0, 3]
    assert int(table_rows(out)[0]["epochs"]) == epochs
    assert json.loads((out / "runs" / "fno" / "metrics.json").read_text())["test"]["n"] == 3
    markdown = (out / "table.md").read_text()
    assert "0.5 s of training wall-clock per model" in markdown and "all 3 of the test data" in markdown


@pytest.mark.parametrize("change, fragments", [
    (lambda s: s["models"].append({"name": "no-such-model"}), ["unknown model 'no-such-model'", "known:"]),
    (lambda s: s.update(budget={"epochs": 1, "epoch": 2}), ["unknown key 'budget.epoch'", "epochs, seconds"]),
    (lambda s: s.update(tarin={}), ["unknown key 'tarin'"]),
    (lambda s: s["models"][0].update(train={"loss": "h1"}), ["train.loss is shared by every model"]),
    (lambda s: s["models"][0]["model_options"].update(wdth=3), ["'fno' has no option 'wdth'"]),
    (lambda s: (s.pop("generate"), s.update(data="missing-data")), ["missing-data does not exist"]),
    (lambda s: s["generate"].update(problem="nope"), ["unknown problem 'nope'"]),
    (lambda s: s["split"].update(n_train=100), ["the split needs 110 samples"]),
    (lambda s: s.update(budget={}), ["exactly one of budget.epochs and budget.seconds"]),
])
def test_a_bad_suite_is_one_line_and_creates_nothing(tmp_path, change, fragments):
    suite = json.loads(json.dumps(SUITE))
    change(suite)
    out = tmp_path / "out"
    result = invoke("compare", write_suite(tmp_path / "suite.yaml", suite), "--out", out)
    one_line_error(result, *fragments)
    assert not out.exists()


def test_a_missing_or_unreadable_suite_is_one_line(tmp_path):
    one_line_error(invoke("compare", tmp_path / "absent.yaml", "--out", tmp_path / "out"), "does not exist")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    one_line_error(invoke("compare", tmp_path / "list.yaml", "--out", tmp_path / "out"), "must hold a mapping")
    assert not (tmp_path / "out").exists()


def test_a_foreign_directory_is_not_used(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = invoke("compare", write_suite(tmp_path / "suite.yaml", SUITE), "--out", out)
    one_line_error(result, "holds no comparison")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_inference_time_is_the_median_pass_after_a_warm_up():
    import torch

    from pdeforge.evaluation._compare_worker import inference_seconds

    calls = []

    class Counting(torch.nn.Module):
        def forward(self, x):
            calls.append((self.training, torch.is_grad_enabled(), len(x)))
            return x

    model = Counting().train()
    seconds = inference_seconds(model, [torch.zeros(3, 1, 4), torch.zeros(2, 1, 4)], torch.device("cpu"), passes=3)
    assert seconds >= 0
    assert calls == [(False, False, 3), (False, False, 2)] * 4  # one warm-up pass, three timed ones, eval, no grad


EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
SUITES = [p for p in EXAMPLES if "models" in (yaml.safe_load(p.read_text()) or {})]


def test_the_shipped_suites_are_there():
    assert sorted(p.name for p in SUITES) == ["burgers1024.yaml", "burgers1024_full.yaml", "darcy85.yaml",
                                              "darcy85_full.yaml", "darcy85_mgno_fno.yaml", "ns1e3.yaml",
                                              "ns1e3_full.yaml"]


def test_the_mgno_suite_uses_the_darcy_suites_samples_at_equal_epochs():
    from pdeforge.evaluation import suite_from_mapping

    def load(name):
        path = EXAMPLES[0].parent / name
        return suite_from_mapping(yaml.safe_load(path.read_text()), str(path), base=path.parent)

    pair, darcy = load("darcy85_mgno_fno.yaml"), load("darcy85.yaml")
    assert pair.generate == darcy.generate and pair.split == darcy.split
    assert [m.name for m in pair.models] == ["fno", "mgno"] and pair.budget.epochs == 6


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.name)
def test_a_shipped_suite_is_valid_and_fair(path):
    from pdeforge.evaluation import suite_from_mapping
    from pdeforge.evaluation._compare import check_suite
    from pdeforge.models import MODELS

    suite = suite_from_mapping(yaml.safe_load(path.read_text()), str(path), base=path.parent)
    if path.name.startswith("ns1e3"):
        _check_navier_stokes_suite(suite, full=path.name.endswith("_full.yaml"))
        return
    assert suite.split.n_train == 1000 and suite.split.n_test == 200
    assert suite.generate is not None and suite.generate.samples == 1200
    assert all(m.name in MODELS for m in suite.models)
    assert check_suite(suite, "cpu")["spatial_dims"] == (2 if "darcy" in path.name else 1)
    if path.name == "darcy85_mgno_fno.yaml":
        assert suite.budget.epochs == 6 and all(m.published is None for m in suite.models)
        return
    if path.name.endswith("_full.yaml"):
        assert suite.budget.epochs == 500
        assert suite.train == {"loss": "l2", "batch_size": 20, "lr": 0.001, "weight_decay": 0.0001,
                               "schedule": "step", "step_epochs": 100}
    else:
        assert suite.budget.seconds is not None
    published = {m.name: m.published for m in suite.models if m.published is not None}
    assert set(published) == ({"fno", "unet", "lsm"} if "darcy" in path.name else {"fno"})
    assert all(p.source and 0 < p.value < 0.05 for p in published.values())


def _check_navier_stokes_suite(suite, *, full: bool) -> None:
    """The FNO paper's Navier-Stokes row: its data, windows and models, at its budget or the CPU one."""
    from pdeforge.evaluation._compare import check_suite

    assert suite.generate is not None and suite.generate.set["preset"] == "fno-1e-3"
    assert (suite.split.n_train, suite.split.n_test) == ((1000, 200) if full else (100, 20))
    assert ("solver_resolution" in suite.generate.set) != full  # the paper's 256^2 solver only at its budget
    tasks = [suite.train_config(m, 1).task for m in suite.models]
    assert {(t.history, t.horizon, t.offset) for t in tasks} == {(10, 40, 1)}
    assert [t.kind for t in tasks] == ["rollout", "spacetime", "spacetime"]
    assert [m.name for m in suite.models] == ["fno", "fno3d", "stfno"]
    assert {m.name: m.published.value for m in suite.models if m.published} == {"fno": 0.0128, "fno3d": 0.0086}
    assert suite.budget.epochs == 500 if full else suite.budget.seconds is not None
    assert check_suite(suite, "cpu")["spatial_dims"] == 2


class Interrupting:
    """The sending end of a pipe that raises Ctrl-C when the model's process reports its first finished epoch."""

    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)
        if message[0] == "epoch" and message[1] == 1:
            raise KeyboardInterrupt

    def close(self):
        pass


def test_ctrl_c_in_a_model_process_keeps_its_checkpoint_and_the_rerun_resumes(tmp_path):
    from pdeforge.evaluation import suite_from_mapping
    from pdeforge.evaluation._compare_worker import model_worker

    made = invoke("generate", "darcy", "--n", 12, "--resolution", 8, "--out", tmp_path / "ds")
    assert made.exit_code == 0, made.output
    payload = {"data": "ds", "split": {"n_train": 8, "n_val": 0, "n_test": 4}, "train": {"batch_size": 4},
               "budget": {"epochs": 3}, "models": [{"name": "fno", "model_options": TINY_FNO}]}
    path = write_suite(tmp_path / "suite.yaml", payload)
    suite = suite_from_mapping(payload, str(path), base=tmp_path)
    out = tmp_path / "out"
    run, record = out / "runs" / "fno", out / "measurements" / "fno.json"
    record.parent.mkdir(parents=True)
    (out / "suite.json").write_text("{}")
    conn = Interrupting()
    model_worker({"label": "fno", "run": str(run), "record": str(record),
                  "config": suite.train_config(suite.models[0], 3).model_dump(mode="json"),
                  "data": str(tmp_path / "ds"), "test_data": None, "device": "cpu", "seconds": None}, conn)
    assert conn.sent[-1] == ("interrupted",)
    spec = json.loads((run / "run.json").read_text())
    assert spec["status"] == "running" and not (run / "metrics.json").exists()
    assert (run / "checkpoints" / "latest.json").is_file() and not list(run.rglob("*.partial"))
    result = invoke("compare", path, "--out", out)
    assert result.exit_code == 0, result.output
    assert "fno: resuming" in result.output
    with open(run / "metrics.csv", newline="") as fh:
        assert [int(float(r["epoch"])) for r in csv.DictReader(fh)] == [1, 2, 3]
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_ctrl_c_in_compare_is_one_line_with_the_advice(tmp_path, monkeypatch):
    from pdeforge.cli._main import INTERRUPTED

    def interrupted(job, report):
        raise KeyboardInterrupt

    monkeypatch.setattr("pdeforge.evaluation._compare._run_model", interrupted)
    result = invoke("compare", write_suite(tmp_path / "suite.yaml", SUITE), "--out", tmp_path / "out")
    assert result.exit_code == 130
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == \
        [f"error: {INTERRUPTED['compare']}"]
    assert not (tmp_path / "out" / "table.md").exists()
