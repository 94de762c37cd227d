"""Write files so that a reader sees either the old file or the complete new one."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_json", "fsync_directory", "sha256_file"]

TEMP_SUFFIX = ".partial"


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success fsync it and rename it over ``target``.

    On any exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    tmp = target.with_name(f"{target.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        fsync_directory(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_json(target: Path, payload: dict) -> None:
    """Write ``payload`` as indented JSON to ``target`` atomically (see :func:`atomic_path`)."""
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=False)
            fh.write("\n")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """The hex sha256 of the file's bytes, read in blocks of ``chunk`` bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
