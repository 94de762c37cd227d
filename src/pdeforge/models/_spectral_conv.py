"""The spectral convolution of a Fourier layer and its dense kernel.

``SpectralConv`` computes ``K u = F^{-1}(R . F u)`` (Li et al. 2021, eq. 4):
the kept Fourier coefficients of every input channel are mixed by one
complex ``in x out`` matrix per kept mode, everything else is dropped.
How the per-mode matrices are stored is a separate, injected component (a
*spectral kernel*): :class:`DenseSpectralKernel` here, the Tucker-factorised
kernel of TFNO in :mod:`pdeforge.models._tucker`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from pdeforge._typing import Coefficients, InFields, OutFields
from pdeforge.models._fourier import BACKENDS, choose_backend, kept_modes, truncated_irfft, truncated_rfft

__all__ = ["DenseSpectralKernel", "SpectralConv", "mix_modes", "normalise_modes", "widen_spectral_conv"]


def normalise_modes(modes: int | Sequence[int], spatial_dims: int | None = None) -> tuple[int, ...]:
    """``modes`` as one positive count per spatial axis.

    Parameters
    ----------
    modes
        One count for every axis, or one per axis.
    spatial_dims
        Number of spatial axes; needed when ``modes`` is an int.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> normalise_modes(4, 2), normalise_modes([3, 2, 1])
    ((4, 4), (3, 2, 1))
    """
    if isinstance(modes, int):
        if spatial_dims is None:
            raise ValueError("an integer `modes` needs `spatial_dims`")
        modes = (modes,) * spatial_dims
    modes = tuple(int(m) for m in modes)
    if spatial_dims is not None and len(modes) != spatial_dims:
        raise ValueError(f"modes {modes} do not match {spatial_dims} spatial dimensions")
    if not 1 <= len(modes) <= 3 or min(modes) < 1:
        raise ValueError(f"modes must be 1 to 3 positive counts, got {modes}")
    return modes


def full_kept_shape(modes: Sequence[int]) -> tuple[int, ...]:
    """Shape of the kept block at full resolution: ``2 m`` per axis, ``m`` on the last.

    Parameters
    ----------
    modes
        Kept modes per axis.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> full_kept_shape((12, 12))
    (24, 12)
    """
    return tuple(2 * m for m in modes[:-1]) + (modes[-1],)


InCoefficients = Float[Tensor, "2 batch in_channels *kept"]
"""Part-major kept coefficients of a layer's input channels."""

OutCoefficients = Float[Tensor, "2 batch out_channels *kept"]
"""Part-major kept coefficients of a layer's output channels."""

ModeWeights = Float[Tensor, "*kept in_channels 2 out_channels"]
"""One complex ``in x out`` matrix per kept mode, as real pairs on the axis of 2."""


def mix_modes(z: InCoefficients, weight: ModeWeights) -> OutCoefficients:
    """Multiply every kept mode's channel vector by its own complex matrix.

    Parameters
    ----------
    z
        Part-major coefficients ``[2, batch, in, *kept]``.
    weight
        Real pairs ``[*kept, in, 2, out]`` (``[..., 0, :]`` real part).

    Returns
    -------
    Tensor
        ``[2, batch, out, *kept]``: ``sum_i z[b, i, k] W[k, i, o]`` per mode ``k``.

    Notes
    -----
    One batched GEMM over all kept modes with the real and imaginary parts of
    ``z`` stacked on the batch axis, so the complex product costs one real
    matrix product and two subtractions.
    """
    _, batch, cin = z.shape[:3]
    kept = z.shape[3:]
    cout = weight.shape[-1]
    modes = math.prod(kept)
    zz = z.reshape(2 * batch, cin, modes).permute(2, 0, 1)  # [modes, (part, batch), in]
    p = torch.bmm(zz, weight.reshape(modes, cin, 2 * cout))  # [modes, (part, batch), (part, out)]
    from_real, from_imag = p.split(batch, dim=1)  # split/cat gradients, no zero-filled buffers
    rr, ri = from_real.split(cout, dim=2)
    ir, ii = from_imag.split(cout, dim=2)
    real, imag = rr - ii, ri + ir
    return torch.stack([real, imag]).permute(0, 2, 3, 1).reshape(2, batch, cout, *kept)


