"""Generation on a Dask LocalCluster: the bytes of a serial run, retries after a worker's death, resume, the CLI."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dask
import pytest

from helpers import one_line_error
from pdeforge.data import generate, open_dataset
from pdeforge.data._atomic import sha256_file
from pdeforge.distributed import cluster_client, generate_on_dask
from pdeforge.errors import PdeforgeError
from pdeforge.problems import Burgers, BurgersConfig, Darcy, DarcyConfig, Poisson, PoissonConfig
from test_cli import invoke


@pytest.fixture(scope="module")
def client():
    """One embedded cluster of two single-threaded worker processes for the module's tests."""
    with cluster_client(2) as connected:
        yield connected


def shard_digests(path: Path) -> dict[str, str]:
    """The sha256 of every shard file of a dataset directory, by name, hashed here."""
    return {p.name: sha256_file(p) for p in sorted(path.glob("shard-*.h5"))}


def without_timings(path: Path) -> dict:
    """A dataset's manifest as JSON, without the shards' solve times."""
    return open_dataset(path).manifest.model_dump(mode="json", exclude={"shards": {"__all__": {"solve_seconds"}}})


def assert_same_dataset(a: Path, b: Path) -> None:
    """Same shard files byte for byte, same manifest apart from timings, every shard verified, no partial left."""
    assert shard_digests(a) == shard_digests(b)
    assert without_timings(a) == without_timings(b)
    assert open_dataset(a).manifest.digest() == open_dataset(b).manifest.digest()
    assert all(status.ok for status in open_dataset(b).verify())
    assert sorted(p.name for p in b.iterdir()) == ["manifest.json", *shard_digests(b)]


def test_two_workers_write_the_bytes_of_a_serial_run(tmp_path, client):
    problem = Darcy(DarcyConfig(resolution=16))
    generate(problem, n=12, seed=3, out=tmp_path / "serial", shard_size=2)
    advances = []
    manifest = generate_on_dask(problem, client, n=12, seed=3, out=tmp_path / "dask", shard_size=2,
                                progress=advances.append)
    assert manifest.complete and len(manifest.shards) == 6
    assert_same_dataset(tmp_path / "serial", tmp_path / "dask")
    assert advances == [0] + [2] * 6  # nothing kept, then one advance per finished shard
    ds = open_dataset(tmp_path / "dask")
    wall = ds.table("diagnostics")["wall_seconds"]
    assert len(wall) == 12 and (wall > 0).all()


@contextlib.contextmanager
def killing_a_writer(out: Path) -> Iterator[list[tuple[int, Path, bool]]]:
    """SIGKILL the first process seen writing a shard of ``out``; yield ``[(pid, its partial file, left behind)]``.

    The pid is read from the temporary file's name, ``shard-00003.h5.<pid>.partial``;
    ``left behind`` says the file still existed after the kill (the writer died mid-shard).
    """
    killed: list[tuple[int, Path, bool]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for partial in out.glob("shard-*.partial"):
                pid = int(partial.name.split(".")[-2])
                os.kill(pid, signal.SIGKILL)
                killed.append((pid, partial, partial.exists()))
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield killed
    finally:
        stop.set()
        watcher.join()


SLOW = Darcy(DarcyConfig(resolution=128))
"""Shards of a few samples take about a second: a worker is reliably caught writing one."""


def test_a_worker_killed_mid_shard_still_gives_the_serial_bytes(tmp_path, client):
    options = {"n": 24, "seed": 7, "shard_size": 6, "batch_size": 2}
    generate(SLOW, out=tmp_path / "serial", **options)
    out = tmp_path / "dask"
    with killing_a_writer(out) as killed:
        generate_on_dask(SLOW, client, out=out, **options)
    assert len(killed) == 1, "no worker was caught writing a shard"
    pid, partial, left_behind = killed[0]
    assert left_behind  # killed mid-shard: its temporary file outlived it
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the writer is dead: its shard was written again by a retried task
    assert not partial.exists()  # the dead writer's temporary file was removed, never recorded
    assert_same_dataset(tmp_path / "serial", out)


def test_a_shard_whose_workers_keep_dying_is_one_user_error(tmp_path):
    out = tmp_path / "ds"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), cluster_client(1) as one:
        assert one is not None
        died = r"shard-0000\d.h5: the 1 worker\(s\) that ran its task all died .*--resume"
        with killing_a_writer(out) as killed, pytest.raises(PdeforgeError, match=died):
            generate_on_dask(SLOW, one, n=12, seed=0, out=out, shard_size=6, batch_size=2)
    assert len(killed) == 1
    state = open_dataset(out, allow_incomplete=True).manifest
    assert not state.complete and len(state.shards) < 2
    assert all(status.ok for status in open_dataset(out, allow_incomplete=True).verify())


class Interrupted(Exception):
    """Raised by a progress callback to stop a run after some shards, as a Ctrl-C would."""


