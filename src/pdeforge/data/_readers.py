"""Read datasets: pdeforge's own, PDEBench-style HDF5 files, neuraloperator ``.pt`` files.

Every reader is an :class:`ArraySource`: a sequence of samples, each a dict
of named input arrays and a dict of named output arrays, readable in
contiguous blocks so that training streams from disk with bounded memory.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pdeforge.data._atomic import sha256_file
from pdeforge.data._format import FORMAT_NAME, Manifest, ShardRecord, read_manifest
from pdeforge.errors import PdeforgeError

__all__ = ["ArraySource", "NeuralopFile", "PDEBenchFile", "PdeforgeDataset", "ShardStatus", "open_dataset"]

Arrays = dict[str, np.ndarray]


class ArraySource(ABC):
    """Samples with named input and output fields, sample axis first.

    ``len(source)`` is the number of samples; :meth:`read` returns a
    contiguous range of them as arrays ``[stop - start, *shape]`` keyed by
    field name, with the per-sample shapes of :attr:`input_shapes` and
    :attr:`output_shapes`.

    Attributes
    ----------
    path
        Where the data live (a dataset directory or a file).
    kind
        The format's name: ``pdeforge``, ``pdebench`` or ``neuralop``.
    problem
        The PDE family that generated the data, when the format records it.
    """

    path: Path
    kind: str
    problem: str | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @property
    @abstractmethod
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one sample of every input field, by name (sample axis excluded)."""

    @property
    @abstractmethod
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one sample of every output field, by name (sample axis excluded)."""

    @abstractmethod
    def read(self, start: int, stop: int) -> tuple[Arrays, Arrays]:
        """Inputs and outputs of samples ``[start, stop)``."""

    def take(self, rows: np.ndarray) -> tuple[Arrays, Arrays]:
        """Inputs and outputs of the samples ``rows`` (strictly increasing indices), in that order.

        This default reads every contiguous run of ``rows`` with :meth:`read`;
        formats that can select rows in one pass override it.
        """
        rows = _increasing(rows, len(self))
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        pieces = [self.read(int(run[0]), int(run[-1]) + 1) for run in np.split(rows, cuts) if len(run)]
        if not pieces:
            return self.read(0, 0)
        inputs = {n: np.concatenate([p[0][n] for p in pieces]) for n in pieces[0][0]}
        outputs = {n: np.concatenate([p[1][n] for p in pieces]) for n in pieces[0][1]}
        return inputs, outputs

    def check_span(self, start: int, stop: int) -> None:
        """Verify, in this process, whatever samples ``[start, stop)`` need before they are read (here nothing).

        Called before worker processes are started, so that they inherit the
        verification instead of repeating it.
        """
        return None

    def blocks(self) -> list[tuple[int, int]]:
        """Contiguous ``[start, stop)`` ranges in which the data are stored."""
        return [(0, len(self))]

    def coords(self) -> Arrays:
        """Coordinate arrays of the stored fields by axis name (``x``, ``y``, ``t``; empty when unknown)."""
        return {}

    def describe(self) -> str:
        """A one-line description of the data for messages and reports."""
        return f"{self.kind} data at {self.path}"

    def fingerprint(self) -> str:
        """A string that changes when the data change: here the file's resolved path, size and mtime."""
        st = self.path.stat()
        return f"file:{self.path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


@dataclass(frozen=True)
class ShardStatus:
    """The outcome of checking one shard of a pdeforge dataset against its manifest.

    Attributes
    ----------
    record
        The shard's entry in the manifest.
    ok
        Whether the file exists and its sha256 matches the record.
    message
        ``ok``, ``missing`` or ``checksum mismatch``.
    """

    record: ShardRecord
    ok: bool
    message: str


_DIGESTS: dict[tuple, str] = {}
"""sha256 of shard files this process has already hashed, keyed by :func:`_file_key`."""


