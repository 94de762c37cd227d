"""Online training: the bounded buffer, the producers (local processes and Dask), runs, resume, --save-data, CLI."""

import doctest
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import one_line_error
from pdeforge.data import open_dataset, solve_samples
from pdeforge.distributed import (
    DaskProducers,
    LocalProducers,
    OnlineConfig,
    OnlineHooks,
    SampleBuffer,
    train_online,
)
from pdeforge.distributed._cluster import cluster_client
from pdeforge.problems import PROBLEMS
from pdeforge.training import TrainConfig, load_checkpoint
from test_cli import invoke

CPU = torch.device("cpu")
PROBLEM_CONFIG = {"resolution": 16}
TINY = TrainConfig(model="fno", model_options={"width": 8, "modes": 4, "layers": 2}, epochs=3, batch_size=4)


def poisson():
    return PROBLEMS["poisson"](PROBLEMS["poisson"].Config(**PROBLEM_CONFIG))


def child_pids() -> set[int]:
    """Live child processes of this one, but multiprocessing's resource tracker (one per interpreter, by design)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"resource_tracker" not in command:
            found.add(int(entry.name))
    return found


def stream(n: int, start: int = 0):
    """A synthetic stream: sample i has every value equal to i."""
    indices = list(range(start, start + n))
    values = torch.tensor(indices, dtype=torch.float32).reshape(-1, 1, 1).expand(-1, 1, 3)
    return indices, values, -values


# --- the buffer -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["fifo", "reservoir"])
def test_buffer_never_exceeds_capacity_and_holds_its_values(policy):
    buffer = SampleBuffer(7, (1, 3), (1, 3), policy=policy, seed=3)
    for start in range(0, 200, 5):
        buffer.add(*stream(5, start))
        assert len(buffer) <= 7 and buffer.stats.max_occupancy <= 7
        # Every slot holds the values of the index it records (x = i, y = -i).
        held = torch.tensor(buffer.indices(), dtype=torch.float32)
        assert torch.equal(buffer.x[: len(buffer), 0, 0], held) and torch.equal(buffer.y[: len(buffer), 0, 0], -held)
        x, y = buffer.draw(4)
        assert len(x) == 4 and torch.equal(x, -y) and len(set(x[:, 0, 0].tolist())) == 4  # no repeat in a batch
        assert set(x[:, 0, 0].tolist()) <= set(held.tolist())
    assert len(buffer) == 7 and buffer.stats.seen == buffer.stats.unique == 200 and buffer.stats.draws == 160


def test_buffer_docstring_example_runs():
    from pdeforge.distributed import _buffer

    result = doctest.testmod(_buffer)
    assert result.attempted >= 1 and result.failed == 0


def test_fifo_keeps_exactly_the_newest():
    buffer = SampleBuffer(10, (1, 3), (1, 3), policy="fifo", seed=0)
    for start in range(0, 53, 3):
        buffer.add(*stream(3, start))
        newest = set(range(max(0, start + 3 - 10), start + 3))
        assert set(buffer.indices()) == newest


def test_reservoir_keeps_a_uniform_sample():
    # 1000 streams of 100 samples into 10 slots: each index is kept with probability 1/10, so over the
    # streams its count is Binomial(1000, 0.1) (mean 100, sd 9.5); a chi-square over 100 cells has
    # 99 degrees of freedom (99.9th percentile 148.2).
    capacity, n, trials = 10, 100, 1000
    counts = np.zeros(n)
    for trial in range(trials):
        buffer = SampleBuffer(capacity, (1, 3), (1, 3), policy="reservoir", seed=trial)
        buffer.add(*stream(n))
        held = buffer.indices()
        assert len(held) == capacity == len(set(held))
        counts[held] += 1
    expected = trials * capacity / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 148.2, chi2
    # Not merely the first or the last: early and late halves are kept equally often (within 5 sd).
    assert abs(counts[: n // 2].sum() - counts[n // 2 :].sum()) < 5 * np.sqrt(trials * capacity)


def test_buffer_state_restores_the_same_future():
    a = SampleBuffer(6, (1, 3), (1, 3), policy="reservoir", seed=5)
    a.add(*stream(20))
    a.draw(3)
    state = json.loads(json.dumps(a.state()))  # what a checkpoint stores
    b = SampleBuffer(6, (1, 3), (1, 3), policy="reservoir", seed=99)
    held = torch.tensor(state["indices"], dtype=torch.float32).reshape(-1, 1, 1).expand(-1, 1, 3)
    b.restore(state, held, -held)
    for buffer in (a, b):
        buffer.add(*stream(30, 20))
    assert a.indices() == b.indices() and a.stats.as_dict() == b.stats.as_dict()
    assert torch.equal(a.draw(5)[0], b.draw(5)[0])


# --- the producers ----------------------------------------------------------------------------------------------


def test_local_producers_block_when_the_trainer_is_slow_and_stop_cleanly():
    config = json.dumps(poisson().config.model_dump(mode="json"))
    before = child_pids()
    with LocalProducers("poisson", config, 0, start=8, stop=None, chunk=4, producers=1, queue_size=1) as producers:
        assert set(producers.pids) <= child_pids()
        first, columns, seconds = producers.take(block=True)
        assert first == 8
        fresh, _ = solve_samples(poisson(), seed=0, start=8, stop=12)
        assert columns.keys() == fresh.keys()
        for key in ("inputs/source", "outputs/solution"):
            assert np.array_equal(columns[key], fresh[key])
        # A slow trainer: the producer solves one chunk for its queue and one more that it cannot hand over, then
        # blocks; solved-but-not-taken samples stay at the bound however long the trainer waits.
        deadline = time.monotonic() + 30
        while producers.solved.value - 4 < producers.bound and time.monotonic() < deadline:
            time.sleep(0.05)
        ahead = producers.solved.value - 4
        assert ahead == producers.bound == 8
        time.sleep(1.0)
        assert producers.solved.value - 4 == ahead
        taken = [producers.take(block=True)[0] for _ in range(3)]
        assert taken == [12, 16, 20]  # in order, no index twice
    assert child_pids() <= before


def test_dask_producers_deliver_the_stream_in_order(tmp_path):
    problem = poisson()
    config = json.dumps(problem.config.model_dump(mode="json"))
    taken: list[int] = []
    with cluster_client(workers=1) as client:
        assert client is not None
        with DaskProducers(client, "poisson", config, 0, start=4, stop=14, chunk=4, in_flight=2) as producers:
            chunks = []
            while (item := producers.take(block=True)) is not None:
                assert len(producers._futures) <= 2
                chunks.append(item)
        # A whole run on the cluster: the same stream, taken in order, production stopped at max_solver_calls.
        summary = train_online(tmp_path / "run", online(producers=None, max_solver_calls=16), TINY, device=CPU,
                               client=client, hooks=OnlineHooks(chunk=lambda first, count: taken.append(first)))
    assert taken == list(range(0, summary["produced"], 4)) and 8 <= summary["produced"] <= 16
    assert [(first, len(c["diagnostics/seed"])) for first, c, _ in chunks] == [(4, 4), (8, 4), (12, 2)]
    fresh, _ = solve_samples(problem, seed=0, start=4, stop=14)
    assert np.array_equal(np.concatenate([c["outputs/solution"] for _, c, _ in chunks]), fresh["outputs/solution"])


# --- runs -------------------------------------------------------------------------------------------------------


class Stop(Exception):
    """Raised from a hook to interrupt a run."""


def online(**changes) -> OnlineConfig:
    values = dict(problem="poisson", problem_config=PROBLEM_CONFIG, n_val=4, n_test=4, capacity=12, min_fill=8,
                  chunk=4, steps_per_epoch=3, producers=1)
    return OnlineConfig(**{**values, **changes})


def test_online_run_resumes_its_seed_sequence_and_buffer_exactly(tmp_path):
    run, saved = tmp_path / "run", tmp_path / "saved"
    taken: list[int] = []
    occupancy: list[int] = []
    before = child_pids()

    def stop_after_first(record, row):
        occupancy.append(int(row["max_occupancy"]))
        if record.epoch == 1:
            raise Stop

    hooks = OnlineHooks(chunk=lambda first, count: taken.extend(range(first, first + count)), epoch=stop_after_first)
    with pytest.raises(Stop):
        train_online(run, online(), TINY, device=CPU, save_data=saved, hooks=hooks)
    assert child_pids() <= before  # no producer outlives an exception
    recorded = load_checkpoint(run, "latest").state
    assert recorded["epoch"] == 1 and recorded["next_index"] == len(taken) and taken == list(range(len(taken)))

    rebuilt = {}

    def resumed_buffer(buffer):
        rebuilt["indices"] = buffer.indices()
        rebuilt["x"], rebuilt["y"] = buffer.x[: len(buffer)].clone(), buffer.y[: len(buffer)].clone()

    resumed_from: list[int] = []
    workers = []

    def wait_for_a_solved_chunk(samples, loss):
        # A trainer slower than its producers (as on a real run), so the resumed run takes in new samples.
        deadline = time.monotonic() + 60
        if workers[0].solved.value == 0:
            while workers[0].solved.value == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # the solved chunk reaches the queue just after the counter

    def take(first, count):
        resumed_from.append(first)
        taken.extend(range(first, first + count))

    hooks = OnlineHooks(chunk=take,
                        producers=lambda p: (workers.append(p), resumed_from.append(p.next_index)),
                        buffer=resumed_buffer, step=wait_for_a_solved_chunk,
                        epoch=lambda record, row: occupancy.append(int(row["max_occupancy"])))
    summary = train_online(run, online(), TINY, device=CPU, save_data=saved, hooks=hooks)
    assert child_pids() <= before

    # The resumed producers start at the recorded index; no index is ever taken in twice.
    assert resumed_from[:2] == [recorded["next_index"]] * 2
    assert len(taken) == len(set(taken)) == summary["produced"] and sorted(taken) == list(range(len(taken)))
    # The rebuilt buffer holds the checkpoint's indices, with the values of a fresh solve of them.
    assert rebuilt["indices"] == recorded["buffer"]["indices"]
    problem = poisson()
    for slot, index in enumerate(rebuilt["indices"]):
        fresh, _ = solve_samples(problem, seed=0, start=index, stop=index + 1)
        assert np.array_equal(rebuilt["x"][slot, 0].numpy(), fresh["inputs/source"][0])
        assert np.array_equal(rebuilt["y"][slot, 0].numpy(), fresh["outputs/solution"][0])
    # Memory stayed bounded: the real run's buffer never held more than its capacity.
    assert max(occupancy) == 12 and summary["stats"]["max_occupancy"] == 12

    # --save-data: a verified dataset of exactly the samples taken in, equal to a direct generation.
    result = invoke("info", saved)
    assert result.exit_code == 0, result.output
    data = open_dataset(saved)
    assert len(data) == summary["produced"] and data.manifest.complete
    direct, _ = solve_samples(problem, seed=0, start=0, stop=len(data))
    inputs, outputs = data.read(0, len(data))
    assert np.array_equal(inputs["source"], direct["inputs/source"])
    assert np.array_equal(outputs["solution"], direct["outputs/solution"])

    # evaluate reads the run's own fixed test set.
    result = invoke("evaluate", run, "--superres", "none")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["n"] == 4 and metrics["test"]["reused_from_training"]
    assert abs(metrics["test"]["rel_l2"] - summary["test_rel_l2"]) < 1e-12
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert "Trained online" in page and f"<td>{summary['produced']}</td>" in page


def test_cli_online_end_to_end_and_fixed_validation_set(tmp_path):
    run = tmp_path / "cli"
    args = ["train", "--online", "poisson", "--out", run, "--set", "problem.resolution=16",
            "--set", "online.capacity=12", "--set", "online.min_fill=8", "--set", "online.chunk=4",
            "--set", "online.n_val=4", "--set", "online.n_test=4", "--set", "online.steps_per_epoch=2",
            "--set", "online.policy=reservoir", "--set", "online.max_solver_calls=20", "--set", "epochs=2",
            "--set", "batch_size=4", "--set", "model_options.width=8", "--set", "model_options.modes=4",
            "--set", "model_options.layers=2"]
    before = child_pids()
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert child_pids() <= before
    assert "trained fno online for 2 epochs" in " ".join(result.output.split())
    spec = json.loads((run / "run.json").read_text())
    assert spec["status"] == "finished" and spec["online"]["config"]["policy"] == "reservoir"
    assert spec["online"]["normalised_on"] == [0, 8]
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].endswith("produced,unique,buffer,max_occupancy,draws,max_draws") and len(rows) == 3
    assert float(rows[-1].split(",")[7]) <= 20  # production stopped at max_solver_calls

    # The validation and test sets are the same, bit for bit, as those of an independently made set.
    problem = poisson()
    for name, seed in (("val_data", 1), ("test_data", 2)):
        inputs, outputs = open_dataset(run / name).read(0, 4)
        fresh, _ = solve_samples(problem, seed=seed, start=0, stop=4)
        assert np.array_equal(inputs["source"], fresh["inputs/source"])
        assert np.array_equal(outputs["solution"], fresh["outputs/solution"])

    one_line_error(invoke("train", "--online", "poisson", "--data", tmp_path, "--out", tmp_path / "x"),
                   "--online and --data exclude each other")
    one_line_error(invoke("train", "--online", "poisson", "--out", tmp_path / "y", "--set", "online.min_fill=99",
                          "--set", "online.capacity=10"), "min_fill 99 exceeds the capacity 10")
    one_line_error(invoke("train", "--out", tmp_path / "z"), "--online PROBLEM")
    assert not (tmp_path / "y").exists()
    # A bad model option is refused before training; the fixed sets solved for it are not left behind.
    one_line_error(invoke(*args[:4], tmp_path / "w", *args[5:], "--set", "model_options.nonsense=3"), "nonsense")
    assert not (tmp_path / "w" / "val_data").exists() and not (tmp_path / "w" / "run.json").exists()


def test_a_failing_producer_ends_the_run_in_one_line_without_orphans(tmp_path):
    from pdeforge.data import generate
    from pdeforge.errors import PdeforgeError

    fixed = PROBLEMS["darcy"](PROBLEMS["darcy"].Config(resolution=16))
    for name, seed in (("val", 1), ("test", 2)):
        generate(fixed, n=2, seed=seed, out=tmp_path / name)
    # rtol 1e-30 is out of reach: the producer's first solve does not converge, and says so.
    config = online(problem="darcy", problem_config={"resolution": 16, "rtol": 1e-30},
                    val_data=str(tmp_path / "val"), test_data=str(tmp_path / "test"))
    before = child_pids()
    with pytest.raises(PdeforgeError, match=r"^sample 0 was not stored: relative residual above rtol"):
        train_online(tmp_path / "run", config, TINY, device=CPU)
    assert child_pids() <= before
    assert not (tmp_path / "run" / "checkpoints").exists()
