"""train / evaluate / report from the command line, and their bad-input paths."""

import base64
import json
import os
import struct

import numpy as np
import pytest
import torch

from helpers import one_line_error
from model_helpers import neuralop_file_with_bad_value
from pdeforge.data import open_dataset
from pdeforge.training import load_run
from test_cli import invoke

SMALL = ["--set", "epochs=2", "--set", "batch_size=8", "--set", "n_val=8", "--set", "n_test=8",
         "--set", "model_options.width=8", "--set", "model_options.modes=4", "--set", "model_options.layers=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "darcy"
    result = invoke("generate", "darcy", "--n", 48, "--resolution", 17, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def png_size_and_pixels(path):
    """``(width, height)`` from a PNG's IHDR chunk, and its decoded pixels; fails on anything but a PNG."""
    from matplotlib.image import imread

    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", raw[16:24])
    return (width, height), imread(path)


def test_train_evaluate_report_end_to_end(tmp_path, dataset):
    run = tmp_path / "run"
    result = invoke("train", "--data", dataset, "--model", "fno", "--out", run, *SMALL)
    assert result.exit_code == 0, result.output
    assert "test relative L2" in result.output
    trained = " ".join(result.output.split())
    spec = json.loads((run / "run.json").read_text())
    assert spec["status"] == "finished" and spec["config"]["model_options"]["width"] == 8
    assert spec["split"] == {"train": [0, 32], "val": [32, 40], "test": [40, 48]}
    result = invoke("evaluate", run, "--superres", "2", "--n-superres", 4)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"rel_l2", "h1", "n"} and metrics["test"]["n"] == 8
    # evaluate took the test errors train recorded, and train printed the same mean.
    assert metrics["test"]["reused_from_training"]
    assert f"test relative L2 {metrics['test']['rel_l2']:.4f}" in trained

    # The test error is what an independent computation from the saved weights and the data gives.
    _, model = load_run(run, device=torch.device("cpu"))
    source = open_dataset(dataset)
    inputs, outputs = source.read(40, 48)
    x, y = inputs["coefficient"][:, None].astype(np.float32), outputs["solution"][:, None].astype(np.float64)
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).double().numpy()
    rel_l2 = np.linalg.norm((pred - y).reshape(8, -1), axis=1) / np.linalg.norm(y.reshape(8, -1), axis=1)
    np.testing.assert_allclose(metrics["per_sample"]["rel_l2"], rel_l2, rtol=1e-4)
    assert metrics["test"]["rel_l2"] == pytest.approx(rel_l2.mean(), rel=1e-4)
    assert metrics["test"]["rel_l2_stats"]["max"] == pytest.approx(rel_l2.max(), rel=1e-4)

    # The speed-up is the solver's recorded seconds per sample over the surrogate's.
    th = metrics["throughput"]
    solver = float(np.median(source.table("diagnostics")["wall_seconds"]))
    assert th["solver_seconds_per_sample"] == pytest.approx(solver)
    assert th["inference_seconds_per_sample"] == pytest.approx(1 / th["inference_samples_per_second"])
    assert th["speedup_over_solver"] == pytest.approx(solver / th["inference_seconds_per_sample"])

    # Super-resolution: finite errors on freshly generated data of the stated, doubled resolution.
    sr = metrics["superres"]["x2"]
    assert sr["resolution"] == [33, 33] and sr["n"] == 4
    assert np.isfinite(sr["rel_l2"]) and np.isfinite(sr["h1"]) and 0 < sr["rel_l2"] < 10
    fine = open_dataset(run / "superres" / "x2")
    assert len(fine) == 4 and fine.input_shapes["coefficient"] == (33, 33) and fine.config["resolution"] == 33

    # Plots: PNGs of the pixel size their figure size at 90 dpi states, with varying content.
    sizes = {"samples.png": (1170, 837), "error_spectrum.png": (540, 360), "training.png": (990, 360),
             "superres_x2.png": (1170, 837)}
    images = {}
    for name, size in sizes.items():
        found, pixels = png_size_and_pixels(run / "plots" / name)
        assert found == size and pixels.shape[:2] == (size[1], size[0]), name
        assert pixels[..., :3].std() > 0.01, f"{name} is blank"
        images[name] = (run / "plots" / name).read_bytes()

    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert "relative L2" in page and f"{metrics['test']['rel_l2']:.4g}" in page
    assert f"{th['speedup_over_solver']:.4g}" in page and "33x33" in page
    for name, raw in images.items():  # every plot is embedded, byte for byte
        assert "data:image/png;base64," + base64.b64encode(raw).decode("ascii") in page, name
    # Evaluating again reuses the generated super-resolution data.
    made = (run / "superres" / "x2" / "manifest.json").stat().st_mtime_ns
    assert invoke("evaluate", run, "--superres", "2", "--n-superres", 4).exit_code == 0
    assert (run / "superres" / "x2" / "manifest.json").stat().st_mtime_ns == made
    again = json.loads((run / "metrics.json").read_text())
    assert again["superres"]["x2"]["rel_l2"] == pytest.approx(sr["rel_l2"], rel=1e-5)


