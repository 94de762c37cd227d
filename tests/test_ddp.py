"""The DataLoader data path and data-parallel training under torchrun: the same batches, the same run.

The torchrun tests start ``python -m torch.distributed.run --nproc_per_node=2``
on ``tests/ddp_rank_audit.py`` (``python -m pdeforge`` with an audit of the
non-zero rank's writes) on a tiny Darcy problem, with gloo on the CPU.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pdeforge.data import generate, open_dataset
from pdeforge.errors import PdeforgeError
from pdeforge.problems import Darcy, DarcyConfig
from pdeforge.training import Solo, TrainConfig, load_checkpoint, read_metrics, train
from pdeforge.training._data import FieldLayout, SampleSource, epoch_plan, rank_part

CPU = torch.device("cpu")
HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"

# 28 samples in shards of 10: 20 train (batches 7, 7, 6: each rank reads 3 or 4 samples), 5 validation
# (one batch 0..5 of 20..25, split 2 + 3), 3 test; float64, so that one process and two agree to rounding.
SETTINGS = {"epochs": 3, "batch_size": 7, "n_train": 20, "n_val": 5, "n_test": 3, "precision": "float64",
            "model_options": {"modes": 4, "width": 8, "layers": 2}, "lr": 3e-3, "cache_mb": 0}


@pytest.fixture(scope="module")
def tiny_darcy(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "darcy"
    generate(Darcy(DarcyConfig(resolution=16)), n=28, seed=0, out=out, shard_size=10)
    return out


def cli_settings(settings: dict) -> list[str]:
    args = []
    for key, value in settings.items():
        if isinstance(value, dict):
            args += [a for k, v in value.items() for a in ("--set", f"{key}.{k}={v}")]
        else:
            args += ["--set", f"{key}={value}"]
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(data: Path, run: Path, settings: dict, *, stop_after: int | None = None) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2 -m pdeforge train`` (through the audit driver); rank 1's audit log beside RUN."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1", "PDEFORGE_AUDIT_RUN": str(run), "PDEFORGE_AUDIT_LOG": f"{run}.audit"}
    env.pop("PDEFORGE_STOP_AFTER", None)
    if stop_after is not None:
        env["PDEFORGE_STOP_AFTER"] = str(stop_after)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master-addr=127.0.0.1",
               f"--master-port={free_port()}", "--monitor-interval=0.1", str(HERE / "ddp_rank_audit.py"), "train",
               "--data", str(data), "--out", str(run), "--device", "cpu", *cli_settings(settings)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)


def audit_of_rank1(run: Path) -> str:
    """What rank 1 tried to write under ``run`` (nothing, if only rank 0 writes); rank 0's log must show its writes."""
    assert "metrics.csv" in Path(f"{run}.audit.rank0").read_text()  # the hook does see the writes
    return Path(f"{run}.audit.rank1").read_text()


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, tiny_darcy):
    run = tmp_path_factory.mktemp("ddp-full") / "run"
    done = torchrun(tiny_darcy, run, SETTINGS)
    assert done.returncode == 0, done.stderr[-3000:]
    return run, done


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path, tiny_darcy, two_process_run):
    """Per-epoch training and validation losses and the final weights of 2 ranks equal 1 process's.

    In float64 the only differences are the order of the sums (the gradient all-reduce, the
    weighted share losses, the validation sums), so they stay at rounding level: the bound 1e-10
    is far below the 1e-5 a wrong weighting (a last batch of 6 split 3 + 3 vs the mean of means)
    or a wrong share would show. Only rank 0 printed the summary and rank 1 wrote nothing.
    """
    run, done = two_process_run
    one = tmp_path / "one"
    train(one, TrainConfig(**SETTINGS), tiny_darcy, device=CPU)
    a, b = read_metrics(one), read_metrics(run)
    assert [r["epoch"] for r in b] == [1.0, 2.0, 3.0]
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=1e-10, atol=0)
    assert [r["step"] for r in a] == [r["step"] for r in b] and [r["lr"] for r in a] == [r["lr"] for r in b]
    wa, wb = load_checkpoint(one).model, load_checkpoint(run).model
    assert wa.keys() == wb.keys()
    for k in wa:
        assert wb[k].dtype == torch.float64
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-10, atol=1e-12)
    test_a = json.loads((one / "test_metrics.json").read_text())
    test_b = json.loads((run / "test_metrics.json").read_text())
    np.testing.assert_allclose(test_b["rel_l2"], test_a["rel_l2"], rtol=1e-9)
    assert done.stderr.count("trained fno for 3 epochs") == 1
    assert audit_of_rank1(run) == ""


@pytest.mark.parametrize("model, options", [
    ("t1", {"modes": 4, "width": 8, "layers": 2}),  # trained on its Parseval loss in frequency space
    ("pod-deeponet", {"modes": 4, "sensors": 8, "width": 16}),  # a fit step that sizes its basis buffers
])
def test_models_with_their_own_training_path_train_like_one_process(tmp_path, tiny_darcy, model, options):
    """The objective module routes T1's frequency-space loss through DDP, and the POD basis every rank
    fits (then takes from rank 0) has the same shapes everywhere: one epoch equals one process's."""
    settings = {**SETTINGS, "model": model, "model_options": options, "epochs": 1}
    done = torchrun(tiny_darcy, tmp_path / "two", settings)
    assert done.returncode == 0, done.stderr[-3000:]
    train(tmp_path / "one", TrainConfig(**settings), tiny_darcy, device=CPU)
    a, b = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose([r[key] for r in b], [r[key] for r in a], rtol=1e-10, atol=0)
    assert audit_of_rank1(tmp_path / "two") == ""


