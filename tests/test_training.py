"""Training runs: exact resume, safe checkpoints, bad input, and learning on real third-party data."""

import csv
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from model_helpers import neuralop_file_with_bad_value
from pdeforge.data import generate, open_dataset
from pdeforge.errors import PdeforgeError
from pdeforge.problems import Darcy, DarcyConfig
from pdeforge.training import (
    TrainConfig,
    TrainingDiverged,
    fit,
    learning_rate,
    load_checkpoint,
    load_run,
    make_split,
    save_checkpoint,
    train,
)
from pdeforge.training._data import FieldLayout, SampleSource

CPU = torch.device("cpu")
SMALL_FNO = {"modes": 4, "width": 8, "layers": 2}


@pytest.fixture(scope="module")
def darcy_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "darcy"
    generate(Darcy(DarcyConfig(resolution=17)), n=60, seed=0, out=out, shard_size=16)
    return out


def small_config(**overrides) -> TrainConfig:
    options = {"model": "fno", "model_options": SMALL_FNO, "epochs": 4, "batch_size": 8, "lr": 3e-3,
               "n_val": 10, "n_test": 10}
    options.update(overrides)
    return TrainConfig(**options)


def metric_rows(run) -> list[dict]:
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_learning_rate_schedules():
    cfg = TrainConfig(epochs=10, lr=1.0, schedule="cosine")
    assert learning_rate(cfg, 0, 5) == pytest.approx(1.0)
    assert learning_rate(cfg, 25, 5) == pytest.approx(0.5)
    assert learning_rate(cfg, 50, 5) == pytest.approx(0.0)
    step = TrainConfig(epochs=10, lr=1.0, schedule="step", step_epochs=2)
    assert [learning_rate(step, s, 5) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    warm = TrainConfig(epochs=10, lr=1.0, warmup_epochs=1, schedule="constant")
    assert learning_rate(warm, 0, 4) == pytest.approx(0.25) and learning_rate(warm, 4, 4) == 1.0


def test_split_is_contiguous_and_complete():
    s = make_split(100, val_fraction=0.1, test_fraction=0.2)
    assert (s.train, s.val, s.test) == ((0, 70), (70, 80), (80, 100))
    assert make_split(50, n_train=20, n_val=5, n_test=5).sizes() == {"train": 20, "val": 5, "test": 5}
    with pytest.raises(PdeforgeError):
        make_split(10, n_train=9, n_val=2)


def test_interrupted_run_resumes_with_the_same_loss_trajectory(tmp_path, darcy_data):
    cfg = small_config()
    full = tmp_path / "full"
    train(full, cfg, darcy_data, device=CPU)

    cut = tmp_path / "cut"

    def interrupt(record):
        if record.epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cut, cfg, darcy_data, device=CPU, on_epoch=interrupt)
    assert [float(r["epoch"]) for r in metric_rows(cut)] == [1.0, 2.0]
    train(cut, cfg, darcy_data, device=CPU)  # resumes automatically from epoch 2
    a, b = metric_rows(full), metric_rows(cut)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for key in ("train_loss", "val_loss", "lr", "step"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    wa = load_checkpoint(full).model
    wb = load_checkpoint(cut).model
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_checkpoint_round_trip(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 3)).square().mean().backward()
        opt.step()
    save_checkpoint(tmp_path, epoch=3, model=model, optimizer=opt,
                    state={"step": 3, "first_loss": 1.0, "best_val": 0.5}, best=True)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.state["epoch"] == 3 and ckpt.state["best_val"] == 0.5
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.model[k], v)
    clone = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GELU(), torch.nn.Linear(4, 2))
    opt2 = torch.optim.AdamW(clone.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt.optimizer)
    for s1, s2 in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values(), strict=True):
        for key in s1:
            assert torch.equal(torch.as_tensor(s1[key]), torch.as_tensor(s2[key])), key
    assert opt2.state_dict()["param_groups"][0]["lr"] == opt.state_dict()["param_groups"][0]["lr"]


def _trained_run(tmp_path, darcy_data):
    run = tmp_path / "run"
    train(run, small_config(epochs=1), darcy_data, device=CPU)
    return run


