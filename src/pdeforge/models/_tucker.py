"""Tucker-factorised spectral kernel: the weights of TFNO.

The dense kernel ``W[i, o, k_1, .., k_d]`` (complex) is replaced by a Tucker
decomposition (Kossaifi et al. 2024, "Multi-Grid Tensorized Fourier Neural
Operator for High-Resolution PDEs", TMLR, sec. 3)

    W = G x_1 U_in x_2 U_out x_3 U_1 ... x_{d+2} U_d,

a small complex core ``G`` and one complex factor per axis. The contraction
never needs the full ``W``: the input channels are first projected onto the
``r_in`` columns of ``U_in``, each kept mode then applies its own
``r_in x r_out`` matrix ``G x U_1 .. x U_d`` (small), and ``U_out`` lifts
back to the output channels. Where that is dearer than rebuilding ``W`` (ranks
close to full) the kernel rebuilds ``W`` and uses the dense product instead.
All tensors are stored as real pairs (a trailing or leading axis of 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from pdeforge._typing import Coefficients
from pdeforge.models._fourier import _complex_apply
from pdeforge.models._spectral_conv import ModeWeights, full_kept_shape, mix_modes, select_slots

__all__ = ["TuckerSpectralKernel", "tucker_ranks"]


def tucker_ranks(shape: Sequence[int], rank: float | Sequence[int]) -> tuple[int, ...]:
    """Per-axis Tucker ranks: ``ceil(rank * n)`` for a fraction, else as given (clipped to ``n``).

    Parameters
    ----------
    shape
        The shape of the tensor to factorise.
    rank
        A fraction in ``(0, 1]`` of every axis, or one rank per axis.

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> tucker_ranks((8, 8, 6, 3), 0.5), tucker_ranks((8, 8, 6, 3), (2, 9, 1, 1))
    ((4, 4, 3, 2), (2, 8, 1, 1))
    """
    if isinstance(rank, (int, float)) and not isinstance(rank, bool):
        if not 0 < rank <= 1:
            raise ValueError(f"a Tucker rank fraction must be in (0, 1], got {rank}")
        return tuple(max(1, math.ceil(rank * n - 1e-9)) for n in shape)
    if isinstance(rank, bool):
        raise TypeError(f"a Tucker rank is a fraction or one rank per axis, not {rank!r}")
    ranks = tuple(int(r) for r in rank)
    if len(ranks) != len(shape) or min(ranks) < 1:
        raise ValueError(f"Tucker ranks {ranks} do not fit the weight shape {tuple(shape)}")
    return tuple(min(r, n) for r, n in zip(ranks, shape, strict=True))


Factor = Float[Tensor, "2 n r"]
"""One complex Tucker factor ``U [n, r]`` as real pairs on the leading axis of 2."""


def _mode_product(t: Tensor, factor: Factor, axis: int) -> Tensor:
    """Complex ``t x_axis factor``: part-major ``t`` ``[2, ..., r, ...]``, ``factor`` ``[2, n, r]``."""
    return _complex_apply(factor.reshape(-1, factor.shape[-1]), t, axis)


class TuckerSpectralKernel(nn.Module):
    """Complex Tucker-factorised ``[in, out, *kept]`` spectral weights.

    ``W = G x_1 U_in x_2 U_out x_3 U_1 .. x_{d+2} U_d`` (module docstring).
    Its parameters are ``core [2, r_in, r_out, r_1..r_d]`` and
    ``factors.j [2, n_j, r_j]`` (real and imaginary parts first): in all
    ``2 (prod_j r_j + sum_j n_j r_j)`` real numbers.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    modes
        Kept modes per axis.
    rank
        A fraction of every axis length (``0.5`` halves each rank), or one
        rank per axis ``(r_in, r_out, r_1, .., r_d)``. Full rank (``1.0``)
        represents every dense kernel exactly.
    contraction
        ``"auto"`` (cheaper of the two by a multiply count), ``"factorized"``
        or ``"reconstructed"``.

    References
    ----------
    Kossaifi, Kovachki, Azizzadenesheli, Anandkumar, "Multi-Grid Tensorized
    Fourier Neural Operator for High-Resolution PDEs", TMLR 2024, sec. 3;
    Tucker, "Some mathematical notes on three-mode factor analysis",
    Psychometrika 31, 1966.

    Examples
    --------
    >>> k = TuckerSpectralKernel(4, 4, (3, 2), rank=0.5)
    >>> k.ranks, sum(p.numel() for p in k.parameters())
    ((2, 2, 3, 1), 96)
    """

    def __init__(self, in_channels: int, out_channels: int, modes: Sequence[int], rank: float | Sequence[int] = 0.5,
                 *, contraction: str = "auto") -> None:
        super().__init__()
        if contraction not in ("auto", "factorized", "reconstructed"):
            raise ValueError(f"unknown Tucker contraction {contraction!r}")
        self.modes = tuple(modes)
        self.kept = full_kept_shape(self.modes)
        self.shape = (in_channels, out_channels, *self.kept)
        self.ranks = tucker_ranks(self.shape, rank)
        self.contraction = contraction
        self.core = nn.Parameter(torch.empty(2, *self.ranks))
        self.factors = nn.ParameterList(nn.Parameter(torch.empty(2, n, r))
                                        for n, r in zip(self.shape, self.ranks, strict=True))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Orthonormal factors and a core scaled so ``W`` has complex variance ``2 / (in + out)``."""
        with torch.no_grad():
            for f in self.factors:
                q, _ = torch.linalg.qr(torch.randn(f.shape[1], f.shape[2], dtype=torch.complex128))
                f.copy_(torch.stack([q.real, q.imag]).to(f.dtype))
            var = 2.0 / (self.shape[0] + self.shape[1]) * math.prod(self.shape) / math.prod(self.ranks)
            self.core.normal_(0.0, math.sqrt(var / 2.0))

    def full_weight(self, slots: Sequence[Sequence[int]] | None = None) -> ModeWeights:
        """The dense kernel it represents, as real pairs ``[*kept, in, 2, out]``.

        Parameters
        ----------
        slots
            Kept slots per axis of a coarse grid (default: the full block).

        Returns
        -------
        Tensor
            The weight :class:`~pdeforge.models.DenseSpectralKernel` would hold.
        """
        t = self.core
        for axis, factor in enumerate(self.factors):
            if axis >= 2 and slots is not None:
                factor = select_slots(factor.transpose(0, 1), [slots[axis - 2]], [self.kept[axis - 2]]).transpose(0, 1)
            t = _mode_product(t, factor, axis + 1)
        d = len(self.modes)
        return t.permute(*range(3, 3 + d), 1, 0, 2)  # [2, in, out, *kept] -> [*kept, in, 2, out]

    def _costs(self, batch: int, modes: int) -> tuple[float, float]:
        cin, cout = self.shape[:2]
        rin, rout = self.ranks[:2]
        core_rest = math.prod(self.ranks[2:])
        rebuilt = modes * cin * cout * (batch + min(rin, rout)) + rin * rout * core_rest * cin
        factored = batch * modes * (cin * rin + rin * rout + rout * cout) + modes * rin * rout * max(self.ranks[2:])
        return rebuilt, factored

    def forward(self, z: Coefficients, slots: Sequence[Sequence[int]]) -> Coefficients:
        """Mix the channels of every kept mode with the Tucker weight.

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
        mode = self.contraction
        if mode == "auto":
            rebuilt, factored = self._costs(z.shape[1], math.prod(z.shape[3:]))
            mode = "factorized" if factored < rebuilt else "reconstructed"
        if mode == "reconstructed":
            return mix_modes(z, self.full_weight(slots))
        # factorised: channels -> r_in, per-mode r_in x r_out core, r_out -> channels
        u_in, u_out, *u_modes = self.factors
        u_in_t = torch.stack([u_in[0].T, u_in[1].T])  # U_in^T (plain transpose: W is bilinear, not sesquilinear)
        z = _complex_apply(u_in_t.reshape(-1, u_in.shape[1]), z, 2)
        t = self.core  # [2, r_in, r_out, r_1..r_d] -> [2, r_in, r_out, *kept]
        for axis, factor in enumerate(u_modes):
            factor = select_slots(factor.transpose(0, 1), [slots[axis]], [self.kept[axis]]).transpose(0, 1)
            t = _mode_product(t, factor, axis + 3)
        d = len(self.modes)
        z = mix_modes(z, t.permute(*range(3, 3 + d), 1, 0, 2))
        return _complex_apply(u_out.reshape(-1, u_out.shape[-1]), z, 2)