def test_train_refuses_to_overwrite_and_resume_needs_a_run(tmp_path, dataset):
    run = tmp_path / "run"
    assert invoke("train", "--data", dataset, "--out", run, *SMALL).exit_code == 0
    one_line_error(invoke("train", "--data", dataset, "--out", run, *SMALL), "finished run")
    one_line_error(invoke("train", "--data", dataset, "--out", tmp_path / "new", "--resume", *SMALL),
                          "no interrupted run")


@pytest.mark.parametrize("args, fragments", [
    (["--model", "transformer"], ["unknown model 'transformer'"]),
    (["--set", "epocs=3"], ["unknown key 'epocs'"]),
    (["--set", "lr=-1"], ["'lr'"]),
    (["--set", "model_options.depth=3"], ["no option 'depth'"]),
    (["--set", "loss=h"], ["'loss'"]),
])
def test_train_bad_settings(tmp_path, dataset, args, fragments):
    one_line_error(invoke("train", "--data", dataset, "--out", tmp_path / "run", *args), *fragments)


def test_train_bad_data(tmp_path):
    bad = neuralop_file_with_bad_value(tmp_path / "bad.pt", 20, 11, float("inf"))
    one_line_error(invoke("train", "--data", bad, "--out", tmp_path / "r1", *SMALL), "sample 11", "non-finite")
    one_line_error(invoke("train", "--data", tmp_path / "missing", "--out", tmp_path / "r2"), "does not exist")


def test_evaluate_and_report_need_a_run(tmp_path, dataset):
    one_line_error(invoke("evaluate", tmp_path), "not a pdeforge run")
    one_line_error(invoke("evaluate", tmp_path / "nowhere"), "not a run directory")
    run = tmp_path / "run"
    assert invoke("train", "--data", dataset, "--out", run, *SMALL).exit_code == 0
    one_line_error(invoke("report", run), "not been evaluated")
    one_line_error(invoke("evaluate", run, "--superres", "x"), "--superres")
    pointer = json.loads((run / "checkpoints" / "best.json").read_text())
    weights = run / "checkpoints" / pointer["directory"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    one_line_error(invoke("evaluate", run), "corrupt or truncated")


def test_plotting_sets_no_global_matplotlib_backend(tmp_path):
    """Importing pdeforge.evaluation imports no pyplot; plots are drawn on their own Agg canvas."""
    import subprocess
    import sys

    script = f"""
import sys
import numpy as np
import pdeforge.evaluation as ev
assert "matplotlib.pyplot" not in sys.modules and "matplotlib" not in sys.modules
ev.plot_training_curves({str(tmp_path / 'curves.png')!r},
                       [{{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "lr": 1e-3}},
                        {{"epoch": 2, "train_loss": 0.5, "val_loss": 1.0, "lr": 5e-4}}])
assert "matplotlib.pyplot" not in sys.modules, "plotting imported pyplot"
import matplotlib
assert matplotlib.rcParams._get_backend_or_none() is None, "plotting set a global backend"
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    size, pixels = png_size_and_pixels(tmp_path / "curves.png")
    assert size == (990, 360) and pixels[..., :3].std() > 0.01
