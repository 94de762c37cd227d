"""``--save-data``: the training samples of an online run, written as a normal, verified pdeforge dataset.

Each chunk the trainer takes in becomes one shard (``shard_size`` = the
chunk), written atomically; the manifest, with every shard's sha256 and
``n_samples`` the number of samples taken in so far, is replaced at every
epoch's checkpoint (:meth:`StreamDataset.flush`, before the checkpoint) and
at the end, so it always describes verified shards and a finished run's
dataset ends at the last contiguous index the trainer took. Samples still being solved
when training stops are not waited for: they were never trained on, and the
dataset holds exactly the samples the run offered to its buffer. A resumed
run keeps the verified shards below the index it continues from and
rewrites the rest (the same bytes: a sample is a pure function of
``(seed, index)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pdeforge.data import read_manifest
from pdeforge.data._atomic import atomic_write_json, sha256_file
from pdeforge.data._format import MANIFEST, Manifest
from pdeforge.errors import PdeforgeError
from pdeforge.problems import Problem

__all__ = ["StreamDataset"]


class StreamDataset:
    """A dataset directory that grows by one shard per chunk of the online stream.

    Parameters
    ----------
    out
        The dataset directory (new or empty, or the one an interrupted run was writing).
    problem
        The problem the samples are of.
    seed
        The training seed stream.
    chunk
        Samples per chunk, the dataset's shard size.
    resume_from
        For a resumed run, the index it continues from: verified shards
        below it are kept, the others removed. ``None`` for a new run.
    """

    def __init__(self, out: Path, problem: Problem, *, seed: int, chunk: int, resume_from: int | None) -> None:
        from pdeforge.data import plan_manifest

        self.out, self.problem = Path(out), problem
        plan = plan_manifest(problem, n=chunk, seed=seed, shard_size=chunk)
        if self.out.exists() and not self.out.is_dir():
            raise PdeforgeError(f"--save-data {self.out} exists and is not a directory")
        if resume_from is not None and (self.out / MANIFEST).is_file():
            old = read_manifest(self.out)
            if not old.same_dataset(plan.model_copy(update={"n_samples": old.n_samples})):
                raise PdeforgeError(f"--save-data {self.out} holds a different dataset than this run writes")
            kept = [r for r in old.shards if r.first_index + r.count <= resume_from
                    and (self.out / r.path).is_file() and sha256_file(self.out / r.path) == r.sha256]
            for stale in set(p.name for p in self.out.glob("shard-*")) - {r.path for r in kept}:
                (self.out / stale).unlink()
            total = sum(r.count for r in kept)
            if total != resume_from:
                raise PdeforgeError(f"--save-data {self.out} lacks samples before index {resume_from}; "
                                    "pass a new directory")
            self.manifest = old.model_copy(update={"shards": kept, "n_samples": max(total, 1), "complete": False})
        else:
            if self.out.exists() and any(self.out.iterdir()):
                raise PdeforgeError(f"--save-data {self.out} already exists and is not empty; choose another directory")
            self.out.mkdir(parents=True, exist_ok=True)
            self.manifest = plan
        self._write()

    @property
    def count(self) -> int:
        """Samples written."""
        return sum(r.count for r in self.manifest.shards)

    def add(self, first: int, columns: dict[str, np.ndarray], seconds: float | None = None) -> None:
        """Write the chunk starting at index ``first`` (the next one: chunks come in index order) as a shard.

        ``seconds``, the chunk's solve time, is recorded in the manifest (as ``generate`` records it).
        """
        from pdeforge.data import write_samples_shard

        if first != self.count:
            raise PdeforgeError(f"--save-data expected sample {self.count} next, got {first}")
        number = first // self.manifest.shard_size
        record = write_samples_shard(self.problem, self.manifest, self.out, number, first, columns, seconds)
        self.manifest = self.manifest.model_copy(update={"shards": [*self.manifest.shards, record],
                                                         "n_samples": first + record.count})

    def flush(self) -> None:
        """Write the manifest of the shards written so far (still marked incomplete)."""
        self._write()

    def finish(self) -> Manifest:
        """Mark the dataset complete at the samples written; return its manifest."""
        if not self.manifest.shards:
            raise PdeforgeError(f"--save-data {self.out}: the run took in no samples")
        self.manifest = self.manifest.model_copy(update={"complete": True})
        self._write()
        return self.manifest

    def _write(self) -> None:
        try:
            atomic_write_json(self.out / MANIFEST, self.manifest.model_dump(mode="json"))
        except OSError as exc:
            raise PdeforgeError(f"could not write {self.out / MANIFEST}: {exc.strerror or exc}") from None
