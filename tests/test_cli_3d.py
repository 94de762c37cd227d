"""A 3-D periodic grid end to end: generate, train an FNO-3D, evaluate (with super-resolution), report."""

import json

import numpy as np
import pytest
import torch

from model_helpers import band_limited
from pdeforge.data import open_dataset
from pdeforge.evaluation._plots import _mid_plane
from pdeforge.training import load_run
from test_cli import invoke
from test_cli_training import png_size_and_pixels
from test_models import RESOLUTION

TRAIN = ["--set", "epochs=8", "--set", "batch_size=4", "--set", "n_val=4", "--set", "n_test=4", "--set", "lr=0.01",
         "--set", "model_options.width=8", "--set", "model_options.modes=4", "--set", "model_options.layers=2",
         # The table declares FNO resolution-invariant without coordinate channels (its tiny row has none):
         # j / n coordinates are a sawtooth on the torus, which no grid resolves.
         "--set", "model_options.coordinates=none"]


@pytest.fixture(scope="module")
def run_3d(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli3d")
    data, run = root / "data", root / "run"
    result = invoke("generate", "advection-diffusion-3d", "--n", 24, "--resolution", 12, "--out", data)
    assert result.exit_code == 0, result.output
    result = invoke("train", "--data", data, "--model", "fno", "--out", run, *TRAIN)
    assert result.exit_code == 0, result.output
    return data, run


def test_generate_train_evaluate_report_on_a_3d_grid(run_3d):
    data, run = run_3d
    source = open_dataset(data)
    assert source.input_shapes["u0"] == (12, 12, 12) and source.output_shapes["u"] == (4, 12, 12, 12)
    spec = json.loads((run / "run.json").read_text())
    assert spec["layout"]["spatial_dims"] == 3 and spec["layout"]["out_channels"] == 4 and spec["periodic"]

    result = invoke("evaluate", run, "--superres", "2", "--n-superres", 2)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    # The zero field's relative L2 error is exactly 1 on every sample; the trained FNO must beat it clearly.
    _, outputs = source.read(*spec["split"]["test"])
    y = outputs["u"].reshape(4, -1).astype(np.float64)
    trivial = float(np.mean(np.linalg.norm(y - 0.0, axis=1) / np.linalg.norm(y, axis=1)))
    assert trivial == pytest.approx(1.0)
    rel_l2 = metrics["test"]["rel_l2"]
    assert np.isfinite(rel_l2) and rel_l2 < 0.6 * trivial, rel_l2
    sr = metrics["superres"]["x2"]
    assert sr["resolution"] == [24, 24, 24] and sr["n"] == 2
    assert np.isfinite(sr["rel_l2"]) and sr["rel_l2"] < 0.6 * trivial, sr

    # A trajectory output: errors per stored snapshot, at the stored times.
    lead = metrics["lead_time"]
    np.testing.assert_allclose(lead["t"], source.coords()["t"])
    assert len(lead["t"]) == 4 and lead["n"] == 4
    for key in ("rel_l2", "vrmse", *(f"spectral_mse.{b}" for b in ("low", "mid", "high"))):
        values = lead["spectral_mse"][key.split(".")[1]] if "." in key else lead[key]
        assert len(values) == 4 and np.all(np.isfinite(values)), (key, values)
    assert max(lead["rel_l2"]) < trivial

    for name in ("samples.png", "superres_x2.png", "error_spectrum.png", "training.png", "lead_time.png",
                 "lead_time_spectra.png", "lead_time_strip.png"):
        _, pixels = png_size_and_pixels(run / "plots" / name)
        assert pixels[..., :3].std() > 0.01, f"{name} is blank"
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert "12x12x12" in page and "24x24x24" in page
    assert "Errors per stored snapshot over 4 test trajectories" in page


def test_the_trained_fno_3d_is_resolution_invariant_as_the_model_table_declares(run_3d):
    """The run's own weights: a band-limited input on the table's n^3 and (2n)^3 gives one output at common points.

    (Trained at 12^3; n = 16 is the table's 3-D case: the harmonics that the activations create alias less.)
    """
    _, run = run_3d
    _, model = load_run(run, device=torch.device("cpu"))
    model = model.double().eval()
    case = RESOLUTION["periodic"]
    n = case["n"][3]
    coarse = band_limited((n,) * 3, 1, kmax=case["kmax"])
    fine = band_limited((2 * n,) * 3, 1, kmax=case["kmax"])
    common = (..., *[slice(None, None, 2)] * 3)
    torch.testing.assert_close(fine[common], coarse)
    with torch.no_grad():
        y_coarse, y_fine = model(coarse), model(fine)[common]
    rel = float((y_fine - y_coarse).norm() / y_coarse.norm())
    assert rel < case["rtol"], rel
    assert float(y_coarse.std()) > 1e-3


def test_a_3d_field_is_drawn_through_its_mid_plane():
    x, y, z = torch.meshgrid(*[torch.arange(n) / n for n in (4, 6, 8)], indexing="ij")
    field = (x + 10 * y + 100 * z).numpy()
    plane, note = _mid_plane(field)
    np.testing.assert_array_equal(plane, field[:, :, 4])
    assert note == "z = 0.5"
    assert _mid_plane(field[:, :, 0])[1] == "" and _mid_plane(field[:, 0, 0])[0].shape == (4,)
