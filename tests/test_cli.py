"""The command line: useful output, and one clear line plus a non-zero exit for every user error."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pdeforge.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


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
    (["generate", "burgers", "--out", "{tmp}/x", "--set", "nu=-0.1"], ["'nu'", "greater than 0"]),
    (["generate", "navier-stokes", "--out", "{tmp}/x", "--set", "nu=-1e-3"], ["'nu'"]),
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
    assert_one_line_error(invoke(*args), *fragments)
    assert not (tmp_path / "x").exists()


def test_bad_yaml_is_one_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("resolution: [unclosed\n")
    assert_one_line_error(invoke("generate", "darcy", "--out", tmp_path / "x", "--config", cfg), "not readable YAML")
    cfg.write_text("- a list\n- not a mapping\n")
    assert_one_line_error(invoke("generate", "darcy", "--out", tmp_path / "x", "--config", cfg), "mapping")


def test_existing_output_and_corrupt_shard(tmp_path):
    out = tmp_path / "ds"
    assert invoke("generate", "darcy", "--n", 4, "--resolution", 8, "--out", out, "--shard-size", 2).exit_code == 0
    assert_one_line_error(invoke("generate", "darcy", "--n", 4, "--resolution", 8, "--out", out), "already exists")
    shard = out / "shard-00001.h5"
    shard.write_bytes(shard.read_bytes()[:-50])
    result = invoke("info", out)
    assert_one_line_error(result, "failed verification")
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
    result = invoke("generate", "burgers", "--n", 2, "--out", out, "--set", "resolution=32", "--set", "dt=0.05",
                    "--set", "t_final=0.1")
    assert_one_line_error(result, "sample 0 was not stored", "cfl_limit")
    assert not list(out.glob("shard-*.h5"))


def test_console_script_exit_status(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "pdeforge", "generate", "darcy", "--out", str(tmp_path / "x"),
                           "--set", "low=0"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