def test_a_crashed_torchrun_run_resumes_to_the_uninterrupted_trajectory(tmp_path, tiny_darcy, two_process_run):
    """Rank 0 is killed after the checkpoint of epoch 2; the same torchrun command resumes from it on
    both ranks, and the losses and weights equal those of the uninterrupted two-process run exactly."""
    full, _ = two_process_run
    run = tmp_path / "run"
    crashed = torchrun(tiny_darcy, run, SETTINGS, stop_after=2)
    assert crashed.returncode != 0
    assert [r["epoch"] for r in read_metrics(run)] == [1.0, 2.0]
    assert set(load_checkpoint(run).rank_rngs) == {1}  # rank 1's generator state is in the checkpoint
    assert audit_of_rank1(run) == ""

    resumed = torchrun(tiny_darcy, run, SETTINGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr and audit_of_rank1(run) == ""
    a, b = read_metrics(full), read_metrics(run)
    for key in ("epoch", "step", "train_loss", "val_loss", "lr"):
        assert [r[key] for r in a] == [r[key] for r in b], key
    wa, wb = load_checkpoint(full).model, load_checkpoint(run).model
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_too_small_batches_for_the_processes_are_refused_in_one_line(tmp_path, tiny_darcy):
    """20 training samples in batches of 9 leave a last batch of 2: fine for 2 processes, not for 3."""
    config = TrainConfig(**{**SETTINGS, "batch_size": 9, "epochs": 1})
    with pytest.raises(PdeforgeError, match=r"^3 processes cannot share training batches of 2 samples") as err:
        train(tmp_path / "run", config, tiny_darcy, device=CPU, team=Solo(rank=0, world=3))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before the run directory was made


def old_order(blocks: list[tuple[int, int]], batch_size: int, seed: tuple[int, int] | None) -> list[list[int]]:
    """The batch order of the hand-written loop the DataLoader replaced: blocks permuted, then the samples
    of each block as the block is reached, leftovers carried into the next block."""
    rng = np.random.default_rng(list(seed)) if seed is not None else None
    if rng is not None:
        blocks = [blocks[i] for i in rng.permutation(len(blocks))]
    out, carry = [], []
    for lo, hi in blocks:
        samples = list(range(lo, hi))
        if rng is not None:
            samples = [samples[i] for i in rng.permutation(hi - lo)]
        samples = carry + samples
        full = len(samples) // batch_size * batch_size
        out += [samples[i : i + batch_size] for i in range(0, full, batch_size)]
        carry = samples[full:]
    return out + ([carry] if carry else [])


@pytest.mark.parametrize("batch_size", [3, 7, 10, 40])
def test_the_plan_is_the_old_loops_order(batch_size):
    blocks = [(0, 10), (10, 20), (20, 28), (28, 31)]
    for seed in [None, (0, 0), (0, 1), (5, 3)]:
        plan = epoch_plan(blocks, batch_size, shuffle_seed=seed)
        assert [b.tolist() for b in plan] == old_order(blocks, batch_size, seed)
    a = epoch_plan(blocks, batch_size, shuffle_seed=(0, 0))
    b = epoch_plan(blocks, batch_size, shuffle_seed=(0, 1))
    assert sorted(np.concatenate(a).tolist()) == list(range(31)) and any(
        x.tolist() != y.tolist() for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_rank_parts_are_contiguous_balanced_and_complete(world):
    for n in range(world, 12):
        batch = np.random.default_rng(n).permutation(100)[:n]
        parts = [rank_part(batch, r, world) for r in range(world)]
        assert np.concatenate(parts).tolist() == batch.tolist()
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("cache_mb", [0, 2048])
def test_the_loader_yields_exactly_the_planned_batches(tiny_darcy, workers, cache_mb):
    """Values and order: every batch (and every rank's share) is the stored samples of the plan, bit for bit."""
    source = open_dataset(tiny_darcy)
    layout = FieldLayout.of(source)
    inputs, outputs = source.read(0, len(source))
    x_all, y_all = layout.stack(inputs, layout.inputs), layout.stack(outputs, layout.outputs)
    stream = SampleSource(source, layout, device=CPU, cache_mb=cache_mb, workers=workers, span=(0, 25),
                          dtype=torch.float64)
    try:
        for span, seed, part in [((0, 20), (0, 0), (0, 1)), ((0, 20), (0, 1), (0, 1)), ((0, 20), (3, 2), (1, 2)),
                                 ((0, 20), (3, 2), (0, 2)), ((20, 25), None, (0, 1)), ((3, 28), (1, 1), (2, 3))]:
            plan = stream.plan(*span, 7, shuffle_seed=seed)
            got = list(stream.batches(*span, 7, shuffle_seed=seed, part=part))
            assert len(got) == len(plan)
            for rows, (x, y) in zip(plan, got, strict=True):
                share = torch.from_numpy(rank_part(rows, *part))
                assert x.dtype == torch.float64 and torch.equal(x, x_all[share].double())
                assert torch.equal(y, y_all[share].double())
    finally:
        stream.close()


def test_a_data_error_in_a_loader_worker_stays_one_line(tmp_path):
    """A non-finite sample met in a worker process (streamed data) ends in the same one-line error, naming it."""
    from model_helpers import neuralop_file_with_bad_value

    path = neuralop_file_with_bad_value(tmp_path / "bad.pt", 30, 17, float("nan"))
    config = TrainConfig(model="fno", model_options={"modes": 2, "width": 4, "layers": 1}, epochs=1, batch_size=8,
                         n_val=5, n_test=5, cache_mb=0, loader_workers=2)
    with pytest.raises(PdeforgeError, match=r"^sample 17 of .*bad\.pt has non-finite output values") as err:
        train(tmp_path / "run", config, path, device=CPU)
    assert "\n" not in str(err.value) and "Traceback" not in str(err.value)