def test_corrupt_truncated_and_foreign_checkpoints_are_refused(tmp_path, darcy_data):
    run = _trained_run(tmp_path, darcy_data)
    pointer = json.loads((run / "checkpoints" / "best.json").read_text())
    weights = run / "checkpoints" / pointer["directory"] / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-20])
    with pytest.raises(PdeforgeError, match="corrupt or truncated"):
        load_run(run, device=CPU)
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 1
    weights.write_bytes(bytes(flipped))
    with pytest.raises(PdeforgeError, match="corrupt or truncated"):
        load_run(run, device=CPU)
    # A foreign pickle whose checksum has been "fixed" in the pointer is still never unpickled.
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    weights.write_bytes(pickle.dumps({"w": Evil()}))
    from pdeforge.data._atomic import sha256_file

    pointer["sha256"]["model.safetensors"] = sha256_file(weights)
    (run / "checkpoints" / "best.json").write_text(json.dumps(pointer))
    with pytest.raises(PdeforgeError, match="not a readable safetensors file"):
        load_run(run, device=CPU)
    assert not marker.exists()


def test_finished_runs_are_not_overwritten_silently(tmp_path, darcy_data):
    run = _trained_run(tmp_path, darcy_data)
    with pytest.raises(PdeforgeError, match="finished run"):
        train(run, small_config(epochs=1), darcy_data, device=CPU)
    train(run, small_config(epochs=1, lr=1e-3), darcy_data, device=CPU, overwrite=True)