def _file_key(path: Path) -> tuple:
    """What identifies one version of a file: resolved path, device, inode, size, mtime and ctime (ns)."""
    st = path.stat()
    return (str(path.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def shard_digest(path: Path, *, fresh: bool = False) -> str:
    """The sha256 of a shard file, computed at most once per process for an unchanged file.

    A file rewritten in place gets a new size, mtime or ctime (or inode, if
    renamed over), so its key changes and it is hashed again; only a rewrite
    of the same size within one tick of the filesystem's clock would go
    unnoticed by a process that hashed the file just before. ``fresh=True``
    (used by ``pdeforge verify``) always reads the bytes.

    Parameters
    ----------
    path
        The shard file.
    fresh
        Hash the file even if this process already knows its digest.

    Returns
    -------
    The hex sha256 of the file's bytes.
    """
    key = _file_key(path)
    if fresh or key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


class PdeforgeDataset(ArraySource):
    """A pdeforge dataset directory; every shard is checksummed before it is first read.

    A shard's checksum is verified once per process (see :func:`shard_digest`),
    and a read of ``[start, stop)`` opens each shard it touches once, taking
    inputs and outputs in the same visit.
    """

    kind = "pdeforge"

    def __init__(self, path: Path, *, allow_incomplete: bool = False) -> None:
        self.path = Path(path)
        self.manifest: Manifest = read_manifest(self.path)
        self.problem = self.manifest.problem
        if not self.manifest.complete and not allow_incomplete:
            done = sum(r.count for r in self.manifest.shards)
            raise PdeforgeError(
                f"{self.path} is incomplete ({done} of {self.manifest.n_samples} samples); "
                "finish it with pdeforge generate ... --resume"
            )
        self._verified: set[str] = set()

    def __len__(self) -> int:
        return sum(r.count for r in self.manifest.shards)

    @property
    def config(self) -> dict:
        """The full config of the problem that generated the data (as the manifest records it)."""
        return self.manifest.config

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one sample of every input field, from the manifest."""
        return {k: tuple(v.shape) for k, v in self.manifest.inputs.items()}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one sample of every output field, from the manifest."""
        return {k: tuple(v.shape) for k, v in self.manifest.outputs.items()}

    def blocks(self) -> list[tuple[int, int]]:
        """The ``[start, stop)`` sample range of every finished shard."""
        return [(r.first_index, r.first_index + r.count) for r in self.manifest.shards]

    def fingerprint(self) -> str:
        """The manifest's digest: it lists every shard's sha256, so it names the data exactly."""
        return f"manifest:{self.manifest.digest()}"

    def check(self, record: ShardRecord, *, fresh: bool = False) -> ShardStatus:
        """The checksum status of one shard (``fresh`` re-reads a file already hashed in this process)."""
        path = self.path / record.path
        if not path.is_file():
            return ShardStatus(record, False, "missing")
        digest = shard_digest(path, fresh=fresh)
        if digest != record.sha256:
            return ShardStatus(record, False, "checksum mismatch")
        self._verified.add(record.path)
        return ShardStatus(record, True, "ok")

    def verify(self) -> list[ShardStatus]:
        """The checksum status of every shard the manifest lists, each file hashed afresh."""
        return [self.check(r, fresh=True) for r in self.manifest.shards]

    def _ensure_verified(self, record: ShardRecord) -> None:
        if record.path not in self._verified:
            status = self.check(record)
            if not status.ok:
                raise PdeforgeError(
                    f"shard {record.path} of {self.path} failed verification ({status.message}); "
                    "regenerate it with pdeforge generate ... --resume"
                )

    def check_span(self, start: int, stop: int) -> None:
        """Verify (once per process) the sha256 of every shard holding samples of ``[start, stop)``."""
        for record in self.manifest.shards:
            if max(start, record.first_index) < min(stop, record.first_index + record.count):
                self._ensure_verified(record)

    def _open(self, record: ShardRecord) -> h5py.File:
        self._ensure_verified(record)
        h5 = h5py.File(self.path / record.path, "r")
        if h5.attrs.get("first_index") != record.first_index or h5.attrs.get("count") != record.count:
            h5.close()
            raise PdeforgeError(f"shard {record.path} of {self.path} does not hold the samples its manifest says")
        return h5

    def _gather(self, groups: dict[str, list[str] | None], start: int, stop: int) -> dict[str, Arrays]:
        """Arrays of samples ``[start, stop)`` of every ``group -> names``, one open per shard.

        ``names`` ``None`` means every field the group has.
        """
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"samples [{start}, {stop}) outside [0, {len(self)})")
        parts: dict[str, dict[str, list[np.ndarray]]] = {
            g: {n: [] for n in names} for g, names in groups.items() if names is not None}
        for record in self.manifest.shards:
            lo, hi = max(start, record.first_index), min(stop, record.first_index + record.count)
            if lo >= hi:
                continue
            with self._open(record) as h5:
                for group in groups:
                    if group not in parts:  # the first shard tells which fields the group has
                        names = list(_group(h5, group).keys()) if group in h5 else []
                        if group == "diagnostics" and WALL not in names and record.solve_seconds is not None:
                            names.append(WALL)
                        parts[group] = {n: [] for n in names}
                    for n in parts[group]:
                        rows = slice(lo - record.first_index, hi - record.first_index)
                        parts[group][n].append(_column(h5, record, group, n, rows))
        return {g: {n: np.concatenate(p) if p else np.empty((0,)) for n, p in table.items()}
                for g, table in parts.items()}

    def read(self, start: int, stop: int) -> tuple[Arrays, Arrays]:
        """Inputs and outputs of samples ``[start, stop)``, verifying every shard on its first read."""
        got = self._gather({"inputs": list(self.manifest.inputs), "outputs": list(self.manifest.outputs)}, start, stop)
        return got["inputs"], got["outputs"]

    def take(self, rows: np.ndarray) -> tuple[Arrays, Arrays]:
        """Inputs and outputs of the samples ``rows`` (strictly increasing), one open per shard they touch."""
        rows = _increasing(rows, len(self))
        if not len(rows):
            return self.read(0, 0)
        names = {"inputs": list(self.manifest.inputs), "outputs": list(self.manifest.outputs)}
        parts: dict[str, dict[str, list[np.ndarray]]] = {g: {n: [] for n in ns} for g, ns in names.items()}
        for record in self.manifest.shards:
            lo, hi = np.searchsorted(rows, [record.first_index, record.first_index + record.count])
            if lo == hi:
                continue
            local = rows[lo:hi] - record.first_index
            # One contiguous run is read as a slice; otherwise h5py selects the increasing rows in one read.
            select = slice(int(local[0]), int(local[-1]) + 1) if local[-1] - local[0] == hi - lo - 1 else local
            with self._open(record) as h5:
                for group, table in parts.items():
                    for n, chunks in table.items():
                        chunks.append(_dataset(h5, f"{group}/{n}")[select])
        got = {g: {n: np.concatenate(p) for n, p in table.items()} for g, table in parts.items()}
        return got["inputs"], got["outputs"]

    def table(self, group: str, names: list[str] | None = None) -> Arrays:
        """A per-sample group (``params`` or ``diagnostics``) over the whole dataset: ``names``, or all its fields.

        ``diagnostics`` includes ``wall_seconds``, the solver's seconds per
        sample: the shard's ``solve_seconds`` (manifest) over its samples, or
        the array that older shards stored in their bytes (NaN for a
        shard that has neither).
        """
        return self._gather({group: names}, 0, len(self)).get(group, {})

    def coords(self) -> Arrays:
        """The coordinate arrays of the first shard's ``coords`` group (every shard stores the same)."""
        if not self.manifest.shards:
            return {}
        with self._open(self.manifest.shards[0]) as h5:
            coords = _group(h5, "coords")
            return {k: _dataset(coords, k)[()] for k in coords.keys()}

    def describe(self) -> str:
        """``pdeforge <problem> dataset at <path>``."""
        return f"pdeforge {self.problem} dataset at {self.path}"


class PDEBenchFile(ArraySource):
    """A PDEBench-style HDF5 file.

    Steady problems (2-D Darcy) store the coefficient as ``nu [N, ...]`` and
    the solution as ``tensor [N, 1, ...]``: input ``nu``, output ``tensor``
    without its singleton time axis. Time-dependent files store
    ``tensor [N, T, ...]``: input ``u0 = tensor[:, 0]``, output
    ``tensor[:, 1:]``. Coordinates come from ``x-coordinate``,
    ``y-coordinate``, ``t-coordinate``.
    """

    kind = "pdebench"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with _open_hdf5(self.path) as h5:  # the one open that learns the layout
            if h5.attrs.get("format") == FORMAT_NAME:
                raise PdeforgeError(f"{path} is one shard of a pdeforge dataset; open its directory {self.path.parent}")
            tensor = h5.get("tensor")
            if not isinstance(tensor, h5py.Dataset):
                raise PdeforgeError(f"{self.path} has no 'tensor' dataset; it is not a PDEBench-style file")
            self._n, shape = tensor.shape[0], tuple(tensor.shape[1:])
            nu = h5.get("nu")
            self._steady = isinstance(nu, h5py.Dataset) and nu.ndim >= 2
            if isinstance(nu, h5py.Dataset) and self._steady:
                if nu.shape[0] != self._n:
                    raise PdeforgeError(f"{self.path}: 'nu' has {nu.shape[0]} samples but 'tensor' has {self._n}")
                self._in = {"nu": tuple(nu.shape[1:])}
                self._out = {"tensor": shape[1:] if shape and shape[0] == 1 else shape}
            else:
                if len(shape) < 2 or shape[0] < 2:
                    raise PdeforgeError(f"{self.path}: 'tensor' {tensor.shape} has no time axis to split into u0 and u")
                self._in = {"u0": shape[1:]}
                self._out = {"u": (shape[0] - 1, *shape[1:])}
            names = ("x-coordinate", "y-coordinate", "z-coordinate", "t-coordinate")
            self._coords = {k.split("-")[0]: _dataset(h5, k)[()] for k in names if k in h5}

    def __len__(self) -> int:
        return self._n

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """``nu``'s per-sample shape (steady files) or ``u0``'s, the first time slice (time-dependent)."""
        return self._in

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """``tensor``'s per-sample shape without its time axis (steady) or ``u``'s, the later slices."""
        return self._out

    def read(self, start: int, stop: int) -> tuple[Arrays, Arrays]:
        """Inputs and outputs of samples ``[start, stop)``, split as the class docstring describes."""
        with _open_hdf5(self.path) as h5:
            tensor = _dataset(h5, "tensor")[start:stop]
            if self._steady:
                nu = _dataset(h5, "nu")[start:stop]
                return {"nu": nu}, {"tensor": tensor.reshape(len(tensor), *self._out["tensor"])}
            return {"u0": tensor[:, 0]}, {"u": tensor[:, 1:]}

    def coords(self) -> Arrays:
        """The file's ``x``, ``y``, ``z`` and ``t`` coordinates, those it has."""
        return dict(self._coords)


class NeuralopFile(ArraySource):
    """A neuraloperator ``.pt`` dict with tensors ``x`` (input) and ``y`` (output).

    Loaded with ``torch.load(weights_only=True)``: plain tensors only, no code runs.
    """

    kind = "neuralop"

    def __init__(self, path: Path) -> None:
        import torch

        self.path = Path(path)
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise PdeforgeError(f"{self.path} is not a loadable tensor file: it holds pickled Python objects, which "
                                "are never unpickled since that can run code (save a dict of plain tensors "
                                "'x' and 'y')") from None
        except (RuntimeError, EOFError, ValueError, OSError) as exc:
            raise PdeforgeError(f"{self.path} is not a loadable tensor file ({type(exc).__name__}: truncated, "
                                "or not written by torch.save)") from None
        if not isinstance(payload, dict) or not {"x", "y"} <= set(payload):
            raise PdeforgeError(f"{self.path} is not a neuraloperator data file (a dict with tensors 'x' and 'y')")
        x, y = payload["x"], payload["y"]
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or x.shape[0] != y.shape[0]:
            raise PdeforgeError(f"{self.path}: 'x' and 'y' must be tensors with the same number of samples")
        self._x, self._y = x.numpy(), y.numpy()
        if self._x.dtype == np.bool_:
            self._x = self._x.astype(np.float32)

    def __len__(self) -> int:
        return len(self._x)

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """The per-sample shape of ``x``."""
        return {"x": tuple(self._x.shape[1:])}

    @property
    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        """The per-sample shape of ``y``."""
        return {"y": tuple(self._y.shape[1:])}

    def read(self, start: int, stop: int) -> tuple[Arrays, Arrays]:
        """``x`` and ``y`` of samples ``[start, stop)`` (held in memory since loading)."""
        return {"x": self._x[start:stop]}, {"y": self._y[start:stop]}

    def take(self, rows: np.ndarray) -> tuple[Arrays, Arrays]:
        """``x`` and ``y`` of the samples ``rows`` (strictly increasing)."""
        rows = _increasing(rows, len(self))
        return {"x": self._x[rows]}, {"y": self._y[rows]}


def _increasing(rows: np.ndarray, n: int) -> np.ndarray:
    """``rows`` as an int64 array, checked strictly increasing within ``[0, n)``."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (len(rows) and (rows[0] < 0 or rows[-1] >= n or np.any(np.diff(rows) <= 0))):
        raise IndexError(f"rows must be strictly increasing sample indices in [0, {n})")
    return rows


WALL = "wall_seconds"
"""The per-sample solve time of the ``diagnostics`` table, kept in the manifest rather than in the shard's bytes."""


def _column(h5: h5py.File, record: ShardRecord, group: str, name: str, rows: slice) -> np.ndarray:
    """Rows of one per-sample array of a shard; ``diagnostics/wall_seconds`` from the manifest's timing."""
    if group == "diagnostics" and name == WALL and f"{group}/{name}" not in h5:
        seconds = np.nan if record.solve_seconds is None else record.solve_seconds / record.count
        return np.full(rows.stop - rows.start, seconds)
    return _dataset(h5, f"{group}/{name}")[rows]


def _dataset(h5: h5py.Group, name: str) -> h5py.Dataset:
    """The dataset at ``name`` in ``h5``; a group or named type there is a malformed file."""
    node = h5[name]
    if not isinstance(node, h5py.Dataset):
        raise PdeforgeError(f"{h5.file.filename}: '{name}' is not a dataset")
    return node


def _group(h5: h5py.Group, name: str) -> h5py.Group:
    """The group at ``name`` in ``h5``; a dataset or named type there is a malformed file."""
    node = h5[name]
    if not isinstance(node, h5py.Group):
        raise PdeforgeError(f"{h5.file.filename}: '{name}' is not a group")
    return node


def _open_hdf5(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise PdeforgeError(f"{path} does not exist") from None
    except OSError:
        raise PdeforgeError(f"{path} is not a readable HDF5 file") from None


def open_dataset(path: str | Path, *, allow_incomplete: bool = False) -> ArraySource:
    """Open any supported dataset by looking at what ``path`` is."""
    path = Path(path)
    if not path.exists():
        raise PdeforgeError(f"{path} does not exist")
    if path.is_dir():
        return PdeforgeDataset(path, allow_incomplete=allow_incomplete)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".hdf"):
        return PDEBenchFile(path)
    if suffix in (".pt", ".pth"):
        return NeuralopFile(path)
    raise PdeforgeError(f"{path}: unrecognised data format (expected a pdeforge dataset directory, .h5/.hdf5 or .pt)")
