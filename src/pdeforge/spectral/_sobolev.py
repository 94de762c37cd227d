"""Sobolev norms of periodic fields, computed exactly via Parseval."""

from __future__ import annotations

import torch

from pdeforge.grids import Grid
from pdeforge.spectral._transforms import grid_dims, rfft_weights

__all__ = ["sobolev_norm"]


def sobolev_norm(u: torch.Tensor, grid: Grid, s: float = 0.0, *, seminorm: bool = False) -> torch.Tensor:
    r"""The :math:`H^s` norm of the trigonometric interpolant of ``u``.

    With Fourier coefficients :math:`c_k` (``rfftn(u, norm='forward')``)
    and angular wavenumbers :math:`k`, Parseval gives

    .. math::
        \|u\|_{H^s}^2 = |\Omega| \sum_k (1 + |k|^2)^s |c_k|^2, \qquad
        |u|_{H^s}^2 = |\Omega| \sum_{k \ne 0} |k|^{2s} |c_k|^2 .

    ``s`` may be negative (dual norms, e.g. :math:`H^{-1}`); ``s = 0`` is
    the :math:`L^2` norm. The seminorm drops the mean mode.

    Parameters
    ----------
    u
        ``[..., *grid.shape]`` real field on a periodic grid.
    grid
        The periodic grid of ``u``.
    s
        Sobolev exponent.
    seminorm
        Whether to compute the seminorm :math:`|u|_{H^s}` instead of the norm.

    Returns
    -------
    torch.Tensor
        ``[...]`` norms, one per leading index.

    Examples
    --------
    >>> import math
    >>> g = Grid((32,))
    >>> x, = g.coordinates()
    >>> round(float(sobolev_norm(torch.sin(2 * math.pi * x), g)), 12)  # ||sin||_L2 = 1/sqrt 2
    0.707106781187
    """
    if not grid.periodic:
        raise ValueError("Parseval-based Sobolev norms need a periodic grid; pad the field first")
    if tuple(u.shape[-grid.ndim :]) != grid.shape:
        raise ValueError(f"field shape {tuple(u.shape)} does not end in grid shape {grid.shape}")
    real = u.real.dtype if u.is_complex() else u.dtype
    c = torch.fft.rfftn(u, dim=grid_dims(grid), norm="forward")
    k2 = grid.wavenumber_squared(dtype=real, device=u.device)
    if seminorm:
        weight = torch.where(k2 > 0, k2.clamp_min(torch.finfo(real).tiny) ** s, torch.zeros_like(k2))
    else:
        weight = (1.0 + k2) ** s
    weight = weight * rfft_weights(grid, dtype=real, device=u.device)
    energy = (weight * (c.real**2 + c.imag**2)).sum(dim=grid_dims(grid)) * grid.volume
    return energy.sqrt()
