"""Multi-grid patching: run any operator on padded patches that also see coarse views of their surroundings.

MG-TFNO's multi-grid domain decomposition (Kossaifi, Kovachki,
Azizzadenesheli, Anandkumar, "Multi-Grid Tensorized Fourier Neural Operator
for High-Resolution PDEs", TMLR 2024, the section on multi-grid domain
decomposition) trains a neural operator on small patches of a
high-resolution field instead of the whole field. A patch alone lacks the
context that a global operator needs, so each patch is given, as extra
channels, coarse views of regions around it: level ``l`` covers ``2^l``
times the patch's extent and is subsampled by ``2^l`` to the patch's size.
The inner model then maps ``in_channels * (levels + 1)`` channels on a patch
to the output on that patch, all patches of a sample as one batch.

Memory: the forward pass holds every patch of the batch at once, about
``(1 + 2 padding_fraction)^d`` times the points of the whole field, so a
training step does not need less memory than the unpatched model. What
shrinks is the domain one call of the inner model sees (the paper's "domain
size" reduction); memory per device falls only when each device (or step)
is given a subset of the patches. :meth:`MultigridPatching.split` and
:meth:`MultigridPatching.stitch` are public so that a caller can do that.

:class:`MultigridPatching` is a wrapper, composed around any model with
``forward(x) -> y`` on ``[batch, channel, *space]`` that keeps the spatial
shape. Every view is one gather with an index map per axis, so any extent
(a coarse window wider than the whole field, a grid the patches do not
divide) is read through the boundary rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from pdeforge._typing import InFields, OutFields
from pdeforge.errors import PdeforgeError

__all__ = ["BOUNDARY_RULES", "MultigridPatching", "window_indices"]


def _wrap(position: torch.Tensor, n: int) -> torch.Tensor:
    """Periodic data: position ``k`` is point ``k mod n``."""
    return torch.remainder(position, n)


def _reflect(position: torch.Tensor, n: int) -> torch.Tensor:
    """Bounded data: mirror about the end points, not repeating them (numpy's ``"reflect"``), period ``2 (n - 1)``."""
    if n == 1:
        return torch.zeros_like(position)
    r = torch.remainder(position, 2 * (n - 1))
    return torch.where(r >= n, 2 * (n - 1) - r, r)


BOUNDARY_RULES: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {"periodic": _wrap, "reflect": _reflect}
"""How a position outside ``[0, n)`` reads the field: ``"periodic"`` wraps, ``"reflect"`` mirrors (no edge repeat).

Zero padding is not offered: a coarse view wider than the field would then be
mostly zeros, and for bounded data the mirror image is the smoother
continuation."""


def window_indices(n: int, patches: int, levels: int, padding: int, boundary: str, *,
                   device: torch.device | None = None) -> torch.Tensor:
    """The grid points every patch's views read along one axis of ``n`` points.

    The axis is cut into ``patches`` patches of ``p = ceil(n / patches)``
    points (patch ``i`` starts at ``s_i = i p``; when ``patches`` does not
    divide ``n`` the last patch runs past the end and reads through the
    boundary rule). With ``q = padding`` points of padding on each side, the
    view of level ``l`` samples ``m = p + 2 q`` points at the positions

        s_i - (2^l - 1) floor(p / 2) + 2^l j,    j = -q, ..., p + q - 1,

    that is, every ``2^l``-th point of a window ``2^l`` times the padded
    patch's extent, centred on the patch to within one fine cell. Level 0 is
    the padded patch itself.

    Parameters
    ----------
    n
        Points along the axis.
    patches
        Patches along the axis, at most ``n``.
    levels
        Coarse levels beyond the patch itself.
    padding
        Points of padding ``q`` on each side of a patch.
    boundary
        A key of :data:`BOUNDARY_RULES`.
    device
        Where to create the indices.

    Returns
    -------
    Tensor
        Integer indices into ``[0, n)``, ``[levels + 1, patches, p + 2 q]``.

    Examples
    --------
    >>> window_indices(8, 2, 1, 1, "periodic").tolist()
    [[[7, 0, 1, 2, 3, 4], [3, 4, 5, 6, 7, 0]], [[4, 6, 0, 2, 4, 6], [0, 2, 4, 6, 0, 2]]]
    """
    if boundary not in BOUNDARY_RULES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARY_RULES)}, got {boundary!r}")
    p = -(-n // patches)
    j = torch.arange(-padding, p + padding, device=device)
    start = p * torch.arange(patches, device=device)
    scale = 2 ** torch.arange(levels + 1, device=device)
    position = (start[None, :, None] - (scale[:, None, None] - 1) * (p // 2)
                + scale[:, None, None] * j[None, None, :])
    return BOUNDARY_RULES[boundary](position, n)


class MultigridPatching(nn.Module):
    """Apply ``inner`` patch by patch, each patch with coarse views of ``levels`` larger regions as extra channels.

    Forward pass on ``x: [batch, C, n_1, ..., n_d]`` with ``P`` patches per
    axis (MG-TFNO's multi-grid domain decomposition):

    1. cut every axis into ``P`` patches of ``p_a = ceil(n_a / P)`` points
       and pad each by ``q_a = ceil(padding_fraction * p_a)`` points per side,
       read through the boundary rule (periodic wrap, or mirror reflection
       for bounded data);
    2. for levels ``l = 1..L``, add the view of a region ``2^l`` times larger
       around the patch, subsampled by ``2^l`` to the same ``p_a + 2 q_a``
       points (see :func:`window_indices`), as ``C`` more channels
       (level-major: level 0's ``C`` channels first);
    3. run ``inner`` on all ``batch * P^d`` patches, in ``chunks`` groups;
    4. drop the padding and stitch the patches back into ``[batch, C_out, *space]``.

    A grid that ``P`` does not divide is handled by letting the last patch
    run past the end (reading through the boundary rule) and cropping the
    stitched output, so every grid with ``n_a >= P`` works.

    Parameters
    ----------
    inner
        The model applied to patches; built with ``in_channels * (levels + 1)``
        input channels, it must keep the spatial shape.
    levels
        Coarse levels ``L`` (0: plain patching).
    patches_per_axis
        Patches ``P`` along each spatial axis (``P^d`` patches in all).
    padding_fraction
        Padding on each side of a patch as a fraction of the patch's points.
    boundary
        ``"periodic"`` (wrap around) or ``"reflect"`` (mirror at the end points),
        see :data:`BOUNDARY_RULES`.
    chunks
        Groups the patches are run in. With ``chunks > 1`` and gradients on,
        each group's activations are recomputed in the backward pass
        (activation checkpointing), so training holds the activations of one
        group instead of all patches: this is where training on patches
        saves memory, at the cost of one more forward pass of ``inner`` per
        step. The result and its gradients are those of ``chunks = 1`` (to
        rounding) for models without batch statistics.

    Examples
    --------
    >>> from pdeforge.models import ChannelMLP
    >>> net = MultigridPatching(ChannelMLP(3, 4, 1), levels=2, patches_per_axis=4, padding_fraction=0.25)
    >>> net(torch.randn(2, 1, 32, 30)).shape
    torch.Size([2, 1, 32, 30])
    """

    def __init__(self, inner: nn.Module, levels: int, patches_per_axis: int, padding_fraction: float, *,
                 boundary: str = "periodic", chunks: int = 1) -> None:
        super().__init__()
        if isinstance(chunks, bool) or not isinstance(chunks, int) or chunks < 1:
            raise ValueError(f"chunks must be a whole number >= 1, got {chunks!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
            raise ValueError(f"levels must be a whole number >= 0, got {levels!r}")
        if isinstance(patches_per_axis, bool) or not isinstance(patches_per_axis, int) or patches_per_axis < 1:
            raise ValueError(f"patches_per_axis must be a whole number >= 1, got {patches_per_axis!r}")
        if not (math.isfinite(padding_fraction) and padding_fraction >= 0):
            raise ValueError(f"padding_fraction must be >= 0, got {padding_fraction!r}")
        if boundary not in BOUNDARY_RULES:
            raise ValueError(f"boundary must be one of {', '.join(BOUNDARY_RULES)}, got {boundary!r}")
        self.inner = inner
        self.levels, self.patches, self.padding_fraction, self.boundary = (
            levels, patches_per_axis, float(padding_fraction), boundary)
        self.chunks = chunks

    def extra_repr(self) -> str:
        """The settings, shown in the module's ``repr``."""
        return (f"levels={self.levels}, patches_per_axis={self.patches}, "
                f"padding_fraction={self.padding_fraction}, boundary={self.boundary!r}, chunks={self.chunks}")

    def patch_size(self, n: int) -> tuple[int, int]:
        """Points ``p`` of a patch and ``q`` of its padding per side along an axis of ``n`` points."""
        if n < self.patches:
            raise PdeforgeError(f"multigrid patching: an axis of {n} points cannot hold "
                                f"{self.patches} patches (patching.patches must be at most {n})")
        p = -(-n // self.patches)
        return p, math.ceil(self.padding_fraction * p - 1e-9)

    def split(self, x: InFields) -> torch.Tensor:
        """The inner model's inputs: every padded patch with its coarse views, ``[batch * P^d, C (L + 1), *m]``.

        Patches are ordered batch-major, then by patch index along axis 1, 2, ...
        (row-major); ``m_a = p_a + 2 q_a``.
        """
        b, c, *space = x.shape
        d, big = len(space), self.patches
        index = [window_indices(n, big, self.levels, self.patch_size(n)[1], self.boundary, device=x.device)
                 for n in space]
        m = [i.shape[-1] for i in index]
        views = []
        for level in range(self.levels + 1):
            view = x
            for axis, i in enumerate(index):
                view = view.index_select(2 + axis, i[level].reshape(-1))
            # [b, c, P, m_1, ..., P, m_d] -> [b, P, ..., P, c, m_1, ..., m_d]
            view = view.reshape(b, c, *[s for mi in m for s in (big, mi)])
            view = view.permute(0, *[2 + 2 * a for a in range(d)], 1, *[3 + 2 * a for a in range(d)])
            views.append(view.reshape(b * big ** d, c, *m))
        return torch.cat(views, dim=1)

    def stitch(self, y: torch.Tensor, space: tuple[int, ...]) -> torch.Tensor:
        """Undo :meth:`split` on the inner model's outputs: crop the padding, join the patches, cut to ``space``."""
        d, big = len(space), self.patches
        sizes = [self.patch_size(n) for n in space]
        core = y[(..., *[slice(q, q + p) for p, q in sizes])]
        b = core.shape[0] // big ** d
        c = core.shape[1]
        core = core.reshape(b, *[big] * d, c, *[p for p, _ in sizes])
        # [b, P, ..., P, c, p_1, ..., p_d] -> [b, c, P, p_1, ..., P, p_d]
        core = core.permute(0, 1 + d, *[s for a in range(d) for s in (1 + a, 2 + d + a)])
        full = core.reshape(b, c, *[big * p for p, _ in sizes])
        return full[(..., *[slice(0, n) for n in space])]

    def forward(self, x: InFields) -> OutFields:
        """The inner model applied on multi-grid patches of ``x``, stitched to the whole grid.

        Parameters
        ----------
        x
            Input fields ``[batch, in_channels, *space]``.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *space]``.
        """
        space = tuple(x.shape[2:])
        patches = self.split(x)
        if self.chunks == 1 or not torch.is_grad_enabled():
            return self.stitch(self.inner(patches), space)
        parts = [checkpoint(self.inner, part, use_reentrant=False) for part in patches.chunk(self.chunks)]
        return self.stitch(torch.cat(parts), space)