def test_resume_after_an_interrupted_dask_run(tmp_path, client):
    problem = Poisson(PoissonConfig(resolution=16))
    options = {"n": 10, "seed": 2, "shard_size": 2}
    generate(problem, out=tmp_path / "serial", **options)
    out = tmp_path / "dask"
    finished = []

    def stop_after_two_shards(advance: int) -> None:
        finished.append(advance)
        if len(finished) == 3:  # the kept samples (0), then two shards
            raise Interrupted

    with pytest.raises(Interrupted):
        generate_on_dask(problem, client, out=out, progress=stop_after_two_shards, **options)
    while any(client.processing().values()):  # cancelled tasks that had started still finish on their worker
        time.sleep(0.05)
    interrupted = open_dataset(out, allow_incomplete=True).manifest
    assert not interrupted.complete and 1 <= len(interrupted.shards) < 5
    kept = {r.path: (out / r.path).stat().st_ino for r in interrupted.shards}
    advances = []
    manifest = generate_on_dask(problem, client, out=out, mode="resume", progress=advances.append, **options)
    assert manifest.complete
    assert advances[0] == 2 * len(kept) and sum(advances) == 10
    assert {p: (out / p).stat().st_ino for p in kept} == kept  # verified shards are kept, not rewritten
    assert_same_dataset(tmp_path / "serial", out)


def test_a_sample_that_fails_its_check_on_a_worker_is_one_user_error(tmp_path, client):
    problem = Burgers(BurgersConfig(resolution=32, dt=0.1, t_final=0.2))
    with pytest.raises(PdeforgeError, match="sample 0 was not stored.*cfl_limit"):
        generate_on_dask(problem, client, n=2, seed=0, out=tmp_path / "ds")
    assert not list((tmp_path / "ds").glob("shard-*"))


def test_an_unregistered_problem_is_refused_before_anything_runs(tmp_path, client):
    class Mine(Poisson):
        pass

    with pytest.raises(PdeforgeError, match="not a registered problem"):
        generate_on_dask(Mine(PoissonConfig(resolution=8)), client, n=2, seed=0, out=tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("args, fragment", [
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "exclude each other"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_cluster_options_are_checked_before_anything_is_written(tmp_path, args, fragment):
    out = tmp_path / "ds"
    one_line_error(invoke("generate", "poisson", "--n", 2, "--resolution", 8, "--out", out, *args), fragment)
    assert not out.exists()


def test_cli_generates_on_two_workers_and_info_verifies_it(tmp_path):
    common = ["--n", 6, "--resolution", 16, "--seed", 5, "--shard-size", 2]
    assert invoke("generate", "poisson", *common, "--out", tmp_path / "serial").exit_code == 0
    result = invoke("generate", "poisson", *common, "--workers", 2, "--out", tmp_path / "dask")
    assert result.exit_code == 0, result.output
    assert result.output.count("Dask dashboard") == 1
    assert "wrote 6 samples in 3 shard(s)" in result.output
    info = invoke("info", tmp_path / "dask")
    assert info.exit_code == 0, info.output
    assert info.output.count(", ok") == 3
    assert_same_dataset(tmp_path / "serial", tmp_path / "dask")


SERIAL_PROBE = """
import json, sys
from pdeforge.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print(json.dumps(sorted(m for m in ("dask", "distributed") if m in sys.modules)))
"""


def test_a_serial_generate_imports_no_dask(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", SERIAL_PROBE, "generate", "poisson", "--n", "2", "--resolution", "8",
                           "--out", str(tmp_path / "ds")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert "Dask" not in proc.stderr


def test_a_user_error_on_an_embedded_cluster_is_one_line_without_dask_noise(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "pdeforge", "generate", "burgers", "--n", "2", "--workers", "1",
                           "--out", str(tmp_path / "ds"), "--set", "resolution=32", "--set", "dt=0.1",
                           "--set", "t_final=0.2"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and "sample 0 was not stored" in errors[0], proc.stderr
    assert lines[0].startswith("Dask dashboard")
    assert not [line for line in lines if "distributed" in line or "Traceback" in line], proc.stderr
    assert not list((tmp_path / "ds").glob("shard-*"))


def test_cli_generates_on_an_existing_scheduler_and_leaves_it_running(tmp_path, client):
    """``--scheduler ADDRESS`` connects to a cluster the user runs (here the module's), writes serial bytes, and
    closes only its own connection: the cluster still answers afterwards."""
    common = ["--n", 6, "--resolution", 16, "--seed", 7, "--shard-size", 2]
    assert invoke("generate", "poisson", *common, "--out", tmp_path / "serial").exit_code == 0
    address = client.scheduler.address
    result = invoke("generate", "poisson", *common, "--scheduler", address, "--out", tmp_path / "external")
    assert result.exit_code == 0, result.output
    assert "wrote 6 samples in 3 shard(s)" in result.output
    assert_same_dataset(tmp_path / "serial", tmp_path / "external")
    assert client.submit(sum, [1, 2], pure=False).result() == 3
