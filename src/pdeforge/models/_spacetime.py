"""Space-time neural operators on trajectory windows: FNO-3D and the spatiotemporal FNO (ST-FNO).

Both map a window ``history [B, k c, *space] -> future [B, m c, *space]``
(``c`` channels per snapshot, snapshots time-major, as
:class:`~pdeforge.training.TrajectoryView` stacks them) by treating time as
one more axis of a Fourier operator, so the whole future comes out of one
evaluation (the ``spacetime`` task):

* :class:`FNO3d` is the FNO paper's FNO-3D (Li et al. 2021, sec. 5.3,
  Navier-Stokes): the ``k`` given snapshots are channels repeated at each of
  the ``m`` output times, grid coordinates ``(t, x, y)`` are appended, the
  time axis is padded (it is not periodic) and a 3-D FNO predicts the
  space-time block.
* :class:`STFNO` follows Cao, Brarda, Li, Xi, "Spectral-Refiner: Accurate
  Fine-Tuning of Spatiotemporal Fourier Neural Operator for Turbulent Flows",
  ICLR 2025, sec. 3: a trajectory-to-trajectory operator whose first spectral
  convolution reads the history's space-time spectrum and writes it onto the
  output's time grid by an inverse FFT of another length (Fourier resampling
  in time), followed by space-time Fourier layers. Its last spectral
  convolution is the one :meth:`STFNO.untruncate` replaces by an
  untruncated copy for Spectral-Refiner fine-tuning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdeforge._typing import InFields, OutFields
from pdeforge.models._fno import FNO, FourierLayer
from pdeforge.models._layers import ChannelMLP, DomainPadding, GridCoordinates, Pointwise, check_fields
from pdeforge.models._spectral_conv import SpectralConv, normalise_modes, widen_spectral_conv

__all__ = ["FNO3d", "STFNO"]


def _window(in_channels: int, out_channels: int, fields: int) -> tuple[int, int]:
    """``(k, m)``: snapshots in and out of a window of ``fields`` channels per snapshot."""
    if fields < 1 or in_channels % fields or out_channels % fields:
        raise ValueError(f"a space-time model needs channels that are whole snapshots of {fields} field(s); "
                         f"got {in_channels} in and {out_channels} out")
    return in_channels // fields, out_channels // fields


def _as_window(y: torch.Tensor) -> torch.Tensor:
    """``[B, c, m, *space] -> [B, m c, *space]`` (time-major channels)."""
    return y.transpose(1, 2).reshape(y.shape[0], -1, *y.shape[3:])


class FNO3d(nn.Module):
    """FNO-3D (Li et al. 2021): the history repeated over the output times, then a (d+1)-D FNO.

    Parameters
    ----------
    in_channels, out_channels
        ``k c`` and ``m c``: the history's and the future's snapshots times ``fields``.
    spatial_dims
        Spatial axes of the snapshots (1 or 2).
    fields
        Channels per snapshot, ``c``.
    modes, width, layers
        As for :class:`~pdeforge.models.FNO`, on the ``(t, *space)`` axes
        (the paper's Navier-Stokes FNO-3D: modes 8, width 20, 4 layers).
    time_padding
        Zero cells appended to the time axis before the Fourier layers (paper: 6).
    projection_channels
        Hidden channels of the projection (paper: 128).
    backend
        Truncated-transform backend of the spectral convolutions.

    References
    ----------
    Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart, Anandkumar,
    "Fourier Neural Operator for Parametric Partial Differential Equations",
    ICLR 2021, sec. 5.3 (FNO-3D).

    Examples
    --------
    >>> net = FNO3d(10, 40, spatial_dims=2, modes=4, width=8, layers=2)
    >>> net(torch.randn(2, 10, 16, 16)).shape
    torch.Size([2, 40, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, *, spatial_dims: int, fields: int = 1,
                 modes: int | Sequence[int] = 8, width: int = 20, layers: int = 4, time_padding: int = 6,
                 projection_channels: int = 128, backend: str = "auto") -> None:
        super().__init__()
        self.history, self.horizon = _window(in_channels, out_channels, fields)
        self.spatial_dims = spatial_dims
        padding = DomainPadding(cells=(time_padding,) + (0,) * spatial_dims) if time_padding else None
        self.fno = FNO(in_channels, fields, modes, width, layers, spatial_dims=spatial_dims + 1,
                       projection_channels=projection_channels, padding=padding,
                       coordinates=GridCoordinates("nodes"), backend=backend)

    def forward(self, x: InFields) -> OutFields:
        """``[B, k c, *space] -> [B, m c, *space]``."""
        check_fields(x, self.spatial_dims)
        b, kc, *space = x.shape
        block = x.unsqueeze(2).expand(b, kc, self.horizon, *space)
        return _as_window(self.fno(block))


class STFNO(nn.Module):
    """Spatiotemporal FNO: a history trajectory to a future trajectory through space-time spectra.

    ``history [B, k c, *space]`` is read as ``[B, c, k, *space]``, grid
    coordinates are appended and lifted pointwise to ``width`` channels; the
    first spectral convolution takes the space-time transform on the ``k``
    input times and inverts it on ``m + time_padding`` times (Fourier
    resampling: the forward transform is normalised by ``1 / n`` per axis, so
    a field keeps its values), then GELU; ``layers - 2`` Fourier layers with
    GELU act on the padded output time grid, a pointwise MLP (GELU) mixes the
    channels, and the last layer is a space-time Fourier layer ``K v + W v``
    from ``width`` channels straight to the ``c`` output channels. The padding
    is cropped at the end.

    Ending on a spectral layer is what Spectral-Refiner fine-tunes: the output
    is linear in that layer's weights, and its untruncated copy
    (:meth:`untruncate`) has ``width x c`` weights per mode, not ``width^2``.

    Parameters
    ----------
    in_channels, out_channels
        ``k c`` and ``m c``.
    spatial_dims
        Spatial axes of the snapshots (1 or 2).
    fields
        Channels per snapshot, ``c``.
    modes
        Kept modes on ``(t, *space)``; the first layer keeps at most ``k // 2`` in time.
    width, layers
        Channels inside and number of spectral layers (at least 2).
    time_padding
        Extra output times the Fourier layers see (time is not periodic), cropped at the end.
    projection_channels
        Hidden channels of the pointwise MLP before the last layer.

    References
    ----------
    Cao, Brarda, Li, Xi, "Spectral-Refiner: Accurate Fine-Tuning of
    Spatiotemporal Fourier Neural Operator for Turbulent Flows", ICLR 2025, sec. 3.

    Examples
    --------
    >>> net = STFNO(10, 40, spatial_dims=2, modes=4, width=8, layers=2)
    >>> net(torch.randn(2, 10, 16, 16)).shape
    torch.Size([2, 40, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, *, spatial_dims: int, fields: int = 1,
                 modes: int | Sequence[int] = 8, width: int = 20, layers: int = 4, time_padding: int = 6,
                 projection_channels: int = 128) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"an ST-FNO needs layers >= 2 (a resampling layer and a last layer), got {layers}")
        self.history, self.horizon = _window(in_channels, out_channels, fields)
        self.fields, self.spatial_dims, self.time_padding = fields, spatial_dims, time_padding
        self.modes = normalise_modes(modes, spatial_dims + 1)
        first = (max(1, min(self.modes[0], self.history // 2)), *self.modes[1:])
        self.coordinates = GridCoordinates("nodes")
        self.lifting = Pointwise(fields + spatial_dims + 1, width)
        self.resample = SpectralConv(width, width, first, backend="fft", bias=True)
        self.layers = nn.ModuleList(
            FourierLayer(SpectralConv(width, width, self.modes, bias=True), activation=nn.GELU())
            for _ in range(layers - 2))
        self.mixing = ChannelMLP(width, projection_channels, width)
        self.last = FourierLayer(SpectralConv(width, fields, self.modes, bias=True))

    def forward(self, x: InFields) -> OutFields:
        """``[B, k c, *space] -> [B, m c, *space]``."""
        d = self.spatial_dims
        check_fields(x, d)
        b, _, *space = x.shape
        v = x.reshape(b, self.history, self.fields, *space).transpose(1, 2)  # [B, c, k, *space]
        v = self.lifting(self.coordinates(v, d + 1))
        v = nn.functional.gelu(self.resample(v, out_shape=(self.horizon + self.time_padding, *space)))
        for layer in self.layers:
            v = layer(v)
        v = self.last(nn.functional.gelu(self.mixing(v)))
        return _as_window(v[:, :, : self.horizon])

    def untruncate(self, space: Sequence[int]) -> SpectralConv:
        """Replace the last spectral convolution by an untruncated copy for snapshots of shape ``space``.

        The copy keeps every frequency of the padded output grid
        ``(m + time_padding, *space)``; the trained low modes are copied into it
        and the new modes start at zero, so the network's function is
        unchanged. Returns the new convolution, whose parameters are the ones
        Spectral-Refiner trains.
        """
        grid = (self.horizon + self.time_padding, *space)
        wide = widen_spectral_conv(self.last.conv, tuple(n // 2 + 1 for n in grid))
        wide.backend = "fft"  # it keeps every coefficient
        self.last.conv = wide
        return wide
