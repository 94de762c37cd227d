"""Errors per stored snapshot of a trajectory: relative L2, VRMSE and binned spectral MSE against lead time.

A problem whose output is a trajectory ``[T, *extra, *space]`` (Burgers,
Navier-Stokes, the periodic gallery) is learned with its snapshots as
channels; one aggregate error hides how the error grows with lead time, which
is what a user of a surrogate for dynamics needs to see. The metrics follow
The Well (Ohana et al., NeurIPS 2024 Datasets and Benchmarks;
PolymathicAI/the_well, ``benchmark/metrics/spatial.py`` and ``spectral.py``):

* **VRMSE**, the variance-scaled RMSE ``sqrt(mean (p - y)^2 / (var y + 1e-7))``
  per channel, spatial mean and unbiased spatial variance, then averaged
  over the snapshot's channels (its ``nrmse`` with ``norm_mode="std"``);
* **binned spectral MSE**: the MSE carried by the Fourier modes of each of
  three bands of ``|k|`` in radians per grid spacing, edges ``0, 2 pi / N
  (pi / (2 pi / N))^(1/3), 2 pi / N (pi / (2 pi / N))^(2/3), pi`` (three
  log-spaced bands, the first starting at zero); modes with ``|k| >= pi``
  (the corners of a square grid) belong to no band; averaged over channels.
  By Parseval the three bands sum to the MSE less the corners' share.

plus pdeforge's relative L2 per snapshot, ``||p - y|| / ||y||`` over all of
its channels and points.
"""

from __future__ import annotations

import math

import numpy as np

from pdeforge.grids import Grid
from pdeforge.problems import PROBLEMS

__all__ = ["BANDS", "band_edges", "binned_spectral_mse", "by_step", "lead_time_errors", "trajectory_steps", "vrmse"]

BANDS = ("low", "mid", "high")
VRMSE_EPS = 1e-7


def trajectory_steps(source, outputs: tuple[str, ...]) -> int | None:
    """The number of stored snapshots when the one output field is a trajectory, else ``None``.

    Parameters
    ----------
    source
        An opened dataset (a pdeforge dataset names its problem, whose output
        field declares its axes; foreign files do not).
    outputs
        The output fields the model predicts.

    Returns
    -------
    int or None
        ``T`` of an output ``[T, ...]`` whose first axis is time.
    """
    problem = PROBLEMS.get(getattr(source, "problem", None) or "")
    if problem is None or len(outputs) != 1:
        return None
    spec = {f.name: f for f in problem.outputs}.get(outputs[0])
    if spec is None or not spec.axes or spec.axes[0] != "t":
        return None
    return int(source.output_shapes[outputs[0]][0])


def by_step(a: np.ndarray, steps: int, spatial_dims: int) -> np.ndarray:
    """``[n, channels, *space]`` as ``[n, steps, channels per step, *space]`` (channels are time-major)."""
    space = a.shape[a.ndim - spatial_dims:]
    return a.reshape(a.shape[0], steps, -1, *space)


def vrmse(truth: np.ndarray, pred: np.ndarray, spatial_dims: int) -> np.ndarray:
    """The Well's VRMSE of every leading index, over the last ``spatial_dims`` axes.

    Parameters
    ----------
    truth, pred
        Arrays ``[..., *space]``.
    spatial_dims
        Number of trailing spatial axes.

    Returns
    -------
    numpy.ndarray
        ``sqrt(mean (pred - truth)^2 / (var truth + 1e-7))`` of shape ``[...]``.
    """
    axes = tuple(range(truth.ndim - spatial_dims, truth.ndim))
    mse = ((pred - truth) ** 2).mean(axis=axes)
    return np.sqrt(mse / (truth.var(axis=axes, ddof=1) + VRMSE_EPS))


def band_edges(size: int) -> np.ndarray:
    """The four edges of The Well's three log-spaced bands for ``size`` points per axis (radians per spacing)."""
    edges = np.logspace(math.log10(2 * math.pi / size), math.log10(math.pi), 4)
    edges[0] = 0.0
    return edges


def binned_spectral_mse(truth: np.ndarray, pred: np.ndarray, spatial_dims: int) -> np.ndarray:
    """The MSE carried by each of the three wavenumber bands, per leading index.

    Parameters
    ----------
    truth, pred
        Arrays ``[..., *space]`` on a grid with the same number of points on
        every spatial axis.
    spatial_dims
        Number of trailing spatial axes.

    Returns
    -------
    numpy.ndarray
        ``[..., 3]``: ``sum over the band's modes |FFT(pred - truth)|^2 / N^(2d)``.
    """
    space = truth.shape[truth.ndim - spatial_dims:]
    if len(set(space)) != 1:
        raise ValueError(f"binned spectral errors need the same size on every axis, got {list(space)}")
    size = space[0]
    axes = tuple(range(truth.ndim - spatial_dims, truth.ndim))
    power = np.abs(np.fft.fftn(pred - truth, axes=axes)) ** 2 / float(size**spatial_dims) ** 2
    # |k| in radians per grid spacing: the angular wavenumbers of a periodic box of side N spacings.
    radius = Grid(space, space).wavenumber_squared(rfft=False).sqrt().numpy()
    band = np.digitize(radius, band_edges(size)) - 1  # 0, 1, 2 inside the bands; 3 at |k| >= pi
    flat = power.reshape(*power.shape[: power.ndim - spatial_dims], -1)
    return np.stack([flat[..., (band == b).ravel()].sum(-1) for b in range(len(BANDS))], axis=-1)


def lead_time_errors(truth: np.ndarray, pred: np.ndarray, steps: int, spatial_dims: int) -> dict[str, np.ndarray]:
    """Per-sample, per-snapshot errors of trajectories stored as channels.

    Parameters
    ----------
    truth, pred
        ``[n, channels, *space]`` with ``channels = steps * c`` in time-major order.
    steps
        Number of snapshots ``T``.
    spatial_dims
        Number of trailing spatial axes.

    Returns
    -------
    dict
        ``rel_l2`` and ``vrmse`` ``[n, T]``; ``spectral_mse`` ``[n, T, 3]`` (bands low, mid, high).
    """
    y = by_step(np.asarray(truth, dtype=np.float64), steps, spatial_dims)
    p = by_step(np.asarray(pred, dtype=np.float64), steps, spatial_dims)
    flat = tuple(range(2, y.ndim))
    rel = np.sqrt(((p - y) ** 2).sum(axis=flat) / np.maximum((y**2).sum(axis=flat), 1e-300))
    return {
        "rel_l2": rel,
        "vrmse": vrmse(y, p, spatial_dims).mean(axis=2),
        "spectral_mse": binned_spectral_mse(y, p, spatial_dims).mean(axis=2),
    }
