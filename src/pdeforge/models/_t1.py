"""Transform Once (T1): a neural operator that transforms its input once and learns in frequency space.

    z_0 = P B(a),   z_{l+1} = (z_l + S_d ... S_1 GELU(C_l z_l)) / sqrt(2),   u = B^{-1}(Q z_L)

``B`` is ONE orthonormal transform of the input, the orthonormal DCT-II
(non-periodic data, the default) or the real orthonormal Fourier basis of
the rFFT (periodic data), truncated to its low-frequency block of ``modes``
coefficients per axis and divided by ``sqrt(N)`` (``N`` grid points). Every
layer then acts on that block only: ``C_l`` mixes the channels with one
matrix per kept mode, GELU acts on the (real) coefficients, ``S_a`` mixes
the modes of axis ``a`` with one ``modes x modes`` matrix per channel (the
paper's reduced-order spatial mixing), and a residual adds the layer's
input. There is no inverse transform between layers; one zero-filled
inverse at the end gives the field on the input's grid, so evaluation and
super-resolution see an ordinary ``forward(x) -> y``.

Because ``B`` is orthonormal, the prediction's coefficients are exactly
``Q z_L`` on the block and zero outside, so a relative L2 loss can be
computed in frequency space by Parseval (:meth:`T1.predict_coefficients`,
:meth:`T1.transform_target`), skipping the inverse transform in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pdeforge._typing import Fields, InFields, OutFields
from pdeforge.models._layers import GridCoordinates, check_fields
from pdeforge.models._spectral_conv import normalise_modes
from pdeforge.spectral import dct2, idct2

__all__ = ["T1", "T1Layer", "TRANSFORMS", "real_fourier", "real_fourier_inverse"]

TRANSFORMS = ("dct", "fft")

Block = torch.Tensor
"""Real coefficients ``[batch, channels, *kept]`` of the low-frequency block."""


def real_fourier(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Coefficients of ``x`` in the real orthonormal Fourier basis along ``dim``.

    For ``n`` points the basis is ``1 / sqrt(n)``, then ``sqrt(2/n) cos(2 pi k j / n)``
    and ``sqrt(2/n) sin(2 pi k j / n)`` for ``k = 1, 2, ...`` (interleaved), and
    for even ``n`` the Nyquist vector ``(-1)^j / sqrt(n)`` last: ``n``
    orthonormal vectors. Read off ``rfft(x, norm="ortho")`` ``= c``: ``c_0``,
    ``sqrt(2) Re c_k``, ``-sqrt(2) Im c_k``, ``Re c_{n/2}``. Real, so the
    layers of :class:`T1` need no complex arithmetic.

    Parameters
    ----------
    x
        Real tensor.
    dim
        The axis to transform.

    Returns
    -------
    torch.Tensor
        ``n`` real coefficients along ``dim``, shaped like ``x``.

    Examples
    --------
    >>> j = torch.arange(8, dtype=torch.float64)
    >>> (real_fourier(torch.sin(2 * math.pi * j / 8)).abs() > 1e-12).nonzero().flatten().tolist()  # only sin_1
    [2]
    >>> float(real_fourier(torch.sin(2 * math.pi * j / 8))[2])  # sin_1 = 2 times the unit vector sqrt(2/8) sin
    2.0
    """
    dim = dim % x.ndim
    n = x.shape[dim]
    c = torch.fft.rfft(x, dim=dim, norm="ortho")
    pairs = (n - 1) // 2
    inner = c.narrow(dim, 1, pairs)
    interleaved = torch.stack([math.sqrt(2) * inner.real, -math.sqrt(2) * inner.imag], dim=dim + 1)
    parts = [c.narrow(dim, 0, 1).real, interleaved.flatten(dim, dim + 1)]
    if n % 2 == 0:
        parts.append(c.narrow(dim, n // 2, 1).real)
    return torch.cat(parts, dim=dim)


def real_fourier_inverse(coefficients: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Inverse of :func:`real_fourier` along ``dim`` (its basis is orthonormal, so also its adjoint).

    Parameters
    ----------
    coefficients
        ``n`` real coefficients along ``dim``.
    dim
        The axis of the coefficients.

    Returns
    -------
    torch.Tensor
        The ``n`` samples, shaped like ``coefficients``.
    """
    r = coefficients
    dim = dim % r.ndim
    n = r.shape[dim]
    pairs = (n - 1) // 2
    inner = r.narrow(dim, 1, 2 * pairs).unflatten(dim, (pairs, 2)) / math.sqrt(2)
    cos, sin = inner.select(dim + 1, 0), inner.select(dim + 1, 1)
    zero = torch.zeros_like(r.narrow(dim, 0, 1))
    real = [r.narrow(dim, 0, 1), cos]
    imag = [zero, -sin]
    if n % 2 == 0:
        real.append(r.narrow(dim, n - 1, 1))
        imag.append(zero)
    c = torch.complex(torch.cat(real, dim=dim), torch.cat(imag, dim=dim))
    return torch.fft.irfft(c, n=n, dim=dim, norm="ortho")


_ANALYSIS = {"dct": dct2, "fft": real_fourier}
_SYNTHESIS = {"dct": idct2, "fft": real_fourier_inverse}


class T1Layer(nn.Module):
    """One T1 layer on a coefficient block: ``z' = (z + S_d ... S_1 GELU(C z)) / sqrt(2)``.

    ``C`` mixes the channels with its own ``width x width`` matrix at every
    kept mode; ``S_a`` mixes the ``modes[a]`` coefficients of axis ``a`` with
    its own ``modes[a] x modes[a]`` matrix per channel.

    Variance-preserving initialisation. Poli et al. scale a frequency-domain
    layer's weights so that the output keeps the input's variance on white
    input: ``sigma^2 = N / (M fan_in)`` for a real transform that keeps
    ``M`` of ``N`` coefficients (their released code's ``fdm_init_scale``),
    the factor ``N / M`` making up for the energy the truncation discards. A T1 layer acts on the
    kept block itself and discards nothing (``N = M``), so the rule leaves
    the fan-in scale; with GELU and the residual:

    * ``S_a ~ N(0, 1 / modes[a])``: ``E (S g)_j^2 = sum_k E S_jk^2 E g_k^2 = E g^2``
      for any input, so the mode mixing keeps the second moment exactly;
    * ``C ~ N(0, 2 / width)``: ``h = C z`` has ``E h^2 = 2 E z^2``, and GELU
      keeps ``E GELU(h)^2 = gamma E h^2`` with ``gamma`` from 1/4 (small
      ``h``) to 1/2 (large ``h``; He et al.'s ReLU factor), so the branch has
      ``E u^2 = 2 gamma E z^2``, between ``E z^2 / 2`` and ``E z^2``;
    * the residual is averaged, ``(z + u) / sqrt(2)``, so ``E z'^2 =
      (1 + 2 gamma) E z^2 / 2``: between 3/4 and 1 times the input's per
      layer, instead of the up to doubling of a plain ``z + u``.

    ``tests/test_t1.py`` measures it: on white unit-variance blocks the
    variance stays within a factor 2 of the input's through 8 layers.

    Parameters
    ----------
    width
        Channels.
    modes
        Kept coefficients per axis.

    References
    ----------
    Poli, Massaroli, Berto, Park, Dao, Re, Ermon, "Transform Once: Efficient
    Operator Learning in Frequency Domain", NeurIPS 2022 (arXiv:2211.14453).
    He, Zhang, Ren, Sun, "Delving Deep into Rectifiers", ICCV 2015, sec. 2.2.
    """

    def __init__(self, width: int, modes: Sequence[int]) -> None:
        super().__init__()
        self.modes = tuple(modes)
        self.channel_mixing = nn.Parameter(torch.randn(*self.modes, width, width) * math.sqrt(2.0 / width))
        self.mode_mixing = nn.ParameterList(
            [nn.Parameter(torch.randn(width, m, m) / math.sqrt(m)) for m in self.modes])

    def forward(self, z: Block) -> Block:
        """Apply the layer to a block ``[batch, width, *modes]``.

        Parameters
        ----------
        z
            Coefficients of the kept block.

        Returns
        -------
        Tensor
            Same shape as ``z``.
        """
        batch, width = z.shape[:2]
        kept = math.prod(self.modes)
        # C: one width x width matrix per mode, as one batched GEMM over the modes
        weight = self.channel_mixing.reshape(kept, width, width)  # [mode, in, out]
        h = torch.bmm(z.reshape(batch, width, kept).permute(2, 0, 1), weight).permute(1, 2, 0)
        u = nn.functional.gelu(h.reshape(z.shape))
        letters = "xyz"[: len(self.modes)]
        for axis, s in enumerate(self.mode_mixing):  # S_a along each axis, per channel
            source = letters.replace(letters[axis], "k")
            target = letters.replace(letters[axis], "j")
            u = torch.einsum(f"bc{source},cjk->bc{target}", u, s)
        return (z + u) * (1.0 / math.sqrt(2.0))


class T1(nn.Module):
    """Transform Once: one orthonormal transform, layers on the kept block, one inverse.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output functions.
    modes
        Kept coefficients per axis (int or tuple): the first ``m`` DCT-II
        coefficients, or the first ``m`` functions of the real Fourier basis
        ``1, cos_1, sin_1, cos_2, ...`` (odd ``m`` keeps whole frequency pairs).
        A grid of fewer than ``m`` points on an axis uses the coefficients it
        has; the others enter the layers as zeros.
    width, layers
        Channels inside the layers and their number.
    spatial_dims
        Needed when ``modes`` is an int.
    transform
        ``"dct"`` (orthonormal DCT-II, for non-periodic data) or ``"fft"``
        (the real orthonormal Fourier basis of the rFFT, for periodic data).
    projection_channels
        Hidden channels of the projection ``Q`` (a GELU between its two maps).
    coordinates
        Optional :class:`GridCoordinates` appended to the input before the
        transform. Off by default: the mode mixing is not translation
        equivariant, so the layers can already tell positions apart.

    Notes
    -----
    The lifting ``P`` is pointwise and linear, so it commutes with the
    transform: applying it to the block of the transformed input (as here,
    transforming only the ``in_channels`` channels) gives exactly the block
    of the transformed lifted field of the paper's ``T(fc0(a))``; its bias,
    a constant field, lives on the constant coefficient alone. The
    projection ``Q`` likewise acts on the block, with its output bias on the
    constant coefficient.

    Resolution. Orthonormal coefficients of a smooth function grow like
    ``sqrt(N)`` with the number of points, so the block is divided by
    ``sqrt(N)`` after the transform and multiplied by it before the inverse:
    the layers see the same numbers, approximately the function's cosine or
    Fourier series coefficients, at every resolution. With
    ``transform="fft"`` on a periodic grid (points ``j / n``) that is exact
    for band-limited input: its kept coefficients on ``n`` and ``2n`` points
    are equal, so are the blocks the layers produce, and the outputs agree
    at the common points to rounding (tested). The DCT-II samples cosines at
    the cell centres ``(j + 1/2) / n``; on the node grids of pdeforge's
    Darcy data (points ``j / (n - 1)``, refined to ``2n - 1``) a node grid
    read as cell centres is stretched by ``O(1/n)``, so the blocks on the
    two grids differ at first order in ``1/n`` and so do the outputs (tested:
    several percent at 25 and 49 nodes). That is why the model table
    declares no resolution invariance for the default ``"dct"``.

    Differences from the authors' released code: the residual is averaged
    (see :class:`T1Layer`); coordinates are optional; the projection uses
    GELU and a fan-in initialisation instead of ``sin`` and weights of
    ``1e-8``; the ``fft`` variant works with real coefficients of the real
    Fourier basis instead of complex weights.

    References
    ----------
    Poli, Massaroli, Berto, Park, Dao, Re, Ermon, "Transform Once: Efficient
    Operator Learning in Frequency Domain", NeurIPS 2022 (arXiv:2211.14453):
    the architecture, frequency selection, the variance-preserving
    initialisation; defaults after the authors' released Navier-Stokes
    configuration (DCT, GELU, 24 modes, a 128-channel projection).

    Examples
    --------
    >>> net = T1(1, 1, modes=6, width=8, layers=2, spatial_dims=2)
    >>> net(torch.randn(3, 1, 20, 16)).shape
    torch.Size([3, 1, 20, 16])
    >>> net.predict_coefficients(torch.randn(3, 1, 20, 16)).shape  # the kept block of the prediction
    torch.Size([3, 1, 6, 6])
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int | Sequence[int], width: int = 32,
                 layers: int = 4, *, spatial_dims: int | None = None, transform: str = "dct",
                 projection_channels: int = 128, coordinates: GridCoordinates | None = None) -> None:
        super().__init__()
        if transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
        if layers < 1 or width < 1 or projection_channels < 1:
            raise ValueError(f"T1 needs layers, width and projection_channels >= 1, got {layers}, {width}, "
                             f"{projection_channels}")
        self.modes = normalise_modes(modes, spatial_dims)
        self.spatial_dims = len(self.modes)
        self.transform = transform
        self.coordinates = coordinates
        lift_in = in_channels + (self.spatial_dims if coordinates is not None else 0)
        self.lifting = nn.Parameter(torch.randn(width, lift_in) / math.sqrt(lift_in))
        self.lifting_bias = nn.Parameter(torch.zeros(width))
        self.layers = nn.ModuleList([T1Layer(width, self.modes) for _ in range(layers)])
        self.hidden = nn.Parameter(torch.randn(projection_channels, width) * math.sqrt(2.0 / width))
        self.output = nn.Parameter(torch.randn(out_channels, projection_channels) / math.sqrt(projection_channels))
        self.output_bias = nn.Parameter(torch.zeros(out_channels))

    def _available(self, shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(min(m, n) for m, n in zip(self.modes, shape, strict=True))

    def _block(self, x: Fields) -> Block:
        """The kept block of the orthonormal transform, ``[batch, channel, *available]``."""
        d = self.spatial_dims
        for axis, m in enumerate(self._available(x.shape[-d:])):
            dim = x.ndim - d + axis
            x = _ANALYSIS[self.transform](x, dim).narrow(dim, 0, m)
        return x

    def _field(self, block: Block, shape: Sequence[int]) -> Fields:
        """The field on ``shape`` whose orthonormal coefficients are ``block`` on the block and zero elsewhere."""
        d = self.spatial_dims
        for axis, n in enumerate(shape):
            dim = block.ndim - d + axis
            block = nn.functional.pad(block.movedim(dim, -1), (0, n - block.shape[dim])).movedim(-1, dim)
            block = _SYNTHESIS[self.transform](block, dim)
        return block

    @staticmethod
    def _pointwise(weight: torch.Tensor, z: Block) -> Block:
        return torch.matmul(weight, z.flatten(2)).reshape(z.shape[0], weight.shape[0], *z.shape[2:])

    def _add_to_constant(self, z: Block, bias: torch.Tensor) -> Block:
        """``z`` plus a constant field ``bias``: on the normalised block, the constant coefficient alone."""
        index = (slice(None), slice(None), *([0] * self.spatial_dims))
        shift = torch.zeros_like(z)
        shift[index] = bias.to(z.dtype)
        return z + shift

    def predict_coefficients(self, x: InFields) -> Block:
        """The prediction's orthonormal coefficients on the kept block (the prediction is zero outside it).

        ``forward(x)`` is the inverse transform of this block, zero-filled;
        with :meth:`transform_target` it gives the exact relative L2 error
        by Parseval.

        Parameters
        ----------
        x
            ``[batch, in_channels, *space]``.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *kept]``, ``kept[a] = min(modes[a], space[a])``.
        """
        d = self.spatial_dims
        check_fields(x, d)
        shape = tuple(x.shape[-d:])
        scale = math.sqrt(math.prod(shape))  # orthonormal coefficients of a smooth function grow like sqrt(N)
        if self.coordinates is not None:
            x = self.coordinates(x, d)
        block = self._block(x) / scale  # the ONE transform, of the input's few channels only
        available = block.shape[2:]
        block = nn.functional.pad(block, [p for m, a in zip(reversed(self.modes), reversed(available), strict=True)
                                          for p in (0, m - a)])
        z = self._add_to_constant(self._pointwise(self.lifting, block), self.lifting_bias)
        for layer in self.layers:
            z = layer(z)
        z = self._pointwise(self.output, nn.functional.gelu(self._pointwise(self.hidden, z)))
        z = self._add_to_constant(z, self.output_bias)
        return z[(..., *[slice(0, a) for a in available])] * scale

    def transform_target(self, y: Fields) -> tuple[Block, torch.Tensor]:
        """A target's orthonormal coefficients on the kept block and its energy outside it.

        Parameters
        ----------
        y
            Target fields ``[batch, channels, *space]``.

        Returns
        -------
        block : Tensor
            ``[batch, channels, *kept]``, comparable with :meth:`predict_coefficients`.
        outside : Tensor
            ``[batch, channels]``: the sum of the squared coefficients off the
            block, so that ``||y||^2 = ||block||^2 + outside`` (Parseval).
        """
        d = self.spatial_dims
        shape = tuple(y.shape[-d:])
        available = self._available(shape)
        full = y
        for axis in range(d):
            full = _ANALYSIS[self.transform](full, y.ndim - d + axis)
        inside = torch.ones(shape, dtype=torch.bool, device=y.device)
        for axis, m in enumerate(available):
            view = [1] * d
            view[axis] = shape[axis]
            inside = inside & (torch.arange(shape[axis], device=y.device) < m).reshape(view)
        outside = full.square().masked_fill(inside, 0.0).flatten(2).sum(-1)
        return full[(..., *[slice(0, a) for a in available])], outside

    def forward(self, x: InFields) -> OutFields:
        """Map input fields to output fields on the same grid.

        Parameters
        ----------
        x
            ``[batch, in_channels, *space]``, ``spatial_dims`` spatial axes.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *space]``: the one inverse transform of
            :meth:`predict_coefficients`, zero-filled.
        """
        return self._field(self.predict_coefficients(x), tuple(x.shape[-self.spatial_dims:]))
