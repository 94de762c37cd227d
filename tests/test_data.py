"""The dataset store: format, checksums, determinism, resume, readers."""

import dataclasses
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pdeforge.data import PdeforgeDataset, generate, open_dataset, write_shard
from pdeforge.data._atomic import sha256_file
from pdeforge.errors import PdeforgeError
from pdeforge.problems import Burgers, BurgersConfig, Darcy, DarcyConfig, NavierStokes, NavierStokesConfig


def small_darcy() -> Darcy:
    return Darcy(DarcyConfig(resolution=16))


def arrays(path: Path) -> dict[str, np.ndarray]:
    ds = open_dataset(path)
    inputs, outputs = ds.read(0, len(ds))
    out = {**{f"in/{k}": v for k, v in inputs.items()}, **{f"out/{k}": v for k, v in outputs.items()}}
    out.update({f"params/{k}": v for k, v in ds.table("params").items()})
    out.update({f"diag/{k}": v for k, v in ds.table("diagnostics").items() if k != "wall_seconds"})
    return out


def assert_same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_layout_is_self_describing_and_readable_with_plain_h5py(tmp_path):
    out = tmp_path / "ds"
    generate(small_darcy(), n=10, seed=3, out=out, shard_size=4)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "pdeforge.dataset" and manifest["format_version"] == 1
    assert manifest["problem"] == "darcy" and manifest["n_samples"] == 10 and manifest["seed"] == 3
    assert manifest["config"]["resolution"] == 16 and manifest["complete"]
    assert [(s["first_index"], s["count"]) for s in manifest["shards"]] == [(0, 4), (4, 4), (8, 2)]
    with h5py.File(out / manifest["shards"][1]["path"], "r") as h5:
        assert h5.attrs["problem"] == "darcy"
        assert json.loads(h5.attrs["config"])["resolution"] == 16
        assert set(h5) == {"coords", "inputs", "outputs", "params", "diagnostics"}
        assert h5["inputs/coefficient"].shape == (4, 16, 16)
        assert h5["outputs/solution"].shape == (4, 16, 16)
        assert set(h5["diagnostics"]) >= {"residual", "iterations", "seed"}
        assert "wall_seconds" not in h5["diagnostics"]  # a timing is not data: it lives in the manifest
        assert (h5["diagnostics/residual"][()] <= 1e-8).all()
        np.testing.assert_allclose(h5["coords/x"][()], np.linspace(0, 1, 16))
        # Dirichlet boundary stored as zeros; the solution of -div(a grad u) = 1 is positive inside.
        u = h5["outputs/solution"][()]
        assert (u[:, 0, :] == 0).all() and (u[:, 1:-1, 1:-1] > 0).all()


def test_same_seed_gives_identical_arrays_whatever_shard_and_batch_size(tmp_path):
    generate(small_darcy(), n=9, seed=5, out=tmp_path / "a", shard_size=9, batch_size=9)
    generate(small_darcy(), n=9, seed=5, out=tmp_path / "b", shard_size=2, batch_size=1)
    generate(small_darcy(), n=9, seed=5, out=tmp_path / "c", shard_size=4, batch_size=3)
    reference = arrays(tmp_path / "a")
    assert_same_arrays(reference, arrays(tmp_path / "b"))
    assert_same_arrays(reference, arrays(tmp_path / "c"))
    generate(small_darcy(), n=9, seed=6, out=tmp_path / "d")
    assert not np.array_equal(reference["in/coefficient"], arrays(tmp_path / "d")["in/coefficient"])


def shard_digests(path: Path) -> dict[str, str]:
    """The sha256 of every shard file of a dataset directory, by name, hashed here."""
    return {p.name: sha256_file(p) for p in sorted(path.glob("shard-*.h5"))}


def test_two_runs_write_byte_identical_shards_whatever_the_batch_size(tmp_path):
    for name, batch in (("a", 3), ("b", 3), ("c", 1), ("d", 2)):
        generate(small_darcy(), n=7, seed=4, out=tmp_path / name, shard_size=3, batch_size=batch)
    reference = shard_digests(tmp_path / "a")
    assert list(reference) == ["shard-00000.h5", "shard-00001.h5", "shard-00002.h5"]
    for name in "bcd":
        assert shard_digests(tmp_path / name) == reference
    manifests = [open_dataset(tmp_path / name).manifest for name in "abcd"]
    # The timings differ from run to run; the digest, which names the data, does not.
    assert all(r.solve_seconds is not None and r.solve_seconds > 0 for m in manifests for r in m.shards)
    assert len({m.digest() for m in manifests}) == 1
    assert [r.sha256 for r in manifests[0].shards] == list(reference.values())


