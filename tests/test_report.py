"""The HTML report reads for a stranger: problem and equation, metric definitions, target, speed-up, bias, stop."""

import html
import json
import re

import numpy as np
import pytest
import torch

from pdeforge.data import generate
from pdeforge.evaluation import evaluate_run, write_report
from pdeforge.evaluation._evaluate import sign_bias
from pdeforge.evaluation._report import METRICS, bias_sentence, speedup_sentence
from pdeforge.problems import PROBLEMS, Darcy, DarcyConfig
from pdeforge.training import TrainConfig, train

CPU = torch.device("cpu")


class _Stop(Exception):
    """Raised from ``on_epoch`` to interrupt training as Ctrl-C would."""


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run configured for 4 epochs, interrupted after epoch 2, then evaluated with 2x super-resolution."""
    root = tmp_path_factory.mktemp("report")
    data = root / "data"
    generate(Darcy(DarcyConfig(resolution=17)), n=30, seed=0, out=data, shard_size=15)
    run = root / "run"
    config = TrainConfig(model="fno", model_options={"modes": 4, "width": 8, "layers": 2}, epochs=4,
                         batch_size=8, lr=3e-3, n_val=6, n_test=6)

    def stop_after_two(entry):
        if entry.epoch >= 2:
            raise _Stop

    with pytest.raises(_Stop):
        train(run, config, data, device=CPU, on_epoch=stop_after_two)
    metrics = evaluate_run(run, device=CPU, superres=[2], n_superres=4)
    return run, metrics


def _page(run) -> str:
    return (run / "report.html").read_text()


def test_speedup_reads_as_faster_or_slower():
    assert speedup_sentence(0.74) == "1.4x slower than the solver at this size"
    assert speedup_sentence(2.3) == "2.3x faster than the solver at this size"
    assert speedup_sentence(1.0) == "1.0x faster than the solver at this size"
    assert "not known" in speedup_sentence(None)


def test_sign_bias_finds_a_synthetic_bias_and_not_noise():
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((8, 1, 16, 16))
    rms = float(np.sqrt(np.mean(truth**2)))
    noise = 0.02 * rng.standard_normal(truth.shape)
    biased = sign_bias(truth, truth - 0.1 * rms + noise)  # too low everywhere by 10% of the RMS
    assert biased["ratio"] < -0.99 and biased["positive_fraction"] < 0.01
    assert biased["relative_to_rms"] == pytest.approx(-0.1, abs=2e-3)
    found = bias_sentence(biased)
    assert found is not None
    assert found.startswith("the error has a systematic sign (prediction too low on average by 10.0% of the "
                            "solution's RMS): a bias, not noise")
    noisy = sign_bias(truth, truth + noise)
    assert abs(noisy["ratio"]) < 0.1 and bias_sentence(noisy) is None
    assert "too high" in bias_sentence(sign_bias(truth, truth + 0.05 * rms + noise))


def test_every_problem_states_its_equation():
    for name, cls in PROBLEMS.items():
        assert isinstance(cls.equation, str) and cls.equation and "\n" not in cls.equation, name


def test_metrics_record_times_at_the_largest_resolution_and_the_sign(stopped_run):
    _, metrics = stopped_run
    big = metrics["throughput"]["largest_resolution"]
    assert big["resolution"] == [33, 33]
    assert big["surrogate_seconds_per_sample"] > 0 and big["solver_seconds_per_sample"] > 0
    assert big["speedup_over_solver"] == pytest.approx(big["solver_seconds_per_sample"]
                                                       / big["surrogate_seconds_per_sample"])
    sign = metrics["superres"]["x2"]["sign"]
    assert -1 <= sign["ratio"] <= 1 and 0 <= sign["positive_fraction"] <= 1


def test_report_names_the_problem_defines_the_metrics_and_shows_the_target(stopped_run):
    run, _ = stopped_run
    write_report(run, target=0.05)
    page = _page(run)
    assert "<b>darcy</b>" in page
    assert html.escape(Darcy.equation) in page and "-div(a grad u) = f on (0,1)^2" in page
    assert "coefficient" in page and "solution" in page  # input -> output fields
    assert "<td>resolution</td><td>17</td>" in page and "coeff_alpha" in page  # the dataset's configuration
    for name, definition in METRICS:
        assert f"<dt>{html.escape(name)}</dt><dd>{html.escape(definition)}</dd>" in page
    assert "H1 norm" in page and "(1 + |k|^2)" in page
    assert "Target: test relative L2 &le; 0.05" in page
    write_report(run)  # a later report (as `pdeforge report` writes it) keeps the target
    assert "Target: test relative L2 &le; 0.05" in _page(run)


def test_report_says_the_run_stopped_early(stopped_run):
    run, _ = stopped_run
    write_report(run)
    best = json.loads((run / "checkpoints" / "best.json").read_text())["epoch"]
    assert (f"This run stopped at epoch 2 of 4 configured; its numbers are those of epoch {best}'s best checkpoint"
            in _page(run))
    assert "2 of 4 configured" in _page(run)


def test_report_writes_speedups_as_words_and_times_per_sample(stopped_run, tmp_path):
    run, _ = stopped_run
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["throughput"]["speedup_over_solver"] = 0.74
    metrics["throughput"]["largest_resolution"]["speedup_over_solver"] = 2.3
    (run / "metrics.json").write_text(json.dumps(metrics))
    write_report(run)
    page = _page(run)
    assert ("<td>speed-up at 17x17</td><td>1.4x slower than the solver at this size "
            "(solver time / model time = 0.74)</td>") in page
    assert ("<td>speed-up at 33x33</td><td>2.3x faster than the solver at this size "
            "(solver time / model time = 2.3)</td>") in page
    assert "solver time per sample at 33x33 (largest evaluated)" in page
    assert "model time per sample at 33x33 (largest evaluated)" in page


def test_report_points_out_a_one_signed_superres_error(stopped_run):
    run, _ = stopped_run
    rng = np.random.default_rng(1)
    truth = rng.standard_normal((4, 1, 33, 33))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["superres"]["x2"]["sign"] = sign_bias(truth, truth + 0.2)
    (run / "metrics.json").write_text(json.dumps(metrics))
    write_report(run)
    page = _page(run)
    assert re.search(r"At x2 \(33x33\) the error has a systematic sign \(prediction too high on average by "
                     r"\d+\.\d% of the solution's RMS\): a bias, not noise", page)
    metrics["superres"]["x2"]["sign"] = sign_bias(truth, truth + 0.01 * rng.standard_normal(truth.shape))
    (run / "metrics.json").write_text(json.dumps(metrics))
    write_report(run)
    assert "systematic sign" not in _page(run).split("Zero-shot super-resolution")[1]


def test_report_images_fit_the_page(stopped_run):
    run, _ = stopped_run
    write_report(run)
    page = _page(run)
    images = re.findall(r"<img [^>]*>", page)
    assert len(images) >= 3  # test samples, error spectrum, training curves, super-resolution
    assert all("max-width:100%" in img and "data:image/png;base64," in img for img in images)
    assert "img{max-width:100%" in page and "table{border-collapse:collapse;margin:1em 0;max-width:100%}" in page


def test_report_says_what_is_known_of_foreign_data(stopped_run):
    from pdeforge.evaluation._report import _problem
    from pdeforge.training import read_spec

    run, _ = stopped_run
    spec = read_spec(run)
    assert spec is not None
    for path, kind in (("/data/2D_DarcyFlow_beta1.0_Train.hdf5", "a PDEBench HDF5 file"),
                       ("/data/darcy_train_16.pt", "a neuraloperator .pt file")):
        text = " ".join(_problem(spec.model_copy(update={"data": path})))
        assert kind in text and "do not record which equation" in text
        assert "input <code>coefficient</code> -&gt; output <code>solution</code> on a 17x17 grid" in text


@pytest.mark.parametrize("speedup,words", [(0.8, "1.2x slower than the solver at this size"),
                                           (2.5, "2.5x faster than the solver at this size")])
def test_the_evaluate_summary_line_says_slower_when_the_model_is_slower(capsys, speedup, words):
    from pdeforge.cli import _train_commands

    metrics = {"test": {"rel_l2": 0.1, "h1": 0.2, "n": 3}, "resolution": [9, 9], "superres": {}, "datasets": {},
               "throughput": {"inference_samples_per_second": 10.0, "device": "cpu",
                              "speedup_over_solver": speedup, "solver_seconds_per_sample": 0.004}}
    _train_commands._print_metrics(metrics)
    out = " ".join(capsys.readouterr().out.split())
    assert f"{words} (solver 4.00 ms/sample)" in out
    assert "0.8x faster" not in out
