"""Per-sample randomness: a sample's draws depend on (dataset seed, index) only.

Every random input of every problem is drawn from the generator returned by
:func:`sample_rng`, on the CPU with NumPy, and then moved to the compute
device. The data are therefore identical whatever the batch size, shard
size, worker count or device.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_rng", "sample_seed"]


def _sequence(seed: int, index: int) -> np.random.SeedSequence:
    if seed < 0 or index < 0:
        raise ValueError("seeds and sample indices are non-negative integers")
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` of a dataset seeded with ``seed``.

    Parameters
    ----------
    seed
        The dataset's seed, a non-negative integer.
    index
        The sample's index in the dataset, a non-negative integer.

    Returns
    -------
    numpy.random.Generator
        A PCG64 generator on the stream spawned for ``(seed, index)``.

    Examples
    --------
    >>> float(sample_rng(0, 3).standard_normal()) == float(sample_rng(0, 3).standard_normal())
    True
    """
    return np.random.Generator(np.random.PCG64(_sequence(seed, index)))


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit integer that identifies the sample's random stream (recorded in diagnostics).

    Parameters
    ----------
    seed, index
        As for :func:`sample_rng`.

    Returns
    -------
    int
        In ``[0, 2**63)``; equal for equal ``(seed, index)``.
    """
    return int(_sequence(seed, index).generate_state(1, np.uint64)[0] >> np.uint64(1))