def test_resume_with_another_config_is_refused(tmp_path, darcy_data):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(run, small_config(epochs=3), darcy_data, device=CPU,
              on_epoch=lambda r: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(PdeforgeError, match="different configuration"):
        train(run, small_config(epochs=3, lr=1e-4), darcy_data, device=CPU)


@pytest.mark.parametrize("overrides, message", [
    ({"model": "transformer"}, "unknown model"),
    ({"model_options": {"wdith": 8}}, "wdith"),
])
def test_unknown_model_or_option(tmp_path, darcy_data, overrides, message):
    with pytest.raises(PdeforgeError, match=message):
        train(tmp_path / "run", small_config(**overrides), darcy_data, device=CPU)


def test_non_finite_data_are_caught_naming_the_sample(tmp_path):
    path = neuralop_file_with_bad_value(tmp_path / "bad.pt", 30, 17, float("nan"))
    with pytest.raises(PdeforgeError, match="sample 17 .* non-finite output"):
        train(tmp_path / "run", small_config(epochs=1, n_val=5, n_test=5), path, device=CPU)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path, darcy_data):
    source = open_dataset(darcy_data)
    layout = FieldLayout.of(source)
    stream = SampleSource(source, layout, device=CPU)
    split = make_split(len(source), n_val=10, n_test=10)
    cfg = small_config(epochs=5)
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    calls = {"n": 0}
    per_epoch = -(-split.sizes()["train"] // cfg.batch_size)

    def loss(pred, target):
        value = ((pred - target) ** 2).mean()
        if not torch.is_grad_enabled():  # validation
            return value
        calls["n"] += 1
        return value * float("nan") if calls["n"] > 2 * per_epoch + 1 else value

    seen = []
    with pytest.raises(TrainingDiverged, match="epoch 3"):
        fit(model, opt, stream, split, cfg, loss, on_epoch=[seen.append])
    assert [r.epoch for r in seen] == [1, 2]


def test_shape_mismatch_between_run_and_data(tmp_path, darcy_data):
    from pdeforge.evaluation import evaluate_run

    run = _trained_run(tmp_path, darcy_data)
    other = tmp_path / "other.pt"
    torch.save({"x": torch.rand(4, 2, 17, 17), "y": torch.rand(4, 17, 17)}, other)
    with pytest.raises(PdeforgeError, match="input / .* output channels"):
        evaluate_run(run, device=CPU, datasets=[other], superres=[])


def test_fno_learns_neuraloperators_real_darcy_data(tmp_path, neuralop_dir):
    """Real third-party data (neuraloperator's 16x16 Darcy files): a short run must already learn."""
    cfg = TrainConfig(model="fno", model_options={"modes": 8, "width": 32, "layers": 4}, epochs=12, batch_size=20,
                      lr=3e-3, n_val=50)
    summary = train(tmp_path / "run", cfg, neuralop_dir / "darcy_train_16.pt",
                    test_data=neuralop_dir / "darcy_test_16.pt", device=CPU)
    assert summary["test_rel_l2"] < 0.2, summary


class DataAccess:
    """Counts, per shard file name, the sha256 computations and the HDF5 opens for reading of pdeforge's readers."""

    def __init__(self, monkeypatch) -> None:
        import collections

        import h5py

        from pdeforge.data import _readers

        self.hashes: collections.Counter = collections.Counter()
        self.opens: collections.Counter = collections.Counter()
        real_hash, real_open = _readers.sha256_file, h5py.File

        def counting_hash(path, *args, **kwargs):
            self.hashes[Path(path).name] += 1
            return real_hash(path, *args, **kwargs)

        def counting_open(path, mode="r", *args, **kwargs):
            if mode == "r":
                self.opens[Path(path).name] += 1
            return real_open(path, mode, *args, **kwargs)

        monkeypatch.setattr(_readers, "sha256_file", counting_hash)
        monkeypatch.setattr(h5py, "File", counting_open)
        self._monkeypatch, self._readers = monkeypatch, _readers
        self.new_process()

    def new_process(self) -> None:
        """Forget every digest, as a fresh process would, and reset the counts."""
        self._monkeypatch.setattr(self._readers, "_DIGESTS", {})
        self.hashes.clear()
        self.opens.clear()


SHARDS = [f"shard-{i:05d}.h5" for i in range(4)]  # darcy_data: 60 samples in shards of 16


def test_train_and_evaluate_read_and_verify_each_shard_once(tmp_path, darcy_data, monkeypatch):
    from pdeforge.evaluation import evaluate_run

    seen = DataAccess(monkeypatch)
    run = tmp_path / "run"
    summary = train(run, small_config(epochs=2), darcy_data, device=CPU)
    # The data fit in the cache: every shard is verified once and opened once for the whole run
    # (normalisers, two epochs with validation, the test split).
    assert seen.hashes == {name: 1 for name in SHARDS}
    assert seen.opens == {name: 1 for name in SHARDS}

    seen.new_process()
    metrics = evaluate_run(run, device=CPU, superres=[])
    assert seen.hashes == {name: 1 for name in SHARDS}
    # The test split (samples 50..60) lives in the last shard: read once for the test split, and once,
    # like every shard, for the solver's recorded wall times.
    assert seen.opens == {**{name: 1 for name in SHARDS[:3]}, SHARDS[3]: 2}
    assert metrics["test"]["reused_from_training"] and metrics["test"]["n"] == 10
    assert metrics["test"]["rel_l2"] == pytest.approx(summary["test_rel_l2"], rel=1e-12)

    seen.hashes.clear()  # the same process again: nothing is hashed twice
    evaluate_run(run, device=CPU, superres=[])
    assert not seen.hashes


def test_streaming_from_storage_opens_each_shard_once_per_batch_it_holds(tmp_path, darcy_data, monkeypatch):
    """Without the cache every batch is read from the shards it touches: one open per shard per batch.

    The DataLoader's dataset reads one planned batch at a time (so that each
    rank of a data-parallel run reads only its share); the opens are counted
    with the loader in this process (``loader_workers=0``), and the shards are
    still hashed once.
    """
    seen = DataAccess(monkeypatch)
    epochs = 2
    train(tmp_path / "run", small_config(epochs=epochs, cache_mb=0, loader_workers=0), darcy_data, device=CPU)
    assert seen.hashes == {name: 1 for name in SHARDS}
    # Shards of 16, batches of 8. Train 0..40: shards 0 and 1 hold two batches each and shard 2 one
    # (32..40) whatever the shuffle, since 16 and 8 are multiples of 8; the normalisers read the
    # training split as one batch of 256 (shards 0-2 once). Validation 40..50 is [40, 48) in shard 2
    # and [48, 50) in shard 3, every epoch; the test split 50..60 is two batches in shard 3.
    expected = {SHARDS[0]: 1 + 2 * epochs, SHARDS[1]: 1 + 2 * epochs, SHARDS[2]: 1 + epochs + epochs,
                SHARDS[3]: epochs + 2}
    assert seen.opens == expected


def test_loader_workers_do_not_change_the_run(tmp_path, darcy_data, monkeypatch):
    """Streamed through two prefetching worker processes, cached in memory, or read in this process:
    the same batches in the same order, so the same loss trajectory, bit for bit (and the shards are
    hashed once in this process for the three runs)."""
    seen = DataAccess(monkeypatch)
    runs = {}
    cases = {"inline": {"cache_mb": 0, "loader_workers": 0}, "workers": {"cache_mb": 0, "loader_workers": 2},
             "cached": {}}
    for name, options in cases.items():
        runs[name] = tmp_path / name
        train(runs[name], small_config(epochs=2, **options), darcy_data, device=CPU)
    assert seen.hashes == {name: 1 for name in SHARDS}
    reference = metric_rows(runs["inline"])
    for name in ("workers", "cached"):
        rows = metric_rows(runs[name])
        assert [(r["train_loss"], r["val_loss"]) for r in rows] == [(r["train_loss"], r["val_loss"]) for r in reference]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, darcy_data):
    run = tmp_path_factory.mktemp("finished") / "run"
    train(run, small_config(epochs=1), darcy_data, device=CPU)
    return run


