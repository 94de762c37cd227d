"""Spectral building blocks: transforms, dealiasing, Sobolev norms, random fields."""

from pdeforge.spectral._dealias import dealias_mask
from pdeforge.spectral._grf import GaussianRandomField
from pdeforge.spectral._sobolev import sobolev_norm
from pdeforge.spectral._transforms import cosine_synthesis, dct1, dct2, dst1, dst1n, grid_dims, idct2, rfft_weights

__all__ = [
    "GaussianRandomField",
    "cosine_synthesis",
    "dct1",
    "dct2",
    "dealias_mask",
    "dst1",
    "dst1n",
    "grid_dims",
    "idct2",
    "rfft_weights",
    "sobolev_norm",
]