def test_wall_seconds_per_sample_come_from_the_manifest(tmp_path):
    out = tmp_path / "ds"
    generate(small_darcy(), n=5, seed=0, out=out, shard_size=2)
    ds = open_dataset(out)
    expected = np.concatenate([np.full(r.count, r.solve_seconds / r.count) for r in ds.manifest.shards])
    np.testing.assert_array_equal(ds.table("diagnostics")["wall_seconds"], expected)
    np.testing.assert_array_equal(ds.table("diagnostics", ["wall_seconds"])["wall_seconds"], expected)
    assert set(ds.table("diagnostics", ["iterations"])) == {"iterations"}


def test_a_dataset_whose_shards_store_wall_seconds_still_reads(tmp_path):
    """Shards written before the timing moved to the manifest hold ``diagnostics/wall_seconds`` themselves."""
    out = tmp_path / "ds"
    generate(small_darcy(), n=4, seed=0, out=out, shard_size=2)
    manifest = json.loads((out / "manifest.json").read_text())
    digest = open_dataset(out).manifest.digest()
    old_times = {"shard-00000.h5": [0.5, 0.25], "shard-00001.h5": [1.0, 2.0]}
    for record in manifest["shards"]:
        with h5py.File(out / record["path"], "a") as h5:
            h5["diagnostics/wall_seconds"] = np.array(old_times[record["path"]])
        record["sha256"] = sha256_file(out / record["path"])
        del record["solve_seconds"]  # an old manifest has no such key
    (out / "manifest.json").write_text(json.dumps(manifest))
    old = open_dataset(out)
    assert all(r.solve_seconds is None for r in old.manifest.shards)
    np.testing.assert_array_equal(old.table("diagnostics")["wall_seconds"], [0.5, 0.25, 1.0, 2.0])
    assert old.manifest.digest() != digest  # other shard bytes: other data
    # Resuming keeps the old shards; with a new shard beside them each keeps its own timing.
    (out / "shard-00001.h5").unlink()
    generate(small_darcy(), n=4, seed=0, out=out, mode="resume")
    mixed = open_dataset(out)
    wall = mixed.table("diagnostics")["wall_seconds"]
    new_shard = mixed.manifest.shards[1]
    assert new_shard.solve_seconds is not None
    np.testing.assert_array_equal(wall, [0.5, 0.25, *[new_shard.solve_seconds / 2] * 2])


def test_a_shard_runner_may_write_shards_anywhere_and_in_any_order(tmp_path):
    """``run_shards`` replaces the serial loop: jobs rebuilt from plain data, finished last to first."""
    generate(small_darcy(), n=7, seed=8, out=tmp_path / "serial", shard_size=2)

    def backwards(jobs, progress):
        for job in reversed(jobs):
            job = pickle.loads(pickle.dumps(job))  # what a worker process receives
            yield write_shard(job)  # the problem rebuilt from the job's name, config and device

    manifest = generate(small_darcy(), n=7, seed=8, out=tmp_path / "runner", shard_size=2, run_shards=backwards)
    assert [r.first_index for r in manifest.shards] == [0, 2, 4, 6]
    assert shard_digests(tmp_path / "runner") == shard_digests(tmp_path / "serial")
    assert manifest.digest() == open_dataset(tmp_path / "serial").manifest.digest()


