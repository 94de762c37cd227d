"""Orszag's two-thirds rule."""

from __future__ import annotations

import torch

from pdeforge.grids import Grid

__all__ = ["dealias_mask"]


def dealias_mask(grid: Grid, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean mask on the ``rfftn`` layout: ``True`` where a mode is kept.

    A quadratic product of two fields band-limited to ``|k_i| < N_i / 3``
    has its aliases fall outside that band, so zeroing every mode with
    ``|k_i| >= N_i / 3`` before and after a product makes it alias-free on
    the kept modes (Orszag 1971, J. Atmos. Sci. 28:1074).

    Parameters
    ----------
    grid
        A periodic grid.
    device
        Of the mask.

    Returns
    -------
    torch.Tensor
        Boolean mask that broadcasts against ``rfftn`` spectra on ``grid``.

    Examples
    --------
    >>> dealias_mask(Grid((6,))).tolist()  # k = 0, 1, 2, 3: |k| < 2 kept
    [True, True, False, False]
    """
    if not grid.periodic:
        raise ValueError("the 2/3 rule applies to periodic grids")
    mask = torch.ones((), dtype=torch.bool, device=device)
    for axis, n in enumerate(grid.shape):
        last = axis == grid.ndim - 1
        k = torch.fft.rfftfreq(n, d=1.0 / n) if last else torch.fft.fftfreq(n, d=1.0 / n)
        keep = (3 * k.abs() < n).to(device)
        view = [1] * grid.ndim
        view[axis] = -1
        keep = keep.reshape(view)
        mask = mask & keep
    return mask
