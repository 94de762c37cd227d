"""The 1-D conservative convection equation ``u_t + (b/2) (u^2)_x = L u`` shared by KS and KdV."""

from __future__ import annotations

import torch

from pdeforge.grids import Grid
from pdeforge.problems._spectral_common import CourantMonitor
from pdeforge.spectral import dealias_mask

__all__ = ["ConservativeConvection"]


class ConservativeConvection(CourantMonitor):
    """``u_t = L u - (b/2) (u^2)_x`` in Fourier space (rfft layout), 2/3-dealiased.

    ``L`` is any diagonal linear symbol (real for diffusion-like terms,
    imaginary for dispersion); the nonlinearity is in flux form, so the mean
    of ``u`` is conserved exactly, and on the kept modes it conserves
    ``integral u^2`` too (``<u, (u^2)_x> = 0`` for band-limited fields).
    Records the Courant number ``|b| max|u| h / dx`` of every stage.

    Parameters
    ----------
    grid
        A periodic 1-D grid.
    linear
        The diagonal of ``L`` on the rfft layout ``[N // 2 + 1]``.
    scale
        The convection coefficient ``b`` (1 for Burgers and KS, 6 for KdV).
    device
        Of the operators.
    """

    def __init__(self, grid: Grid, linear: torch.Tensor, scale: float, *, device=None) -> None:
        (k,) = grid.wavenumbers(device=device)
        super().__init__(grid)
        self.grid = grid
        self.scale = float(scale)
        self.linear = linear
        self._mask = dealias_mask(grid, device=device)
        self._flux = -0.5j * self.scale * k * self._mask

    def speed(self, u_hat: torch.Tensor) -> torch.Tensor:
        """The characteristic speed ``|b| max|u|`` per sample."""
        return abs(self.scale) * torch.fft.irfft(u_hat, n=self.grid.shape[0]).abs().amax(-1)

    def nonlinear(self, u_hat: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """``-(b/2) (u^2)_x`` in Fourier space, 2/3-dealiased; records the stage's speed."""
        u = torch.fft.irfft(u_hat * self._mask, n=self.grid.shape[0])
        self.record(abs(self.scale) * u.abs().amax(-1))
        return self._flux * torch.fft.rfft(u * u)