def test_evaluate_recomputes_when_the_record_does_not_match(tmp_path, finished_run):
    from pdeforge.evaluation import evaluate_run

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    reused = evaluate_run(run, device=CPU, superres=[])
    record = json.loads((run / "test_metrics.json").read_text())
    assert reused["test"]["reused_from_training"] and record["span"] == [50, 60]
    record["weights_sha256"] = "0" * 64  # as if the best checkpoint had changed since training
    (run / "test_metrics.json").write_text(json.dumps(record))
    fresh = evaluate_run(run, device=CPU, superres=[])
    assert not fresh["test"]["reused_from_training"]
    # What train recorded is what evaluate computes from the same weights and data.
    np.testing.assert_allclose(fresh["per_sample"]["rel_l2"], reused["per_sample"]["rel_l2"], rtol=1e-5)
    np.testing.assert_allclose(fresh["per_sample"]["h1"], reused["per_sample"]["h1"], rtol=1e-5)
    (run / "test_metrics.json").unlink()
    assert not evaluate_run(run, device=CPU, superres=[])["test"]["reused_from_training"]


def test_one_pass_normalisers_equal_separate_fits(darcy_data):
    from pdeforge.training._normalise import ChannelNormaliser
    from pdeforge.training._run import RunSpec, build_network, fit_normalisers

    source = open_dataset(darcy_data)
    layout = FieldLayout.of(source)
    stream = SampleSource(source, layout, device=CPU)
    split = make_split(len(source), n_val=10, n_test=10)
    spec = RunSpec(config=small_config(), data=str(darcy_data), test_data=None, layout=layout, split=split,
                   periodic=False)
    model = build_network(spec)
    fit_normalisers(model, stream.batches(*split.train, 256))
    ins = ChannelNormaliser(layout.in_channels, 2).fit(x for x, _ in stream.batches(*split.train, 7))
    outs = ChannelNormaliser(layout.out_channels, 2).fit(y for _, y in stream.batches(*split.train, 7))
    for fitted, separate in ((model.inputs, ins), (model.outputs, outs)):
        torch.testing.assert_close(fitted.mean, separate.mean, rtol=1e-6, atol=0)
        torch.testing.assert_close(fitted.std, separate.std, rtol=1e-6, atol=0)
    assert float(model.inputs.std.min()) > 0 and float((model.outputs.mean - model.inputs.mean).abs().max()) > 0


@pytest.mark.parametrize("edit, fragment", [
    (lambda p: p.update(status="paused"), "status"),
    (lambda p: p["layout"].pop("space"), "layout.space"),
    (lambda p: p["split"].update(train="zero"), "split.train"),
    (lambda p: p["config"].update(lr=-1), "config.lr"),
    (lambda p: p.update(format="other"), "format"),
])
def test_a_corrupt_run_file_is_one_clear_error(tmp_path, finished_run, edit, fragment):
    from pdeforge.training import read_spec

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    payload = json.loads((run / "run.json").read_text())
    assert read_spec(run).model_dump(mode="json") == payload  # the file is the model, field for field
    edit(payload)
    (run / "run.json").write_text(json.dumps(payload))
    with pytest.raises(PdeforgeError, match="is not a pdeforge run description") as info:
        read_spec(run)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    (run / "run.json").write_text("{not json")
    with pytest.raises(PdeforgeError, match="is not a pdeforge run description"):
        load_run(run, device=CPU)