def select_slots(weight: Tensor, slots: Sequence[Sequence[int]], full: Sequence[int]) -> Tensor:
    """The sub-block of a ``[*full, ...]`` weight for a coarse grid's kept slots.

    Parameters
    ----------
    weight
        A tensor whose leading axes are the full kept block ``full``.
    slots
        Kept slots per axis (from :func:`~pdeforge.models.kept_modes`).
    full
        The full kept shape.

    Returns
    -------
    Tensor
        ``weight`` itself where every slot is kept, else the selected block.
    """
    for axis, (s, n) in enumerate(zip(slots, full, strict=True)):
        if len(s) != n:
            weight = weight.index_select(axis, torch.tensor(s, device=weight.device))
    return weight


def complex_normal_(weight: Tensor, std: float) -> Tensor:
    """Fill real pairs ``[..., 2, ...]`` in place so the complex values have variance ``std**2``.

    Parameters
    ----------
    weight
        Real and imaginary parts, each filled with variance ``std**2 / 2``.
    std
        Standard deviation of the complex values.

    Returns
    -------
    Tensor
        ``weight``.
    """
    with torch.no_grad():
        return weight.normal_(0.0, std / math.sqrt(2.0))


class DenseSpectralKernel(nn.Module):
    """One dense complex ``in x out`` matrix per kept mode (the original FNO, Li et al. 2021, eq. 4).

    Stored as real pairs ``weight [*kept, in, 2, out]``; initialised with
    complex variance ``2 / (in + out)`` (Glorot, as neuraloperator does).

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    modes
        Kept modes per axis.
    """

    def __init__(self, in_channels: int, out_channels: int, modes: Sequence[int]) -> None:
        super().__init__()
        self.modes = tuple(modes)
        self.kept = full_kept_shape(self.modes)
        self.weight = nn.Parameter(torch.empty(*self.kept, in_channels, 2, out_channels))
        complex_normal_(self.weight, math.sqrt(2.0 / (in_channels + out_channels)))

    def forward(self, z: Coefficients, slots: Sequence[Sequence[int]]) -> Coefficients:
        """Mix the channels of every kept mode.

        Parameters
        ----------
        z
            Part-major coefficients ``[2, batch, in, *kept]``.
        slots
            The kept slots per axis on the current grid.

        Returns
        -------
        Tensor
            ``[2, batch, out, *kept]``.
        """
        return mix_modes(z, select_slots(self.weight, slots, self.kept))


