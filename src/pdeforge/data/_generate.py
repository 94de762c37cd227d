"""Generate a dataset: solve batches of samples and write verified shards, resumably."""

from __future__ import annotations

import contextlib
import errno
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from filelock import FileLock, Timeout

from pdeforge import __version__
from pdeforge._random import sample_seed
from pdeforge._threads import adapt_threads
from pdeforge.data._atomic import TEMP_SUFFIX, atomic_path, atomic_write_json, sha256_file
from pdeforge.data._format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    FieldInfo,
    Manifest,
    ShardRecord,
    config_json,
    read_manifest,
    shard_name,
)
from pdeforge.data._memory import fit_batch
from pdeforge.errors import PdeforgeError
from pdeforge.problems import PROBLEMS, Problem, Solution
from pdeforge.solvers import method_for

__all__ = ["ShardJob", "ShardRunner", "generate", "job_problem", "plan_manifest", "solve_samples",
           "write_samples_shard", "write_shard"]

LOCK = ".pdeforge.lock"
SHARD_BYTES = 128 * 2**20
"""Default shard size target: shards of about 128 MiB."""

Progress = Callable[[int], None]

def plan_manifest(problem: Problem, *, n: int, seed: int, shard_size: int | None = None) -> Manifest:
    """The manifest a new dataset of ``n`` samples of ``problem`` starts with."""
    if n <= 0:
        raise PdeforgeError(f"--n must be a positive number of samples, got {n}")
    if seed < 0:
        raise PdeforgeError(f"--seed must be non-negative, got {seed}")
    dtype = problem.config.store_dtype
    shapes = problem.field_shapes()
    inputs = {f.name: FieldInfo(shape=list(shapes[f.name]), axes=list(f.axes), dtype=dtype) for f in problem.inputs}
    outputs = {f.name: FieldInfo(shape=list(shapes[f.name]), axes=list(f.axes), dtype=dtype) for f in problem.outputs}
    if shard_size is None:
        per_sample = sum(math.prod(info.shape) for info in (*inputs.values(), *outputs.values()))
        per_sample *= np.dtype(dtype).itemsize
        shard_size = max(1, min(n, SHARD_BYTES // max(per_sample, 1)))
    elif shard_size <= 0:
        raise PdeforgeError(f"--shard-size must be positive, got {shard_size}")
    return Manifest(
        format=FORMAT_NAME,
        format_version=FORMAT_VERSION,
        pdeforge_version=__version__,
        problem=problem.name,
        n_samples=n,
        seed=seed,
        shard_size=shard_size,
        config=problem.config.model_dump(mode="json"),
        inputs=inputs,
        outputs=outputs,
    )


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on the dataset directory while writing it (``filelock``, any OS)."""
    lock = FileLock(directory / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise PdeforgeError(f"another pdeforge process is writing {directory}") from None
    try:
        yield
    finally:
        lock.release()
    (directory / LOCK).unlink(missing_ok=True)


def _ours(path: Path) -> bool:
    name = path.name
    return name in (MANIFEST, LOCK) or (name.startswith("shard-") and name.endswith((".h5", TEMP_SUFFIX)))


def _prepare_directory(out: Path, plan: Manifest, mode: str) -> Manifest:
    """Create, clear or reopen ``out`` according to ``mode``; return the manifest to continue."""
    if out.exists() and not out.is_dir():
        raise PdeforgeError(f"{out} exists and is not a directory")
    entries = list(out.iterdir()) if out.exists() else []
    if mode == "overwrite" and entries:
        strangers = [p.name for p in entries if not _ours(p)]
        if strangers:
            raise PdeforgeError(f"{out} holds files that are not part of a pdeforge dataset ({strangers[0]}, ...); "
                                "refusing to overwrite")
        for p in entries:
            p.unlink()
        entries = []
    if mode == "resume" and (out / MANIFEST).exists():
        old = read_manifest(out)
        if not old.same_dataset(plan):
            raise PdeforgeError(f"{out} holds a different dataset ({_difference(old, plan)}); "
                                "--resume needs the same problem, config, --n, --seed and shard size")
        return old
    if mode == "new" and entries and _is_stub(out, entries):
        # What a failed run left behind (a manifest and no verified shard) holds nothing to keep.
        with _locked(out):
            for p in entries:
                if p.name != LOCK:
                    p.unlink(missing_ok=True)
        entries = []
    if entries and [p for p in entries if p.name != LOCK]:
        if mode == "resume":
            raise PdeforgeError(f"{out} is not a pdeforge dataset (no {MANIFEST}); nothing to resume")
        raise PdeforgeError(f"{out} already exists; pass --resume to continue it or --overwrite to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PdeforgeError(f"cannot create {out}: {exc.strerror}") from None
    return plan


def _is_stub(out: Path, entries: list[Path]) -> bool:
    """Whether ``out`` holds only pdeforge files and no shard that its manifest verifies."""
    if any(not _ours(p) for p in entries):
        return False
    if not (out / MANIFEST).exists():
        return not any(p.name.endswith(".h5") for p in entries)
    try:
        manifest = read_manifest(out)
    except PdeforgeError:
        return False  # not ours to judge: refuse as before
    return not _verified(out, manifest)


def _difference(old: Manifest, new: Manifest) -> str:
    for key in ("problem", "n_samples", "seed", "shard_size"):
        if getattr(old, key) != getattr(new, key):
            return f"{key} {getattr(old, key)} != {getattr(new, key)}"
    for key in sorted(set(old.config) | set(new.config)):
        if old.config.get(key) != new.config.get(key):
            return f"config.{key} {old.config.get(key)} != {new.config.get(key)}"
    return "format differs"


def _verified(out: Path, manifest: Manifest) -> list[ShardRecord]:
    """The shards of ``manifest`` whose files exist and match their checksums."""
    good = []
    for record in manifest.shards:
        path = out / record.path
        if path.is_file() and sha256_file(path) == record.sha256:
            good.append(record)
    return good


@dataclass(frozen=True)
class ShardJob:
    """One shard to write, as plain data: picklable and self-contained, so any process can write it.

    A process that did not plan the dataset (a Dask worker) rebuilds the
    problem from ``problem``, ``config`` and ``device`` (:func:`job_problem`)
    and writes ``out/shard-NNNNN.h5`` atomically (:func:`write_shard`);
    sample ``i`` depends only on ``(seed, i)``, so the bytes do not depend on
    which process writes them.

    Attributes
    ----------
    problem
        The problem's command-line name (a key of ``pdeforge.problems.PROBLEMS``).
    config
        The problem's full config as JSON (``Config.model_dump(mode="json")``).
    device
        The torch device the samples are solved on, e.g. ``cpu`` or ``cuda:0``.
    seed
        The dataset seed.
    number, first, count
        The shard's number and its samples ``[first, first + count)``.
    batch
        Samples solved together.
    out
        The dataset directory (one filesystem shared by every writer).
    """

    problem: str
    config: dict[str, Any]
    device: str
    seed: int
    number: int
    first: int
    count: int
    batch: int
    out: str

    @property
    def path(self) -> Path:
        """Where the shard is written: ``out/shard-NNNNN.h5``."""
        return Path(self.out) / shard_name(self.number)


ShardRunner = Callable[[list[ShardJob], Progress | None], Iterator[ShardRecord]]
"""Writes shards: called with the jobs and the progress callback, yields each finished shard's record.

Records may come in any order; the runner advances ``progress`` by the
samples it finishes. :func:`generate` verifies every record's file before it
enters the manifest.
"""


def job_problem(job: ShardJob) -> Problem:
    """The problem a job names, rebuilt from its config on its device.

    Parameters
    ----------
    job
        The shard job.

    Returns
    -------
    Problem
        ``PROBLEMS[job.problem](Config(**job.config), device=job.device)``.
    """
    cls = PROBLEMS.get(job.problem)
    if cls is None:
        raise PdeforgeError(f"unknown problem '{job.problem}' (known: {', '.join(PROBLEMS)})")
    return cls(cls.Config.model_validate(job.config), device=job.device)


def write_shard(job: ShardJob, problem: Problem | None = None, progress: Progress | None = None) -> ShardRecord:
    """Solve the samples of ``job`` into its shard file, atomically, and return the shard's record.

    Parameters
    ----------
    job
        The shard to write.
    problem
        The problem instance, if the caller holds one; else rebuilt with :func:`job_problem`.
    progress
        Called with the number of samples of each finished batch.

    Returns
    -------
    ShardRecord
        The shard's file name, samples, sha256 and solve time.
    """
    problem = problem if problem is not None else job_problem(job)
    return _write_shard(problem, method_for(problem), job, progress)


def _in_process(problem: Problem, method) -> ShardRunner:
    """The default runner: every shard in this process, one after another, with adaptive threads."""

    def run(jobs: list[ShardJob], progress: Progress | None) -> Iterator[ShardRecord]:
        adapt_threads(force=True)
        for job in jobs:
            adapt_threads()  # between shards: a competitor that started meanwhile keeps its core
            yield _write_shard(problem, method, job, progress)

    return run


def generate(problem: Problem, *, n: int, seed: int, out: Path, shard_size: int | None = None,
             batch_size: int | None = None, mode: str = "new", progress: Progress | None = None,
             run_shards: ShardRunner | None = None) -> Manifest:
    """Generate ``n`` samples of ``problem`` into the dataset directory ``out``.

    Parameters
    ----------
    mode
        ``"new"`` (``out`` must not hold anything), ``"resume"`` (keep the
        verified shards of an interrupted run with the same settings,
        regenerate the rest) or ``"overwrite"`` (replace an existing
        pdeforge dataset).
    progress
        Called with the number of samples finished (including verified
        shards kept by a resume).
    run_shards
        What writes the missing shards (a :data:`ShardRunner`); default: this
        process, serially. Whatever writes them, this process alone holds
        the directory lock and writes the manifest: it re-hashes each
        finished shard file, records it as soon as it is verified (so that
        ``--resume`` keeps it) and removes stale ``*.partial`` files at the end.

    Returns
    -------
    The completed manifest.
    """
    if mode not in ("new", "resume", "overwrite"):
        raise ValueError(f"unknown mode {mode!r}")
    out = Path(out)
    # Everything that can be refused is refused before the output directory is created or touched.
    method = method_for(problem)  # an unknown or inapplicable method
    batch = fit_batch(problem, batch_size)  # a bad --batch-size, or memory that cannot hold a batch
    plan = plan_manifest(problem, n=n, seed=seed, shard_size=shard_size)
    if mode == "resume" and shard_size is None and (out / MANIFEST).exists():
        plan = plan_manifest(problem, n=n, seed=seed, shard_size=read_manifest(out).shard_size)
    manifest = _prepare_directory(out, plan, mode)
    with _locked(out):
        _remove_partials(out)
        kept = {r.first_index: r for r in _verified(out, manifest)}
        shards = sorted(kept.values(), key=lambda r: r.first_index)
        manifest = manifest.model_copy(update={"shards": shards, "complete": False})
        _write_manifest(out, manifest)
        if progress is not None:
            progress(sum(r.count for r in kept.values()))
        jobs = [ShardJob(problem=problem.name, config=manifest.config, device=str(problem.device), seed=seed,
                         number=number, first=first, count=count, batch=batch, out=str(out.resolve()))
                for number, first, count in manifest.planned_shards() if first not in kept]
        pending = {job.path.name: job for job in jobs}
        records = (run_shards or _in_process(problem, method))(jobs, progress)
        try:
            for record in records:
                _check_record(out, record, pending)
                shards = sorted([*manifest.shards, record], key=lambda r: r.first_index)
                manifest = manifest.model_copy(update={"shards": shards})
                _write_manifest(out, manifest)
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()  # a runner that stops early (an error here) cancels what it still runs
            _remove_partials(out)
        if pending:
            raise RuntimeError(f"the shard runner finished without writing {', '.join(sorted(pending))}")
        manifest = manifest.model_copy(update={"complete": True})
        _write_manifest(out, manifest)
    return manifest


def _remove_partials(out: Path) -> None:
    """Remove the temporary shard files a dead or interrupted writer left (only the lock holder calls this)."""
    for stale in out.glob(f"shard-*{TEMP_SUFFIX}"):
        stale.unlink(missing_ok=True)


def _check_record(out: Path, record: ShardRecord, pending: dict[str, ShardJob]) -> None:
    """Accept a runner's record only for a pending job whose file, read here, has the recorded sha256."""
    job = pending.get(record.path)
    if job is None or (record.first_index, record.count) != (job.first, job.count):
        raise RuntimeError(f"the shard runner returned a shard that was not asked for: {record}")
    path = out / record.path
    if not path.is_file() or sha256_file(path) != record.sha256:
        what = "is missing" if not path.is_file() else "does not match its sha256"
        raise PdeforgeError(f"shard {path} {what} where the manifest is written: the dataset directory must be "
                            "one filesystem shared by every worker; rerun with --resume")
    del pending[record.path]


def _write_manifest(out: Path, manifest: Manifest) -> None:
    try:
        atomic_write_json(out / MANIFEST, manifest.model_dump(mode="json"))
    except OSError as exc:
        raise PdeforgeError(f"could not write {out / MANIFEST}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _disk_errors(path: Path) -> Iterator[None]:
    """Turn a failed write (full disk, quota, I/O error) into a one-line user error.

    h5py reports some write failures as ``RuntimeError``; only HDF5 and file
    calls run inside this context, so nothing else is mistaken for one.
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "No space" in str(exc):
            reason = "the disk is full"
        else:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise PdeforgeError(
            f"could not write {path}: {reason}; nothing partial was kept (rerun with --resume)") from None


def _write_shard(problem: Problem, method, job: ShardJob, progress: Progress | None) -> ShardRecord:
    """Solve samples ``[job.first, job.first + job.count)`` into a new shard, atomically."""
    dtype = np.dtype(problem.config.store_dtype)
    path, first, count = job.path, job.first, job.count
    seconds = 0.0
    with atomic_path(path) as tmp:
        with _disk_errors(path):
            h5 = h5py.File(tmp, "w")
        try:
            with _disk_errors(path):
                _start_shard(h5, problem, job, dtype)
            for start in range(first, first + count, job.batch):
                stop = min(start + job.batch, first + count)
                columns, wall = _solve_batch(problem, method, job.seed, start, stop, dtype)
                seconds += wall
                with _disk_errors(path):
                    rows = slice(start - first, stop - first)
                    for key, array in columns.items():
                        if key not in h5:
                            h5.create_dataset(key, shape=(count, *array.shape[1:]), dtype=array.dtype)
                        dataset = h5[key]
                        # Created just above or by _start_shard; h5py types h5[key] as Group | Dataset | Datatype.
                        assert isinstance(dataset, h5py.Dataset)
                        dataset[rows] = array
                if progress is not None:
                    progress(stop - start)
        finally:
            with _disk_errors(path):
                h5.close()
        with _disk_errors(path):
            digest = sha256_file(tmp)
    return ShardRecord(path=path.name, first_index=first, count=count, sha256=digest, solve_seconds=seconds)


def _start_shard(h5: h5py.File, problem: Problem, job: ShardJob, dtype: np.dtype) -> None:
    h5.attrs.update({
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "pdeforge_version": __version__,
        "problem": problem.name,
        "config": config_json(job.config),
        "seed": job.seed,
        "first_index": job.first,
        "count": job.count,
    })
    for name, values in problem.coords().items():
        h5.create_dataset(f"coords/{name}", data=values)
    shapes = problem.field_shapes()
    for group, fields in (("inputs", problem.inputs), ("outputs", problem.outputs)):
        for spec in fields:
            h5.create_dataset(f"{group}/{spec.name}", shape=(job.count, *shapes[spec.name]), dtype=dtype)


def _solve_batch(problem: Problem, method, seed: int, start: int, stop: int,
                 dtype: np.dtype) -> tuple[dict[str, np.ndarray], float]:
    """Solve samples ``[start, stop)``; every per-sample array of the shard by its HDF5 key, and the seconds taken.

    The time is returned, not stored: a shard's bytes depend on its samples alone.
    """
    indices = list(range(start, stop))
    t0 = time.perf_counter()
    # A lone sample is solved beside a copy of itself: FFT and reduction kernels take
    # other code paths for a batch of one, and a sample's bits must not depend on batching.
    padded = indices if len(indices) > 1 else indices * 2
    inputs = problem.sample_inputs(seed, padded)
    solution = problem.solve(inputs, method)
    if len(padded) > len(indices):
        inputs = {k: v[:1] for k, v in inputs.items()}
        solution = _first(solution)
    wall = time.perf_counter() - t0
    failed = [i for i, ok in zip(indices, solution.converged.tolist(), strict=True) if not ok]
    if failed:
        i = failed[0]
        why = solution.reasons[i - start]
        more = f" (and {len(failed) - 1} more in this batch)" if len(failed) > 1 else ""
        raise PdeforgeError(
            f"sample {i} was not stored: {why}{more}; change the solver settings (--set) and rerun with --overwrite "
            "(or a new --out)")
    columns = {f"inputs/{k}": _host(v).astype(dtype) for k, v in problem.stored_inputs(inputs).items()}
    columns.update({f"outputs/{k}": _host(v).astype(dtype) for k, v in solution.outputs.items()})
    columns.update({f"params/{k}": _host(v) for k, v in problem.params(inputs).items()})
    columns.update({f"diagnostics/{k}": _host(v) for k, v in solution.diagnostics.items()})
    columns["diagnostics/seed"] = np.array([sample_seed(seed, i) for i in indices], dtype=np.int64)
    return columns, wall


def _first(solution: Solution) -> Solution:
    return Solution(
        outputs={k: v[:1] for k, v in solution.outputs.items()},
        diagnostics={k: v[:1] for k, v in solution.diagnostics.items()},
        converged=solution.converged[:1],
        reasons=solution.reasons[:1],
    )


def _host(value: torch.Tensor) -> np.ndarray:
    """Bring a result to host memory for writing (the only device-to-host copy of generation)."""
    return value.detach().to("cpu").numpy()


def solve_samples(problem: Problem, *, seed: int, start: int,
                  stop: int) -> tuple[dict[str, np.ndarray], float]:
    """Solve samples ``[start, stop)`` of the stream ``seed`` exactly as :func:`generate` stores them.

    Parameters
    ----------
    problem
        The problem (its configuration fixes the stored dtype).
    seed, start, stop
        The dataset seed and the sample range.

    Returns
    -------
    (columns, seconds)
        Every per-sample column of a shard by its HDF5 key (``inputs/<name>``,
        ``outputs/<name>``, ``params/...``, ``diagnostics/...``), ``[stop - start, ...]``,
        and the wall-clock seconds the samples took to draw and solve.
    """
    if not 0 <= start < stop:
        raise PdeforgeError(f"cannot solve the sample range [{start}, {stop})")
    return _solve_batch(problem, method_for(problem), seed, start, stop, np.dtype(problem.config.store_dtype))


def write_samples_shard(problem: Problem, manifest: Manifest, out: Path, number: int, first: int,
                        columns: dict[str, np.ndarray], solve_seconds: float | None = None) -> ShardRecord:
    """Write already solved samples (from :func:`solve_samples`) as shard ``number`` of ``out``, atomically.

    Parameters
    ----------
    problem, manifest
        The problem and the dataset's manifest (its seed and config).
    out
        The dataset directory.
    number, first
        The shard's number and the index of its first sample.
    columns
        The samples' columns by HDF5 key.
    solve_seconds
        The seconds they took to solve, recorded in the shard's record (not in its bytes).

    Returns
    -------
    ShardRecord
        The shard's record with its sha256, for the manifest.
    """
    count = len(columns["diagnostics/seed"])
    job = ShardJob(problem=problem.name, config=manifest.config, device=str(problem.device), seed=manifest.seed,
                   number=number, first=first, count=count, batch=count, out=str(out))
    path = job.path
    dtype = np.dtype(manifest.config.get("store_dtype", "float32"))
    with atomic_path(path) as tmp:
        with _disk_errors(path), h5py.File(tmp, "w") as h5:
            _start_shard(h5, problem, job, dtype)
            for key, array in columns.items():
                if key in h5:
                    dataset = h5[key]
                    assert isinstance(dataset, h5py.Dataset)  # created by _start_shard
                    dataset[...] = array
                else:
                    h5.create_dataset(key, data=array)
        with _disk_errors(path):
            digest = sha256_file(tmp)
    return ShardRecord(path=path.name, first_index=first, count=count, sha256=digest, solve_seconds=solve_seconds)
