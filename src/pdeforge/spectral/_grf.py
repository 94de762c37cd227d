"""Gaussian random fields with covariance ``scale * (-Lap + tau^2)^(-alpha)``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pdeforge.grids import Boundary, Grid
from pdeforge.spectral._transforms import cosine_synthesis, grid_dims, rfft_weights

__all__ = ["GaussianRandomField"]


class GaussianRandomField:
    r"""Samples of :math:`N(0, C)` with :math:`C = \text{scale}\,(-\Delta + \tau^2 I)^{-\alpha}`.

    The field is the Karhunen-Loeve sum :math:`u = \sum_k \sqrt{\lambda_k}\,
    \xi_k \phi_k` over the orthonormal eigenfunctions :math:`\phi_k` of
    :math:`-\Delta` on the grid's box, with :math:`\xi_k \sim N(0, 1)` i.i.d.
    and :math:`\lambda_k = \text{scale}\,(|k|^2 + \tau^2)^{-\alpha}`, truncated
    to the modes the grid resolves. This is the prior of the FNO benchmarks
    (Li et al. 2021, sec. 5): periodic boundaries use Fourier modes
    (:math:`|k|^2 = 4\pi^2 |n|^2 / L^2`), Neumann boundaries use cosine modes
    (:math:`|k|^2 = \pi^2 |n|^2 / L^2`) evaluated at the nodes with DCT-I.

    ``zero_mean=True`` drops the constant (``k = 0``) mode, so every sample
    has zero mean over the box. That is what the code behind the FNO
    benchmarks' published data does (``L(1,1) = 0`` in its Darcy ``GRF.m``,
    ``m = 0`` in its Burgers ``GRF1.m``, ``sqrt_eig[0] = 0`` in its periodic
    ``GaussianRF``), although the papers write the prior with the mode kept.

    ``scale`` is the covariance multiplier exactly as written in the papers'
    notation. (FNO's reference code multiplies the square-root eigenvalues by
    :math:`\sqrt{2}\,\tau^{\alpha - d/2}` instead, i.e. ``scale = 2
    tau^(2 alpha - d)``; pass that value to reproduce its amplitudes.)

    Parameters
    ----------
    grid
        A periodic or Neumann grid.
    scale, tau, alpha
        Covariance multiplier, inverse length scale, smoothness exponent.
    zero_mean
        Drop the constant mode (the FNO data's convention); ``False`` keeps
        it with variance ``scale * tau^(-2 alpha)``.
    device, dtype
        Of the eigenvalues and of the samples.

    Examples
    --------
    >>> grf = GaussianRandomField(Grid((64,)), scale=625.0, tau=5.0, alpha=2.0)
    >>> u = grf.sample([np.random.default_rng(0)])
    >>> tuple(u.shape)
    (1, 64)
    """

    def __init__(self, grid: Grid, *, scale: float, tau: float, alpha: float, zero_mean: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float64) -> None:
        if grid.boundary is Boundary.DIRICHLET:
            raise ValueError("random fields are defined for periodic or Neumann grids")
        if scale <= 0 or tau < 0 or alpha <= 0:
            raise ValueError("a random field needs scale > 0, tau >= 0 and alpha > 0")
        self.grid, self.scale, self.tau, self.alpha = grid, float(scale), float(tau), float(alpha)
        self.zero_mean = bool(zero_mean)
        self.device, self.dtype = device, dtype
        k2 = grid.wavenumber_squared(rfft=grid.periodic, dtype=dtype, device=device)
        eig = self.scale * (k2 + self.tau**2) ** (-self.alpha)
        if self.tau == 0 or self.zero_mean:
            eig = torch.where(k2 > 0, eig, torch.zeros_like(eig))  # no constant mode (it is infinite without tau)
        self.eigenvalues = eig

    def sample(self, rngs: Sequence[np.random.Generator]) -> torch.Tensor:
        """One field per generator, ``[len(rngs), *grid.shape]``.

        Each generator draws ``grid.size`` standard normals, so the sample
        depends only on its own generator.

        Parameters
        ----------
        rngs
            One NumPy generator per sample.

        Returns
        -------
        torch.Tensor
            ``[len(rngs), *grid.shape]`` fields.
        """
        noise = np.stack([rng.standard_normal(self.grid.shape) for rng in rngs])
        return self.from_noise(torch.as_tensor(noise, dtype=self.dtype, device=self.device))

    def from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """The field made from white noise of unit variance.

        Parameters
        ----------
        noise
            ``[batch, *grid.shape]`` independent standard normals.

        Returns
        -------
        torch.Tensor
            ``[batch, *grid.shape]`` fields, linear in ``noise``.
        """
        g = self.grid
        dims = grid_dims(g)
        if g.periodic:
            # rfftn of real white noise has E|z_k|^2 = N^d and Hermitian symmetry:
            # scaling by sqrt(lambda_k N^d / V) gives the orthonormal-basis K-L sum.
            amp = (self.eigenvalues * (g.size / g.volume)).sqrt()
            return torch.fft.irfftn(amp * torch.fft.rfftn(noise, dim=dims), s=g.shape, dim=dims)
        # Neumann: coefficient of mode k times its orthonormal cosine, at the nodes.
        norm = torch.ones((), dtype=self.dtype, device=self.device)
        for axis, (n, length) in enumerate(zip(g.shape, g.extent, strict=True)):
            w = torch.full((n,), math.sqrt(2.0 / length), dtype=self.dtype, device=self.device)
            w[0] = math.sqrt(1.0 / length)
            view = [1] * g.ndim
            view[axis] = n
            norm = norm * w.reshape(view)
        u = noise * self.eigenvalues.sqrt() * norm
        for dim in dims:
            u = cosine_synthesis(u, dim=dim)
        return u

    def pointwise_variance(self) -> float:
        """:math:`E[u(x)^2]` of the truncated field (constant in x for periodic grids).

        Returns
        -------
        float
            The variance at every point of a periodic grid.

        Raises
        ------
        ValueError
            On a Neumann grid, where the variance depends on position.
        """
        if not self.grid.periodic:
            raise ValueError("the Neumann field's variance depends on position")
        w = rfft_weights(self.grid, dtype=self.dtype, device=self.device)
        return float((self.eigenvalues * w).sum() / self.grid.volume)
