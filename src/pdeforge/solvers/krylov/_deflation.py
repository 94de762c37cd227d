"""Harmonic Ritz vectors: the deflation space that GCRO-DR keeps between cycles and systems.

After a cycle, GCRO-DR has ``A V_hat = W_hat G`` with ``V_hat = [U D, V]``
(``m`` columns), ``W_hat = [C, V_+]`` (``m + 1`` orthonormal columns) and
``G`` upper Hessenberg. Harmonic Ritz pairs of ``A`` with respect to
``range(V_hat)`` solve (Parks et al. 2006, eq. 2.14)

    G^T G z = theta G^T (W_hat^T V_hat) z,

and the vectors ``V_hat z`` for the ``k`` values of smallest ``|theta|``
approximate the eigenvectors that slow restarted GMRES down. With
``mu = 1 / theta`` the pencil becomes the ordinary eigenproblem

    G^+ (W_hat^T V_hat) z = mu z,

(``G^+`` the pseudo-inverse: ``G`` has full column rank), and we want the
``k`` largest ``|mu|``; this needs no generalised eigensolver, so it runs on
whichever device holds the data.
"""

from __future__ import annotations

import torch

__all__ = ["harmonic_ritz_basis", "real_basis"]


def real_basis(values: torch.Tensor, vectors: torch.Tensor, count: int) -> torch.Tensor:
    """A real basis ``[m, count]`` for the span of the eigenvectors of the ``count`` largest ``|values|``.

    A complex conjugate pair ``z, conj(z)`` spans the same real space as
    ``Re z, Im z``: the member with positive imaginary part contributes
    ``Re z``, its partner ``Im z``. If ``count`` splits a pair, the one
    member taken still contributes one real direction of the pair's plane.
    Real eigenvalues' vectors are rotated to be real before taking the real
    part (``torch.linalg.eig`` may return them with any complex phase).
    """
    order = torch.argsort(values.abs(), descending=True)[:count]
    lam, z = values[order], vectors[:, order]
    tiny = 1e-10 * lam.abs().clamp_min(torch.finfo(lam.real.dtype).tiny)
    is_real = lam.imag.abs() <= tiny
    pivot = z.abs().argmax(dim=0)
    phase = z.gather(0, pivot[None])
    phase = phase / phase.abs().clamp_min(torch.finfo(lam.real.dtype).tiny)
    straightened = (z * phase.conj()).real
    return torch.where(is_real, straightened, torch.where(lam.imag > 0, z.real, z.imag))


def harmonic_ritz_basis(G: torch.Tensor, WtV: torch.Tensor, k: int) -> torch.Tensor:
    """``P`` ``[m, k']`` whose columns span the ``k`` harmonic Ritz vectors of smallest ``|theta|``.

    Parameters
    ----------
    G
        ``[m + 1, m]`` with ``A V_hat = W_hat G``.
    WtV
        ``[m + 1, m]``, the product ``W_hat^T V_hat``.
    k
        Wanted dimension (``k' = min(k, m)``).
    """
    m = G.shape[1]
    pencil = torch.linalg.lstsq(G, WtV).solution  # G^+ (W^T V), [m, m]
    values, vectors = torch.linalg.eig(pencil)
    return real_basis(values, vectors, min(k, m))