class SpectralConv(nn.Module):
    """Fourier integral operator on a periodic box, 1-D to 3-D, any resolution.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    modes
        Kept modes per axis (see :mod:`pdeforge.models._fourier`): ``m`` keeps
        ``k = -m..m-1`` on every axis but the last and ``k = 0..m-1`` there.
    spatial_dims
        Needed when ``modes`` is an integer.
    kernel
        The per-mode weights: a module ``kernel(z, slots) -> z`` on part-major
        coefficients; default :class:`DenseSpectralKernel`.
    backend
        ``"auto"``, ``"dft"`` (kept-row DFT by GEMM) or ``"fft"``.
    bias
        Add a learned constant per output channel. It is added to the
        ``k = 0`` coefficient, which is the same function at every resolution
        and costs nothing on the full grid.

    References
    ----------
    Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart, Anandkumar,
    "Fourier Neural Operator for Parametric Partial Differential Equations",
    ICLR 2021, sec. 4.

    Examples
    --------
    >>> conv = SpectralConv(3, 5, modes=(4, 4))
    >>> conv(torch.randn(2, 3, 16, 20)).shape
    torch.Size([2, 5, 16, 20])
    """

    def __init__(self, in_channels: int, out_channels: int, modes: int | Sequence[int], *,
                 spatial_dims: int | None = None, kernel: nn.Module | None = None, backend: str = "auto",
                 bias: bool = False) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown spectral backend {backend!r} (use one of {BACKENDS})")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.modes = normalise_modes(modes, spatial_dims)
        self.backend = backend
        self.kernel = kernel if kernel is not None else DenseSpectralKernel(in_channels, out_channels, self.modes)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: InFields, shape: Sequence[int] | None = None,
                out_shape: Sequence[int] | None = None) -> OutFields:
        """Apply to ``x`` ``[batch, in, *space]``.

        Parameters
        ----------
        x
            Input fields.
        shape
            The spatial shape when ``x``'s last axis carries extra storage
            lanes (see :class:`~pdeforge.models.FNO`); they are ignored and
            come out zero.
        out_shape
            Write the output on another grid (Fourier resampling: the
            coefficients are normalised by ``1 / n``, so a field keeps its
            values), as the ST-FNO's first layer does in time; the kept modes
            must fit both grids. Default: the input's grid.

        Returns
        -------
        Tensor
            ``[batch, out, *space]``.
        """
        d = len(self.modes)
        shape = tuple(x.shape[-d:]) if shape is None else tuple(shape)
        backend = choose_backend(shape, self.modes) if self.backend == "auto" else self.backend
        slots = [kept_modes(n, m, last=axis == d - 1)[1]
                 for axis, (n, m) in enumerate(zip(shape, self.modes, strict=True))]
        z = truncated_rfft(x, self.modes, backend, shape)
        z = self.kernel(z, slots)
        if self.bias is not None:
            z[(0, slice(None), slice(None), *(0,) * d)] += self.bias  # the k = 0 slot comes first on every axis
        if out_shape is not None:
            return truncated_irfft(z, tuple(out_shape), self.modes, backend)
        return truncated_irfft(z, shape, self.modes, backend, x.shape[-1])

    def extra_repr(self) -> str:
        """Channels, kept modes and backend, shown in the module's ``repr``."""
        return f"{self.in_channels}, {self.out_channels}, modes={self.modes}, backend={self.backend!r}"


def widen_spectral_conv(conv: SpectralConv, modes: Sequence[int]) -> SpectralConv:
    """A copy of ``conv`` keeping ``modes`` per axis (at least its own), equal to it on its kept modes.

    The new kernel holds ``conv``'s weights at the frequencies ``conv`` keeps
    and zeros at the others, and the bias is copied, so the new convolution
    computes the same function until the new modes are trained (the
    untruncated last layer of Spectral-Refiner, Cao et al., ICLR 2025, sec. 3.2).

    Parameters
    ----------
    conv
        A convolution with a :class:`DenseSpectralKernel`.
    modes
        Kept modes of the copy per axis, each at least ``conv``'s.

    Returns
    -------
    SpectralConv

    Examples
    --------
    >>> conv = SpectralConv(2, 3, (2, 2))
    >>> wide = widen_spectral_conv(conv, (4, 5))
    >>> x = torch.randn(1, 2, 8, 8)
    >>> bool(torch.allclose(conv(x), wide(x), atol=1e-6))
    True
    """
    if not isinstance(conv.kernel, DenseSpectralKernel):
        raise ValueError(f"only a dense spectral kernel can be widened, got {type(conv.kernel).__name__}")
    modes = normalise_modes(modes, len(conv.modes))
    if any(new < old for new, old in zip(modes, conv.modes, strict=True)):
        raise ValueError(f"widened modes {modes} must keep at least {conv.modes}")
    wide = SpectralConv(conv.in_channels, conv.out_channels, modes, backend=conv.backend,
                        bias=conv.bias is not None).to(conv.kernel.weight.device, conv.kernel.weight.dtype)
    d = len(modes)
    index = []
    for axis, (old, new) in enumerate(zip(conv.modes, modes, strict=True)):
        slots = list(range(old)) if axis == d - 1 else [*range(old), *range(2 * new - old, 2 * new)]
        index.append(torch.tensor(slots, device=conv.kernel.weight.device))
    kernel = wide.kernel
    assert isinstance(kernel, DenseSpectralKernel)
    with torch.no_grad():
        kernel.weight.zero_()
        kernel.weight[torch.meshgrid(*index, indexing="ij")] = conv.kernel.weight
        if conv.bias is not None and wide.bias is not None:
            wide.bias.copy_(conv.bias)
    return wide
