"""Fourier and cosine transforms on :class:`~pdeforge.grids.Grid` fields.

Fields are tensors ``[..., *grid.shape]``: the grid axes are always the last
``grid.ndim`` axes, anything before them is batch or channel.
"""

from __future__ import annotations

import math

import scipy.fft
import torch

from pdeforge.grids import Grid

__all__ = ["cosine_synthesis", "dct1", "dct2", "dst1", "dst1n", "grid_dims", "idct2", "rfft_weights"]


def grid_dims(grid: Grid) -> tuple[int, ...]:
    """The (negative) tensor axes that hold the grid.

    Parameters
    ----------
    grid
        The grid of the fields.

    Returns
    -------
    tuple of int
        ``(-grid.ndim, ..., -1)``, for the ``dim`` argument of the FFTs.

    Examples
    --------
    >>> grid_dims(Grid((8, 8)))
    (-2, -1)
    """
    return tuple(range(-grid.ndim, 0))


def rfft_weights(grid: Grid, *, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Multiplicity of each ``rfftn`` coefficient in the full spectrum.

    ``rfftn`` stores only ``k >= 0`` on the last axis; every column except
    ``k = 0`` and (for even ``N``) the Nyquist column stands for itself and
    its complex conjugate, so sums over the full spectrum (Parseval) count it
    twice.

    Parameters
    ----------
    grid
        The grid whose last axis is transformed by ``rfftn``.
    dtype, device
        Of the returned weights.

    Returns
    -------
    torch.Tensor
        ``[grid.shape[-1] // 2 + 1]`` weights, 1 or 2.

    Examples
    --------
    >>> rfft_weights(Grid((4,))).tolist()
    [1.0, 2.0, 1.0]
    """
    n = grid.shape[-1]
    w = torch.full((n // 2 + 1,), 2.0, dtype=dtype, device=device)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def dct1(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Unnormalised type-I discrete cosine transform along ``dim``.

    Same definition as :func:`scipy.fft.dct` with ``type=1``::

        y_k = x_0 + (-1)^k x_{N-1} + 2 sum_{n=1}^{N-2} x_n cos(pi k n / (N - 1))

    computed as the FFT of the even extension of ``x`` (length ``2N - 2``).
    DCT-I is its own inverse up to the factor ``2 (N - 1)``.

    Parameters
    ----------
    x
        Real tensor with at least two points along ``dim``.
    dim
        The axis to transform.

    Returns
    -------
    torch.Tensor
        The coefficients ``y``, shaped like ``x``.

    Examples
    --------
    >>> dct1(torch.tensor([1.0, 2.0, 3.0])).tolist()
    [8.0, -2.0, 0.0]
    """
    n = x.shape[dim]
    if n < 2:
        raise ValueError("DCT-I needs at least two points")
    inner = x.narrow(dim, 1, n - 2).flip(dim)
    return torch.fft.rfft(torch.cat([x, inner], dim=dim), dim=dim).real


def dst1(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Unnormalised type-I discrete sine transform along ``dim``.

    Same definition as :func:`scipy.fft.dst` with ``type=1``::

        y_k = 2 sum_{n=0}^{N-1} x_n sin(pi (k + 1) (n + 1) / (N + 1))

    computed as the FFT of the odd extension ``[0, x, 0, -reversed(x)]``
    (length ``2N + 2``), whose transform is ``-i y``. DST-I is its own
    inverse up to the factor ``2 (N + 1)``. Its basis vectors are the
    eigenvectors of the second-difference matrix with zero Dirichlet ends.

    Parameters
    ----------
    x
        Real tensor with at least one point along ``dim`` (the interior nodes).
    dim
        The axis to transform.

    Returns
    -------
    torch.Tensor
        The coefficients ``y``, shaped like ``x``.
    """
    n = x.shape[dim]
    if n < 1:
        raise ValueError("DST-I needs at least one point")
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    odd = torch.cat([zero, x, zero, -x.flip(dim)], dim=dim)
    return -torch.fft.rfft(odd, dim=dim).imag.narrow(dim, 1, n)


def dst1n(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """:func:`dst1` along each of ``dims``.

    On the CPU this is :func:`scipy.fft.dstn` on the tensor's own memory
    (measured 2x faster than the FFT of the odd extension); on other
    devices, :func:`dst1` axis by axis, so the data never leave the device.

    Parameters
    ----------
    x
        Real tensor.
    dims
        The axes to transform.

    Returns
    -------
    torch.Tensor
        The coefficients, shaped like ``x``.
    """
    if x.device.type == "cpu" and not x.requires_grad:
        out = scipy.fft.dstn(x.numpy(), type=1, axes=dims, workers=torch.get_num_threads())
        return torch.from_numpy(out)
    for d in dims:
        x = dst1(x, d)
    return x


def cosine_synthesis(coefficients: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Evaluate ``sum_k c_k cos(pi k j / (N - 1))`` at the nodes ``j = 0..N-1``.

    The inverse of the cosine analysis used by the Neumann random fields:
    a DCT-I of the coefficients with the interior ones halved.

    Parameters
    ----------
    coefficients
        ``c_k``, ``k = 0..N-1``, along ``dim``.
    dim
        The axis of the coefficients.

    Returns
    -------
    torch.Tensor
        The field at the nodes, shaped like ``coefficients``.

    Examples
    --------
    >>> cosine_synthesis(torch.tensor([0.0, 1.0, 0.0])).tolist()  # cos(pi j / 2) at j = 0, 1, 2
    [1.0, 0.0, -1.0]
    """
    n = coefficients.shape[dim]
    scale = torch.full((n,), 0.5, dtype=coefficients.dtype, device=coefficients.device)
    scale[0] = 1.0
    scale[-1] = 1.0
    view = [1] * coefficients.ndim
    view[dim] = n
    return dct1(coefficients * scale.reshape(view), dim=dim)


def _twiddle(n: int, x: torch.Tensor, dim: int, sign: float) -> torch.Tensor:
    """``exp(sign i pi k / (2n))``, ``k = 0..n-1``, shaped to broadcast along ``dim`` of ``x``."""
    k = torch.arange(n, dtype=x.dtype, device=x.device)
    view = [1] * x.ndim
    view[dim] = n
    return torch.polar(torch.ones_like(k), sign * math.pi * k / (2 * n)).reshape(view)


def dct2(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Orthonormal type-II discrete cosine transform along ``dim``.

    Same as :func:`scipy.fft.dct` with ``type=2, norm="ortho"``::

        X_k = s_k sum_{j=0}^{N-1} x_j cos(pi k (2 j + 1) / (2 N)),   s_0 = sqrt(1/N), s_k = sqrt(2/N)

    The basis vectors are the cosines sampled at the cell centres
    ``(j + 1/2) / N``, so it suits data with half-sample symmetric (Neumann)
    ends. Computed with one complex FFT of length ``N`` (Makhoul 1980): the
    even-indexed samples, then the odd-indexed ones reversed, transformed
    and turned by ``exp(-i pi k / (2N))``. Differentiable and on ``x``'s
    device; its inverse is :func:`idct2`. Being orthonormal, it keeps sums
    of squares (Parseval).

    Parameters
    ----------
    x
        Real tensor.
    dim
        The axis to transform.

    Returns
    -------
    torch.Tensor
        The coefficients ``X``, shaped like ``x``.

    References
    ----------
    Makhoul, "A fast cosine transform in one and two dimensions", IEEE Trans.
    Acoust. Speech Signal Process. 28(1), 1980, sec. II.

    Examples
    --------
    >>> dct2(torch.ones(4, dtype=torch.float64)).tolist()  # a constant is sqrt(N) times the first basis vector
    [2.0, 0.0, 0.0, 0.0]
    """
    dim = dim % x.ndim
    n = x.shape[dim]
    reordered = x.index_select(dim, _makhoul_order(n, x.device))
    spectrum = torch.fft.fft(reordered, dim=dim) * _twiddle(n, x, dim, -1.0)
    scale = torch.full((n,), math.sqrt(2.0 / n), dtype=x.dtype, device=x.device)
    scale[0] = math.sqrt(1.0 / n)
    view = [1] * x.ndim
    view[dim] = n
    return spectrum.real * scale.reshape(view)


def _makhoul_order(n: int, device: torch.device) -> torch.Tensor:
    """Indices ``0, 2, 4, ..., then the odd ones reversed``: the sequence whose FFT gives the DCT-II."""
    return torch.tensor([*range(0, n, 2), *range(n - 1 - n % 2, 0, -2)], dtype=torch.long, device=device)


def idct2(coefficients: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Inverse of :func:`dct2` (the orthonormal type-III transform) along ``dim``.

    Same as :func:`scipy.fft.idct` with ``type=2, norm="ortho"``::

        x_j = sum_{k=0}^{N-1} s_k X_k cos(pi k (2 j + 1) / (2 N))

    One inverse FFT of length ``N``: with ``C_k`` the unnormalised cosine
    sums, the FFT of the reordered samples is ``V_k = exp(i pi k / (2N))
    (C_k - i C_{N-k})`` (``C_N = 0``), whose inverse gives the even samples
    and the odd ones reversed.

    Parameters
    ----------
    coefficients
        Real ``X`` along ``dim``.
    dim
        The axis of the coefficients.

    Returns
    -------
    torch.Tensor
        The samples ``x``, shaped like ``coefficients``.

    Examples
    --------
    >>> idct2(torch.tensor([2.0, 0.0, 0.0, 0.0], dtype=torch.float64)).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    c = coefficients
    dim = dim % c.ndim
    n = c.shape[dim]
    scale = torch.full((n,), math.sqrt(n / 2.0), dtype=c.dtype, device=c.device)
    scale[0] = math.sqrt(float(n))
    view = [1] * c.ndim
    view[dim] = n
    sums = c * scale.reshape(view)  # C_k = sum_j x_j cos(pi k (2j + 1) / (2N))
    mirrored = torch.cat([torch.zeros_like(sums.narrow(dim, 0, 1)), sums.narrow(dim, 1, n - 1).flip(dim)], dim=dim)
    spectrum = torch.complex(sums, -mirrored) * _twiddle(n, c, dim, 1.0)
    reordered = torch.fft.ifft(spectrum, dim=dim).real
    inverse_order = torch.argsort(_makhoul_order(n, c.device))
    return reordered.index_select(dim, inverse_order)
