"""Start-up: help, ``info`` on a pdeforge dataset and usage errors import neither torch nor matplotlib."""

import json
import os
import subprocess
import sys

import pytest

from test_cli import invoke

VERBS = ("generate", "info", "problems", "models", "train", "evaluate", "report", "demo", "compare")

PROBE = """
import json, sys
from pdeforge.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = None
print(json.dumps({"code": code, "heavy": sorted(m for m in ("torch", "matplotlib") if m in sys.modules)}))
"""


def run_cli(*args: str) -> tuple[dict, str]:
    """Run the command line in a fresh interpreter; its exit code, the heavy modules it imported, and stderr."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "100"}
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("startup") / "ds"
    result = invoke("generate", "darcy", "--n", 2, "--resolution", 8, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("args", [["--help"], *([verb, "--help"] for verb in VERBS)])
def test_help_imports_no_torch(args):
    outcome, _ = run_cli(*args)
    assert outcome == {"code": 0, "heavy": []}


def test_info_on_a_pdeforge_dataset_imports_no_torch(dataset):
    outcome, _ = run_cli("info", dataset)
    assert outcome == {"code": 0, "heavy": []}


@pytest.mark.parametrize("args, fragment", [
    (["frobnicate"], "No such command 'frobnicate'"),
    (["generate", "darcy", "--out", "{tmp}/x", "--bogus"], "--bogus"),
    (["generate", "darcy", "--out", "{tmp}/x", "--n", "abc"], "'--n'"),
    (["train", "--data", "{tmp}/d"], "--out"),
    (["evaluate", "{tmp}/run", "--n-superres", "many"], "'--n-superres'"),
])
def test_usage_errors_are_one_line_without_torch(tmp_path, args, fragment):
    outcome, err = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert outcome == {"code": 2, "heavy": []}
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "--help" in lines[0]
    assert not (tmp_path / "x").exists()


def test_model_help_names_the_default_without_the_table():
    from pdeforge.cli._train_commands import DEFAULT_MODEL
    from pdeforge.training import TrainConfig

    assert DEFAULT_MODEL == TrainConfig.model_fields["model"].default
    result = invoke("train", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.replace("\u2502", " ").split())  # without the help box's side rules
    assert f"--model <str> model name (default: {DEFAULT_MODEL}); `pdeforge models` lists them" in text
