"""The command line: useful output, and one clear line plus a non-zero exit for every user error."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from helpers import one_line_error
from pdeforge.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_generate_info_and_problems(tmp_path):
    out = tmp_path / "ds"
    result = invoke("generate", "darcy", "--n", 6, "--resolution", 12, "--seed", 4, "--out", out, "--shard-size", 4,
                    "--set", "high=10", "--set", "low=2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["high"] == 10 and manifest["config"]["resolution"] == 12 and manifest["seed"] == 4
    info = invoke("info", out)
    assert info.exit_code == 0, info.output
    assert "darcy" in info.output and "[12, 12]" in info.output and "ok" in info.output
    listing = invoke("problems")
    assert listing.exit_code == 0
    for name in ("darcy", "burgers", "navier-stokes", "nu", "ic_scale"):
        assert name in listing.output


def test_yaml_config_then_set_then_flags(tmp_path):
    cfg = tmp_path / "burgers.yaml"
    cfg.write_text("resolution: 64\nnu: 0.05\nt_final: 0.1\nn_times: 2\n")
    out = tmp_path / "b"
    result = invoke("generate", "burgers", "--n", 2, "--out", out, "--config", cfg, "--set", "nu=0.2",
                    "--resolution", 32)
    assert result.exit_code == 0, result.output
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert (config["resolution"], config["nu"], config["n_times"]) == (32, 0.2, 2)


@pytest.mark.parametrize("args, fragments", [
    (["generate", "heat", "--out", "{tmp}/x"], ["unknown problem 'heat'"]),
    (["generate", "darcy", "--out", "{tmp}/x", "--set", "viscosity=1"], ["unknown key 'viscosity'"]),
    (["generate", "darcy", "--out", "{tmp}/x", "--resolution", "3"], ["'resolution'"]),
    (["generate", "darcy", "--out", "{tmp}/x", "--n", "0"], ["--n"]),
    (["generate", "darcy", "--out", "{tmp}/x", "--set", "novalue"], ["key=value"]),
    (["generate", "darcy", "--out", "{tmp}/x", "--config", "{tmp}/missing.yaml"], ["does not exist"]),
    (["generate", "darcy", "--out", "{tmp}/x", "--resume", "--overwrite"], ["exclude"]),
    (["generate", "burgers", "--out", "{tmp}/x", "--set", "resolution=64", "--set", "solver_resolution=96"],
     ["multiple"]),
    (["info", "{tmp}/nothing"], ["does not exist"]),
    (["info", "{tmp}/notes.txt"], ["unrecognised data format"]),
])
def test_bad_input_gives_one_clear_line(tmp_path, args, fragments):
    (tmp_path / "notes.txt").write_text("not data")
    args = [a.format(tmp=tmp_path) for a in args]
    one_line_error(invoke(*args), *fragments)
    assert not (tmp_path / "x").exists()


def test_bad_yaml_is_one_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("resolution: [unclosed\n")
    one_line_error(invoke("generate", "darcy", "--out", tmp_path / "x", "--config", cfg), "not readable YAML")
    cfg.write_text("- a list\n- not a mapping\n")
    one_line_error(invoke("generate", "darcy", "--out", tmp_path / "x", "--config", cfg), "mapping")


def test_existing_output_and_corrupt_shard(tmp_path):
    out = tmp_path / "ds"
    assert invoke("generate", "darcy", "--n", 4, "--resolution", 8, "--out", out, "--shard-size", 2).exit_code == 0
    one_line_error(invoke("generate", "darcy", "--n", 4, "--resolution", 8, "--out", out), "already exists")
    shard = out / "shard-00001.h5"
    shard.write_bytes(shard.read_bytes()[:-50])
    result = invoke("info", out)
    one_line_error(result, "failed verification")
    assert "checksum mismatch" in result.output
    resumed = invoke("generate", "darcy", "--n", 4, "--resolution", 8, "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert invoke("info", out).exit_code == 0


def test_info_reads_third_party_files(neuralop_dir):
    result = invoke("info", neuralop_dir / "darcy_test_16.pt")
    assert result.exit_code == 0, result.output
    assert "neuralop" in result.output and "50" in result.output and "[16, 16]" in result.output


def test_unconverged_samples_are_reported_not_written(tmp_path):
    out = tmp_path / "ns"
    result = invoke("generate", "burgers", "--n", 2, "--out", out, "--set", "resolution=32", "--set", "dt=0.1",
                    "--set", "t_final=0.2")
    one_line_error(result, "sample 0 was not stored", "cfl_limit")
    assert not list(out.glob("shard-*.h5"))


def test_console_script_exit_status(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "pdeforge", "generate", "darcy", "--out", str(tmp_path / "x"),
                           "--set", "low=0"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr


def flat(text: str) -> str:
    """``text`` with runs of whitespace as one space (rich wraps long lines)."""
    return " ".join(text.split())


def test_models_lists_every_model_with_its_options_and_defaults():
    from pdeforge.models import MODELS, build_model

    result = invoke("models")
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert len(MODELS) >= 5
    for name, spec in MODELS.items():
        block = text[text.index(f"{name}: {spec.summary}"):]
        assert f"data: {'/'.join(map(str, spec.spatial_dims))}-D fields" in block
        assert f"paper: {spec.reference}" in block
        d = 2 if 2 in spec.spatial_dims else spec.spatial_dims[0]
        count = sum(p.numel() for p in build_model(name, 1, 1, d).parameters())
        assert f"parameters: {count:,} at the defaults ({d}-D, 1 -> 1 channel)" in block, name
        header = block[:block.index("paper:")]
        assert ("tied to its training grid" in header) == (spec.resolution is None), name
        assert ("fitted to the training outputs" in header) == (spec.fit is not None), name
        for option, default in spec.options().items():
            assert f"{option} {default!r}" in block, (name, option)


def test_model_options_from_the_listing_are_accepted():
    import ast

    from pdeforge.cli._models_command import option_lines
    from pdeforge.models import MODELS, build_model

    # Every option with the default the listing shows, passed back explicitly, builds the model.
    for name, spec in MODELS.items():
        shown = {option: ast.literal_eval(default) for option, default in option_lines(spec.builder)}
        assert shown == spec.options()
        dims = 2 if 2 in spec.spatial_dims else spec.spatial_dims[0]
        assert build_model(name, 1, 1, dims, **shown) is not None


def test_problems_lists_the_allowed_values_of_choice_options(monkeypatch):
    from rich.console import Console

    from pdeforge.cli import _data_commands
    from pdeforge.cli._data_commands import choices
    from pdeforge.problems import PROBLEMS

    monkeypatch.setattr(_data_commands, "stdout", Console(width=250))
    result = invoke("problems")
    assert result.exit_code == 0, result.output
    expected = {("darcy", "coefficient"): ("piecewise", "lognormal"),
                ("navier-stokes", "forcing"): ("fno", "kolmogorov", "none"),
                ("darcy", "store_dtype"): ("float32", "float64")}
    for (problem, key), values in expected.items():
        assert choices(PROBLEMS[problem].Config.model_fields[key]) == values
    lines = result.output.splitlines()
    for name, cls in PROBLEMS.items():
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}: "))
        for key, field in cls.Config.model_fields.items():
            if choices(field):
                cells = (line.split("\u2502") for line in lines[start:] if line.count("\u2502") > 1)
                row = next("|".join(c) for c in cells if c[1].strip() == key)
                assert ", ".join(choices(field)) in row, row


def test_ctrl_c_during_generate_then_resume_as_advised(tmp_path, monkeypatch):
    from pdeforge.cli._main import INTERRUPTED
    from pdeforge.cli._progress import LazyProgress
    from pdeforge.data import open_dataset

    args = ["generate", "darcy", "--n", 6, "--resolution", 8, "--shard-size", 2, "--batch-size", 2]
    calls = []
    original = LazyProgress.__call__

    def interrupt_after_first_shard(self, advance=0, **fields):
        calls.append(advance)
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(self, advance, **fields)

    monkeypatch.setattr(LazyProgress, "__call__", interrupt_after_first_shard)
    result = invoke(*args, "--out", tmp_path / "ds")
    assert result.exit_code == 130
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == \
        [f"error: {INTERRUPTED['generate']}"]
    assert "--resume" in INTERRUPTED["generate"]
    monkeypatch.undo()
    resumed = invoke(*args, "--out", tmp_path / "ds", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert invoke("info", tmp_path / "ds").exit_code == 0
    assert invoke(*args, "--out", tmp_path / "whole").exit_code == 0
    got, want = open_dataset(tmp_path / "ds"), open_dataset(tmp_path / "whole")
    assert len(got) == len(want) == 6
    for a, b in zip(got.read(0, 6), want.read(0, 6), strict=True):
        for key in b:
            np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("verb, target, args", [
    ("info", "pdeforge.data._readers.open_dataset", ["{tmp}"]),
    ("problems", "pdeforge.solvers.choose_method", []),
    ("models", "pdeforge.cli._models_command.option_lines", []),
    ("evaluate", "pdeforge.evaluation.evaluate_run", ["{tmp}"]),
    ("report", "pdeforge.evaluation.write_report", ["{tmp}"]),
])
def test_ctrl_c_message_of_each_command(tmp_path, monkeypatch, verb, target, args):
    from pdeforge.cli._main import INTERRUPTED

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    result = invoke(verb, *(a.format(tmp=tmp_path) for a in args))
    assert result.exit_code == 130
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == \
        [f"error: {INTERRUPTED[verb]}"]
    assert "--resume" not in INTERRUPTED[verb]


def test_pickled_pt_file_is_refused_in_one_complete_line(tmp_path):
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ("never printed",))

    path = tmp_path / "pickled.pt"
    torch.save({"x": torch.zeros(2, 2), "y": Payload()}, path)
    result = invoke("info", path)
    one_line_error(result, "pickled Python objects", "never unpickled", "'x' and 'y')")
    assert "never printed" not in result.output
    truncated = tmp_path / "cut.pt"
    torch.save({"x": torch.zeros(8, 8), "y": torch.zeros(8, 8)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    one_line_error(invoke("info", truncated), "not a loadable tensor file", "or not written by torch.save)")


def test_malformed_yaml_names_line_and_column(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("resolution: 12\nlow: 3\n  high: 9\n")
    one_line_error(invoke("generate", "darcy", "--out", tmp_path / "x", "--config", cfg),
                          "line 3, column 7: mapping values are not allowed here")
    assert not (tmp_path / "x").exists()


def test_usage_errors_through_main_are_one_line(tmp_path, capsys):
    from pdeforge.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["generate", "darcy", "--out", str(tmp_path / "x"), "--n", "ten"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: Invalid value for '--n'"), err
    assert err[0].endswith("(see `pdeforge generate --help`)")
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--help"])
    assert exc.value.code == 0
    assert "--resolution" in capsys.readouterr().out


SMALL_TRAINING = ["--set", "batch_size=8", "--set", "n_val=8", "--set", "n_test=8", "--set", "model_options.width=8",
                  "--set", "model_options.modes=4", "--set", "model_options.layers=2"]


def test_unfinished_run_is_noted_and_finishing_it_as_advised_works(tmp_path, monkeypatch):
    from pdeforge.cli._main import INTERRUPTED
    from pdeforge.cli._progress import LazyProgress

    data, run = tmp_path / "data", tmp_path / "run"
    assert invoke("generate", "darcy", "--n", 32, "--resolution", 9, "--out", data).exit_code == 0
    train = ["train", "--data", data, "--out", run, "--set", "epochs=4", *SMALL_TRAINING]
    epochs = []
    original = LazyProgress.__call__

    def interrupt_after_two_epochs(self, advance=0, **fields):
        original(self, advance, **fields)
        if "status" in fields:  # the end-of-epoch update
            epochs.append(fields["description"])
            if len(epochs) == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(LazyProgress, "__call__", interrupt_after_two_epochs)
    result = invoke(*train)
    assert result.exit_code == 130, result.output
    assert f"error: {INTERRUPTED['train']}" in result.output.splitlines()
    monkeypatch.undo()

    note = "note: this run stopped at epoch 2 of 4; rerun `pdeforge train` with the same --out"
    evaluated = invoke("evaluate", run, "--superres", "none")
    assert evaluated.exit_code == 0, evaluated.output
    assert [line for line in evaluated.output.splitlines() if line.startswith("note:")] == [
        note + " (and the same data and settings) to finish it"]
    reported = invoke("report", run)
    assert reported.exit_code == 0 and note in reported.output

    # Following the advice (train's after Ctrl-C, and the note's) finishes the run; then there is no note.
    finished = invoke(*train)
    assert finished.exit_code == 0, finished.output
    assert "".join(f"resuming {run} from epoch 2".split()) in "".join(finished.output.split())
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    again = invoke("evaluate", run, "--superres", "none")
    assert again.exit_code == 0, again.output
    assert "note:" not in again.output

    # Ctrl-C during evaluate keeps nothing partial; rerunning it, as advised, works.
    (run / "metrics.json").unlink()
    monkeypatch.setattr("pdeforge.evaluation._evaluate.per_sample_errors",
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    stopped = invoke("evaluate", run, "--superres", "none", "--data", data)
    assert stopped.exit_code == 130 and f"error: {INTERRUPTED['evaluate']}" in stopped.output.splitlines()
    assert not (run / "metrics.json").exists()
    monkeypatch.undo()
    rerun = invoke("evaluate", run, "--superres", "none", "--data", data)
    assert rerun.exit_code == 0, rerun.output
    assert (run / "metrics.json").exists()


def test_plain_progress_lines_when_not_a_terminal():
    import io
    import re
    import time

    from rich.console import Console

    from pdeforge.cli._progress import LazyProgress

    console = Console(file=io.StringIO(), force_terminal=False, width=80)
    assert not console.is_terminal
    with LazyProgress("darcy", total=10, console=console, interval=0.05) as progress:
        progress(2)
        time.sleep(0.3)  # the work is silent meanwhile: lines still appear
        progress(3, status="shard 2")
    lines = console.file.getvalue().splitlines()
    assert len(lines) >= 3, lines
    pattern = r"darcy: (\d+)/10 samples, ([\d,.]+) samples/s, ETA \d+:\d\d:\d\d, \d+:\d\d:\d\d elapsed"
    assert all(re.match(pattern, line) for line in lines), lines
    assert re.match(pattern, lines[0]).group(1) == "2"
    assert lines[-1].startswith("darcy: 5/10 samples") and lines[-1].endswith("shard 2")


def test_plain_progress_rate_counts_only_work_done_now():
    import io
    import time

    from rich.console import Console

    from pdeforge.cli._progress import PlainProgress

    plain = PlainProgress("training", None, "samples", Console(file=io.StringIO(), width=80), interval=60)
    plain.update(0, total=100, completed=50)  # resumed at 50 of 100
    time.sleep(0.2)
    plain.update(10)
    line = plain.line()
    assert line.startswith("training: 60/100 samples, ")
    rate = float(line.split(", ")[1].split()[0].replace(",", ""))
    assert 10 / 0.5 < rate < 10 / 0.2 * 1.01  # 10 samples in about 0.2 s, not 60


def test_training_bar_fits_80_columns():
    import io
    import re

    from rich.console import Console

    from pdeforge.cli._progress import progress_bar

    for width in (80, 120):
        console = Console(width=width, record=True, file=io.StringIO(), force_terminal=True)
        bar = progress_bar("samples", console)
        task = bar.add_task("epoch 12/16", total=12000, completed=11000, status="loss 0.01234  val 0.02345")
        bar.update(task, advance=500)
        bar.tasks[0]._progress.clear()
        for _ in range(3):  # a measured speed: 99,999.9 samples/s at most in the fitted width
            bar.update(task, advance=100)
        console.print(bar.make_tasks_table(bar.tasks))
        lines = console.export_text().splitlines()
        assert len(lines) == 1, lines
        assert len(lines[0]) <= width
        assert "11800/12000" in lines[0] and re.search(r"[\d,.]+ samples/s ETA", lines[0]), lines[0]
        assert ("loss 0.01234  val 0.02345" in lines[0]) == (width >= 120)


def test_ctrl_c_during_demo_then_rerun_as_advised(tmp_path, monkeypatch):
    from pdeforge.cli import _demo
    from pdeforge.cli._main import INTERRUPTED
    from pdeforge.cli._progress import LazyProgress

    # A small demo: the same steps on 24 samples at 9x9 and a tiny FNO for 2 epochs.
    monkeypatch.setitem(_demo.DEMO_DATA, "n", 24)
    monkeypatch.setitem(_demo.DEMO_DATA, "resolution", 9)
    monkeypatch.setattr(_demo, "DEMO_TRAIN_OPTIONS", {**_demo.DEMO_TRAIN_OPTIONS, "epochs": 2, "batch_size": 8,
                                                       "n_val": 4, "n_test": 4,
                                                       "model_options": {"modes": 3, "width": 8, "layers": 2}})
    original = LazyProgress.__call__

    def interrupt_after_first_epoch(self, advance=0, **fields):
        original(self, advance, **fields)
        if str(fields.get("description", "")).startswith("epoch") and "status" in fields:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(LazyProgress, "__call__", interrupt_after_first_epoch)
        stopped = invoke("demo", "--out", tmp_path / "demo")
    assert stopped.exit_code == 130, stopped.output
    assert f"error: {INTERRUPTED['demo']}" in stopped.output.splitlines()
    rerun = invoke("demo", "--out", tmp_path / "demo")
    assert rerun.exit_code == 0, rerun.output
    text = "".join(rerun.output.split())  # rich may break a long path anywhere
    assert "".join(f"using the dataset in {tmp_path / 'demo' / 'data'}".split()) in text
    assert "".join(f"resuming {tmp_path / 'demo' / 'run'} from epoch 1".split()) in text
    assert (tmp_path / "demo" / "run" / "report.html").is_file()