@pytest.mark.parametrize("fault, message", [("elsewhere", "is missing"), ("altered", "does not match its sha256")])
def test_the_writing_process_verifies_every_shard_a_runner_returns(tmp_path, fault, message):
    out = tmp_path / "ds"

    def faulty(jobs, progress):
        yield write_shard(jobs[0])  # a good shard first: it is recorded
        job = jobs[1]
        if fault == "elsewhere":  # a worker that does not share the dataset directory
            yield write_shard(dataclasses.replace(job, out=str(tmp_path / "other")))
        else:
            record = write_shard(job)
            with h5py.File(job.path, "a") as h5:
                h5.attrs["count"] = 99
            yield record

    (tmp_path / "other").mkdir()
    with pytest.raises(PdeforgeError, match=f"shard-00001.h5 {message}.*shared by every worker"):
        generate(small_darcy(), n=6, seed=0, out=out, shard_size=2, run_shards=faulty)
    state = open_dataset(out, allow_incomplete=True).manifest
    assert [r.path for r in state.shards] == ["shard-00000.h5"] and not state.complete
    assert not list(out.glob("*.partial"))


def test_time_dependent_data_are_batch_invariant(tmp_path):
    problem = Burgers(BurgersConfig(resolution=32, t_final=0.1, n_times=2))
    generate(problem, n=5, seed=1, out=tmp_path / "a", shard_size=5, batch_size=5)
    generate(problem, n=5, seed=1, out=tmp_path / "b", shard_size=2, batch_size=1)
    assert_same_arrays(arrays(tmp_path / "a"), arrays(tmp_path / "b"))


def test_navier_stokes_data_are_batch_invariant(tmp_path):
    # Its default batch is small (a few seconds per batch, for progress): the bits must not depend on it.
    problem = NavierStokes(NavierStokesConfig(resolution=16, t_final=0.2, n_times=2))
    generate(problem, n=4, seed=3, out=tmp_path / "a", shard_size=4, batch_size=4)
    generate(problem, n=4, seed=3, out=tmp_path / "b", shard_size=4, batch_size=3)
    generate(problem, n=4, seed=3, out=tmp_path / "c", shard_size=1, batch_size=1)
    assert_same_arrays(arrays(tmp_path / "a"), arrays(tmp_path / "b"))
    assert_same_arrays(arrays(tmp_path / "a"), arrays(tmp_path / "c"))


def test_a_corrupt_shard_fails_verification_and_is_never_read(tmp_path):
    out = tmp_path / "ds"
    generate(small_darcy(), n=6, seed=0, out=out, shard_size=3)
    shard = out / "shard-00001.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    ds = open_dataset(out)
    assert [s.ok for s in ds.verify()] == [True, False]
    ds.read(0, 3)  # the intact shard still reads
    with pytest.raises(PdeforgeError, match="failed verification"):
        ds.read(0, 6)


def test_resume_regenerates_corrupt_and_missing_shards_only(tmp_path):
    out = tmp_path / "ds"
    generate(small_darcy(), n=8, seed=2, out=out, shard_size=2)
    reference = arrays(out)
    first = out / "shard-00000.h5"
    untouched_mtime = (out / "shard-00002.h5").stat().st_mtime_ns
    first.write_bytes(first.read_bytes()[:100])  # truncated
    (out / "shard-00003.h5").unlink()
    generate(small_darcy(), n=8, seed=2, out=out, mode="resume")
    assert_same_arrays(reference, arrays(out))
    assert (out / "shard-00002.h5").stat().st_mtime_ns == untouched_mtime


def test_resume_refuses_a_different_dataset(tmp_path):
    out = tmp_path / "ds"
    generate(small_darcy(), n=4, seed=2, out=out)
    with pytest.raises(PdeforgeError, match="different dataset.*seed"):
        generate(small_darcy(), n=4, seed=3, out=out, mode="resume")
    with pytest.raises(PdeforgeError, match="config.high"):
        generate(Darcy(DarcyConfig(resolution=16, high=10.0)), n=4, seed=2, out=out, mode="resume")


def test_existing_directory_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "ds"
    generate(small_darcy(), n=3, seed=0, out=out)
    with pytest.raises(PdeforgeError, match="already exists"):
        generate(small_darcy(), n=3, seed=0, out=out)
    generate(small_darcy(), n=3, seed=1, out=out, mode="overwrite")
    assert open_dataset(out).manifest.seed == 1
    (out / "notes.txt").write_text("mine")
    with pytest.raises(PdeforgeError, match="refusing to overwrite"):
        generate(small_darcy(), n=3, seed=0, out=out, mode="overwrite")
    assert (out / "notes.txt").read_text() == "mine"


