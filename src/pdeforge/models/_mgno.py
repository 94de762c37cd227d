"""MgNO: neural-operator layers whose linear part is a learned multichannel multigrid V-cycle.

He, Liu, Xu, "MgNO: Efficient Parameterization of Linear Operators via
Multigrid", ICLR 2024. A layer is

    u <- sigma(W_Mg u + W u + b),

``W_Mg`` one V-cycle of a linear multigrid method whose pieces are all
learned 3x3 (or 3, or 3x3x3) convolutions, ``W u + b`` a pointwise affine
map. On level ``l`` (finest first) the smoothing steps are

    u <- u + S_{l,i} * (f - A_l * u),

the residual ``f - A_l * u`` is restricted by a stride-2 convolution ``R_l``
and becomes the right-hand side of level ``l + 1``, whose first guess is zero;
on the way back up each level adds the prolongation ``P_l`` (a stride-2
transposed convolution) of the coarser level's ``u`` and may post-smooth.
The convolutions are zero padded, which is how a Dirichlet boundary ``u = 0``
enters every level; there is no lifting: the first V-cycle maps the input's
channels (as ``f``) to the layer's width (as ``u``).

Grids of any size are taken as they are (no padding to a multiple of
``2**levels`` and no crop): level ``l + 1`` has ``ceil(n / 2)`` points per
axis, the fine points ``0, 2, 4, ...``, and the transposed convolution is
told the fine size, so each coarse point lands back on its own fine point.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from torch import nn

from pdeforge._typing import Fields, InFields, OutFields
from pdeforge.models._layers import Pointwise, check_fields

__all__ = ["MgNO", "MgNOLayer", "MultigridLevel", "VCycle", "level_shapes"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def level_shapes(shape: Sequence[int], levels: int) -> list[tuple[int, ...]]:
    """The grid of every level of a V-cycle on ``shape``, finest first.

    A stride-2, kernel-3, zero-padding-1 convolution keeps the points
    ``0, 2, 4, ...`` of each axis, so a level has ``ceil(n / 2)`` points where
    the finer one has ``n``. On an odd axis (``n = 2 m + 1``, e.g. a grid of
    nodes ``j / (n - 1)``) both end points are kept.

    Parameters
    ----------
    shape
        Spatial shape of the finest grid.
    levels
        Number of levels.

    Returns
    -------
    list of tuple of int
        ``levels`` shapes.

    Examples
    --------
    >>> level_shapes((85, 33), 6)
    [(85, 33), (43, 17), (22, 9), (11, 5), (6, 3), (3, 2)]
    """
    shapes = [tuple(int(n) for n in shape)]
    for _ in range(levels - 1):
        shapes.append(tuple((n + 1) // 2 for n in shapes[-1]))
    return shapes


class MultigridLevel(nn.Module):
    """One grid of a learned V-cycle: its operator ``A`` and its smoothers ``S_i``.

    Each smoothing step is ``u <- u + S_i * (f - A * u)`` with multichannel 3x3
    convolutions (zero padded, no bias: the step is linear in ``(f, u)``).
    A step from the zero guess is ``u = S_i * f``; ``A`` exists only where it is
    used (a residual to restrict, or a step from a non-zero ``u``).

    Parameters
    ----------
    f_channels, u_channels
        Channels of the right-hand side ``f`` and of the iterate ``u``.
    pre, post
        Numbers of smoothing steps before restriction and after the coarse correction.
    spatial_dims
        1, 2 or 3.
    operator
        Whether the level has an operator ``A``.
    """

    def __init__(self, f_channels: int, u_channels: int, pre: int, post: int, spatial_dims: int,
                 operator: bool) -> None:
        super().__init__()
        conv = _CONV[spatial_dims]

        def stencil(cin: int, cout: int) -> nn.Module:
            return conv(cin, cout, 3, padding=1, bias=False)

        self.operator = stencil(u_channels, f_channels) if operator else None
        self.pre = nn.ModuleList(stencil(f_channels, u_channels) for _ in range(pre))
        self.post = nn.ModuleList(stencil(f_channels, u_channels) for _ in range(post))

    def residual(self, f: Fields, u: Fields) -> Fields:
        """``f - A * u``.

        Parameters
        ----------
        f, u
            Right-hand side ``[batch, f_channels, *space]`` and iterate ``[batch, u_channels, *space]``.

        Returns
        -------
        Tensor
            ``[batch, f_channels, *space]``.
        """
        if self.operator is None:
            raise RuntimeError("this level has no operator A: its only step starts from the zero guess")
        return f - self.operator(u)

    def smooth(self, f: Fields, u: Fields | None, smoothers: Iterable[nn.Module]) -> Fields | None:
        """Apply ``u <- u + S * (f - A * u)`` for each ``S`` of ``smoothers`` in turn.

        Parameters
        ----------
        f
            Right-hand side ``[batch, f_channels, *space]``.
        u
            Iterate ``[batch, u_channels, *space]``; ``None`` is the zero guess.
        smoothers
            The steps' ``S`` (``self.pre`` or ``self.post``).

        Returns
        -------
        Tensor or None
            The smoothed iterate (``None`` only if ``u`` is and there are no steps).
        """
        for s in smoothers:
            u = s(f) if u is None else u + s(self.residual(f, u))
        return u


class VCycle(nn.Module):
    """One V-cycle of a learned linear multigrid method, ``(f, u_0) -> u``: MgNO's ``W_Mg``.

    Down (level ``l = 1 .. J``): ``pre[l]`` smoothing steps from the guess
    (``u_0`` on the finest level, zero below), then ``f_{l+1} = R_l * (f_l - A_l * u_l)``.
    Up (``l = J - 1 .. 1``): ``u_l <- u_l + P_l * u_{l+1}``, then ``post`` smoothing
    steps. ``R_l`` is a stride-2 3x3 convolution, ``P_l`` a stride-2 3x3
    transposed one; all are learned, zero padded and without bias, so the cycle
    is a linear map of ``(f, u_0)``.

    Parameters
    ----------
    f_channels, u_channels
        Channels of the right-hand side (the cycle's input) and of ``u`` (its output).
    smoothing
        Pre-smoothing steps per level, finest first (its length is the number of levels, at least 2).
    post_smoothing
        Post-smoothing steps on every level but the coarsest.
    spatial_dims
        1, 2 or 3.

    References
    ----------
    He, Liu, Xu, "MgNO: Efficient Parameterization of Linear Operators via
    Multigrid", ICLR 2024, sec. 3 (the multichannel V-cycle ``W_Mg``); the
    multigrid-as-convolutions view is He, Xu, "MgNet: A unified framework of
    multigrid and convolutional neural network", Sci. China Math. 62, 2019.

    Examples
    --------
    >>> import torch
    >>> cycle = VCycle(1, 4, smoothing=(1, 1, 2), spatial_dims=2)
    >>> cycle(torch.randn(2, 1, 33, 17)).shape
    torch.Size([2, 4, 33, 17])
    """

    def __init__(self, f_channels: int, u_channels: int, smoothing: Sequence[int], post_smoothing: int = 0,
                 spatial_dims: int = 2) -> None:
        super().__init__()
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in smoothing):
            raise ValueError(f"smoothing must be whole numbers of steps per level, got {list(smoothing)}")
        smoothing = tuple(smoothing)
        if spatial_dims not in _CONV:
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        if len(smoothing) < 2:
            raise ValueError(f"a V-cycle needs at least 2 levels, got {len(smoothing)}")
        if min(smoothing) < 1 or post_smoothing < 0:
            raise ValueError(f"every level needs at least one pre-smoothing step and post_smoothing >= 0, "
                             f"got {list(smoothing)} and {post_smoothing}")
        self.spatial_dims = spatial_dims
        self.levels = len(smoothing)
        coarsest = self.levels - 1
        self.grids = nn.ModuleList(
            # the coarsest level has no residual to restrict: A there only if a second step needs it
            MultigridLevel(f_channels, u_channels, pre, post_smoothing if index < coarsest else 0, spatial_dims,
                           operator=index < coarsest or pre > 1)
            for index, pre in enumerate(smoothing))
        conv, conv_t = _CONV[spatial_dims], _CONV_T[spatial_dims]
        self.restrict = nn.ModuleList(conv(f_channels, f_channels, 3, stride=2, padding=1, bias=False)
                                      for _ in range(coarsest))
        self.prolong = nn.ModuleList(conv_t(u_channels, u_channels, 3, stride=2, padding=1, bias=False)
                                     for _ in range(coarsest))

    def forward(self, f: Fields, u: Fields | None = None) -> Fields:
        """Run the cycle on right-hand side ``f`` from the guess ``u`` (zero if ``None``).

        Parameters
        ----------
        f
            ``[batch, f_channels, *space]``, any grid size.
        u
            Optional first guess ``[batch, u_channels, *space]``.

        Returns
        -------
        Tensor
            ``[batch, u_channels, *space]`` on the grid of ``f``.
        """
        d = self.spatial_dims
        check_fields(f, d)
        grids = cast("list[MultigridLevel]", list(self.grids))
        rhs, iterates = [f], []
        for index, grid in enumerate(grids):
            # pre-smoothing from the guess: the given u on the finest level, zero on the coarser ones
            iterates.append(grid.smooth(rhs[index], u if index == 0 else None, grid.pre))
            if index < self.levels - 1:
                rhs.append(self.restrict[index](grid.residual(rhs[index], iterates[index])))
        for index in reversed(range(self.levels - 1)):
            # coarse-grid correction, prolongated onto exactly this level's grid, then post-smoothing
            fine = list(rhs[index].shape[2:])
            corrected = iterates[index] + self.prolong[index](iterates[index + 1], output_size=fine)
            iterates[index] = grids[index].smooth(rhs[index], corrected, grids[index].post)
        return iterates[0]


class MgNOLayer(nn.Module):
    """``u <- sigma(W_Mg u + W u + b)``: a V-cycle plus a pointwise affine map, then the activation.

    Parameters
    ----------
    cycle
        The V-cycle ``W_Mg`` (its ``f`` channels are this layer's input channels).
    in_channels, out_channels
        Channels in and out (``out_channels`` is the cycle's ``u`` channels).
    activation
        ``sigma``.
    """

    def __init__(self, cycle: VCycle, in_channels: int, out_channels: int, activation: nn.Module) -> None:
        super().__init__()
        self.cycle = cycle
        self.skip = Pointwise(in_channels, out_channels)
        self.act = activation

    def forward(self, x: InFields) -> OutFields:
        """``sigma(W_Mg x + W x + b)``.

        Parameters
        ----------
        x
            ``[batch, in_channels, *space]``.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *space]``.
        """
        return self.act(self.skip(x, add=self.cycle(x)))


class MgNO(nn.Module):
    """Multigrid neural operator on ``[batch, in_channels, *space]``, 1-D to 3-D.

    ``layers`` MgNO layers ``u <- GELU(W_Mg u + W u + b)`` (the first takes the
    input fields themselves, no lifting) and a pointwise linear read-out to
    ``out_channels``. Tied to the grid spacing it was trained on: its
    stencils see grid cells.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    width
        Channels of ``u`` inside the layers.
    layers
        Number of MgNO layers.
    smoothing
        Pre-smoothing steps per level of every V-cycle, finest first; its
        length is the number of levels (at least 2).
    post_smoothing
        Post-smoothing steps per level but the coarsest.
    spatial_dims
        1, 2 or 3.

    Notes
    -----
    Why no padding to a multiple of ``2**levels``: on a grid of nodes
    ``j / (n - 1)`` with odd ``n`` (33, 85, ...) the stride-2 restriction keeps
    both end points, so every level spans the true domain and the convolutions'
    zero padding is the Dirichlet condition just outside it on every level.
    Padding 85 to 96 (for 6 levels) would move that boundary into the padded
    zeros, add 28 % more points in 2-D and need a crop; halving with ``ceil``
    costs nothing. In the first layer ``f`` is the input itself, so its
    restricted residuals have ``in_channels`` channels (as in the authors'
    code, whose first layer's ``f`` is the one-channel coefficient field).

    The default (width 52, 5 layers, 6 levels) has 2,377,901 parameters on
    2-D Darcy with one input and one output channel, within 0.5 % of the
    default FNO's 2,368,001, for comparisons at equal size; the authors' Darcy
    run uses width 24 (508,173 parameters in this implementation).

    References
    ----------
    He, Liu, Xu, "MgNO: Efficient Parameterization of Linear Operators via
    Multigrid", ICLR 2024, sec. 3 (the layer ``sigma(W u + B)`` with
    ``W = W_Mg``, the V-cycle) and sec. 4 (experiments); default levels and
    smoothing steps from the authors' code (github.com/xlliu2017/MgNO, Darcy
    run: 6 levels, one step per level and two on the coarsest, none after).

    Examples
    --------
    >>> import torch
    >>> net = MgNO(1, 1, width=8, layers=2, smoothing=(1, 1, 2))
    >>> net(torch.randn(3, 1, 33, 33)).shape
    torch.Size([3, 1, 33, 33])
    >>> net(torch.randn(3, 1, 85, 40)).shape
    torch.Size([3, 1, 85, 40])
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 52, layers: int = 5,
                 smoothing: Sequence[int] = (1, 1, 1, 1, 1, 2), post_smoothing: int = 0,
                 spatial_dims: int = 2) -> None:
        super().__init__()
        if layers < 1 or width < 1:
            raise ValueError(f"an MgNO needs layers >= 1 and width >= 1, got {layers} and {width}")
        self.spatial_dims = spatial_dims
        self.layers = nn.ModuleList()
        for index in range(layers):
            cin = in_channels if index == 0 else width
            cycle = VCycle(cin, width, smoothing, post_smoothing, spatial_dims)
            self.layers.append(MgNOLayer(cycle, cin, width, nn.GELU()))
        self.readout = Pointwise(width, out_channels, bias=False)

    def forward(self, x: InFields) -> OutFields:
        """Map input fields to output fields on the same grid.

        Parameters
        ----------
        x
            ``[batch, in_channels, *space]``, ``spatial_dims`` spatial axes, any size.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *space]``.
        """
        d = self.spatial_dims
        check_fields(x, d)
        for layer in self.layers:
            x = layer(x)
        return self.readout(x)