def test_an_incomplete_dataset_is_not_read_for_training(tmp_path):
    out = tmp_path / "ds"
    generate(small_darcy(), n=4, seed=0, out=out, shard_size=2)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["complete"] = False
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PdeforgeError, match="incomplete"):
        open_dataset(out)
    assert len(open_dataset(out, allow_incomplete=True)) == 4


GENERATE_SCRIPT = """
import sys
from pdeforge.data import generate
from pdeforge.problems import Darcy, DarcyConfig
generate(Darcy(DarcyConfig(resolution=33)), n=int(sys.argv[2]), seed=11, out=sys.argv[1],
         shard_size=4, batch_size=2, mode=sys.argv[3])
"""


def _run_generate(out: Path, n: int, mode: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", GENERATE_SCRIPT, str(out), str(n), mode], env=env, **kwargs)


def test_resume_after_kill_9_gives_the_uninterrupted_result(tmp_path):
    n = 400
    reference_dir = tmp_path / "reference"
    assert _run_generate(reference_dir, n, "new").wait() == 0
    out = tmp_path / "killed"
    proc = _run_generate(out, n, "new")
    deadline = time.time() + 120
    while time.time() < deadline:  # wait for some, but not all, shards to be recorded
        manifest = out / "manifest.json"
        if manifest.exists():
            try:
                shards = json.loads(manifest.read_text())["shards"]
            except json.JSONDecodeError:  # never happens with atomic writes; tolerate nothing else
                raise
            if len(shards) >= 3:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((out / "manifest.json").read_text())
    assert not state["complete"] and 3 <= len(state["shards"]) < n // 4
    assert _run_generate(out, n, "resume").wait() == 0
    assert_same_arrays(arrays(reference_dir), arrays(out))
    assert not list(out.glob("*.partial"))


def test_full_disk_leaves_no_partial_shard(tmp_path):
    """RLIMIT_FSIZE makes writes fail with EFBIG, as a full disk fails them with ENOSPC."""
    import resource

    out = tmp_path / "ds"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-m", "pdeforge", "generate", "darcy", "--n", "40", "--resolution", "33",
                           "--shard-size", "20", "--out", str(out)], env=env, preexec_fn=limit,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "could not write" in lines[0], proc.stderr
    assert not list(out.glob("*.partial"))
    ds = open_dataset(out, allow_incomplete=True)
    assert all(s.ok for s in ds.verify())


def test_neuralop_files_load_safely(neuralop_dir):
    train = open_dataset(neuralop_dir / "darcy_train_16.pt")
    test = open_dataset(neuralop_dir / "darcy_test_16.pt")
    assert len(train) == 1000 and len(test) == 50
    x, y = train.read(0, 10)
    assert x["x"].dtype == np.float32 and set(np.unique(x["x"])) <= {0.0, 1.0}
    assert y["y"].shape == (10, 16, 16) and np.isfinite(y["y"]).all()


def test_a_pickle_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    torch.save({"x": torch.zeros(2, 2), "y": Evil()}, path)
    with pytest.raises(PdeforgeError, match="not a loadable tensor file"):
        open_dataset(path)
    assert not (tmp_path / "pwned").exists()


def test_pdebench_style_files(tmp_path):
    steady = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(steady, "w") as h5:
        h5["nu"] = np.random.rand(6, 8, 8).astype(np.float32)
        h5["tensor"] = np.random.rand(6, 1, 8, 8).astype(np.float32)
        h5["x-coordinate"] = np.linspace(0, 1, 8)
    ds = open_dataset(steady)
    x, y = ds.read(1, 4)
    assert x["nu"].shape == (3, 8, 8) and y["tensor"].shape == (3, 8, 8)
    with h5py.File(steady, "r") as h5:
        np.testing.assert_array_equal(y["tensor"], h5["tensor"][1:4, 0])
    transient = tmp_path / "1D_Burgers_Sols_Nu0.1.hdf5"
    with h5py.File(transient, "w") as h5:
        h5["tensor"] = np.random.rand(5, 11, 32).astype(np.float32)
        h5["t-coordinate"] = np.linspace(0, 2, 12)
    ds = open_dataset(transient)
    x, y = ds.read(0, 5)
    assert x["u0"].shape == (5, 32) and y["u"].shape == (5, 10, 32)
    assert "t" in ds.coords()


@pytest.mark.parametrize("content, message", [
    (b"not hdf5 at all", "not a readable HDF5 file"),
    (None, "no 'tensor' dataset"),
])
def test_foreign_hdf5_files_are_refused(tmp_path, content, message):
    path = tmp_path / "foreign.h5"
    if content is None:
        with h5py.File(path, "w") as h5:
            h5["something"] = np.zeros(3)
    else:
        path.write_bytes(content)
    with pytest.raises(PdeforgeError, match=message):
        open_dataset(path)


def test_a_dataset_reads_the_same_through_every_block(tmp_path):
    out = tmp_path / "ds"
    generate(small_darcy(), n=7, seed=9, out=out, shard_size=3)
    ds = open_dataset(out)
    assert isinstance(ds, PdeforgeDataset) and ds.blocks() == [(0, 3), (3, 6), (6, 7)]
    whole = ds.read(0, 7)[0]["coefficient"]
    pieces = np.concatenate([ds.read(a, b)[0]["coefficient"] for a, b in ds.blocks()])
    np.testing.assert_array_equal(whole, pieces)
    np.testing.assert_array_equal(ds.read(2, 5)[0]["coefficient"], whole[2:5])


def test_a_dataset_being_written_is_locked_on_any_os(tmp_path):
    from filelock import FileLock

    out = tmp_path / "ds"
    out.mkdir()
    # Another writer holds the directory.
    with FileLock(out / ".pdeforge.lock"), pytest.raises(PdeforgeError, match="another pdeforge process is writing"):
        generate(small_darcy(), n=2, seed=0, out=out)
    generate(small_darcy(), n=2, seed=0, out=out, mode="resume")
    assert len(open_dataset(out)) == 2 and not (out / ".pdeforge.lock").exists()


def count_calls(monkeypatch, module, name) -> list:
    """Replace ``module.name`` by a wrapper that records the first argument of every call."""
    calls, real = [], getattr(module, name)

    def counting(first, *args, **kwargs):
        calls.append(Path(first).name)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_a_shard_is_hashed_once_per_process_unless_it_changes(tmp_path, monkeypatch):
    from pdeforge.data import _readers

    out = tmp_path / "ds"
    generate(small_darcy(), n=6, seed=0, out=out, shard_size=3)
    hashes = count_calls(monkeypatch, _readers, "sha256_file")
    opens = count_calls(monkeypatch, h5py, "File")
    first = open_dataset(out).read(0, 6)
    assert sorted(hashes) == ["shard-00000.h5", "shard-00001.h5"]
    assert sorted(opens) == ["shard-00000.h5", "shard-00001.h5"]  # inputs and outputs in one visit
    second = open_dataset(out)  # another object in the same process: nothing is hashed again
    assert_same_arrays(dict(second.read(0, 6)[1]), dict(first[1]))
    assert len(hashes) == 2
    second.table("diagnostics")
    assert len(hashes) == 2 and len(opens) == 6
    shard = out / "shard-00001.h5"
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed file is hashed again
    open_dataset(out).read(3, 6)
    assert hashes[2:] == ["shard-00001.h5"]
    assert all(s.ok for s in open_dataset(out).verify())  # verify reads every shard afresh
    assert hashes[3:] == ["shard-00000.h5", "shard-00001.h5"]


def test_a_pdebench_file_is_opened_once_to_learn_its_layout(tmp_path, monkeypatch):
    path = tmp_path / "2D_DarcyFlow_beta1.0_Train.hdf5"
    with h5py.File(path, "w") as h5:
        h5["nu"] = np.random.rand(4, 8, 8).astype(np.float32)
        h5["tensor"] = np.random.rand(4, 1, 8, 8).astype(np.float32)
    opens = count_calls(monkeypatch, h5py, "File")
    ds = open_dataset(path)
    assert len(opens) == 1
    ds.read(0, 4)
    assert len(opens) == 2
    shard = tmp_path / "ds"
    generate(small_darcy(), n=2, seed=0, out=shard)
    with pytest.raises(PdeforgeError, match="one shard of a pdeforge dataset"):
        open_dataset(shard / "shard-00000.h5")
