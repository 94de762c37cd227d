"""Small building blocks shared by the operator models.

Pointwise (1x1) channel maps, a channel MLP, domain padding for
non-periodic problems and grid-coordinate input channels. Each is a component
injected into a model, never a flag on it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pdeforge._typing import Fields, InFields, OutFields

__all__ = ["ChannelMLP", "DomainPadding", "GridCoordinates", "Pointwise"]


class Pointwise(nn.Module):
    """The same affine map ``W u(x) + b`` of the channels at every point, any number of spatial axes.

    One batched GEMM ``W @ u`` over the flattened space, the bias added in
    place: on CPU about 1.5x faster, forward plus backward, than a kernel-1
    ``conv1d``/``conv2d``, ``einsum`` or ``baddbmm`` with a broadcast bias.
    ``forward(x, add=y)`` returns ``y + W x (+ b)`` with ``y`` as the GEMM's
    accumulator, saving a full pass over memory (the Fourier layer's sum).
    Initialised like :class:`torch.nn.Linear`.

    Parameters
    ----------
    in_channels, out_channels
        Channel counts.
    bias
        Whether to add ``b``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(in_channels)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: InFields, add: OutFields | None = None) -> OutFields:
        """``W x + b`` at every point (plus ``add``).

        Parameters
        ----------
        x
            ``[batch, in_channels, *space]``.
        add
            Optional ``[batch, out_channels, *space]`` accumulated into the result.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *space]``.
        """
        batch, cin = x.shape[:2]
        flat = x.reshape(batch, cin, -1)
        weight = self.weight.expand(batch, *self.weight.shape)
        if add is None:
            y = torch.bmm(weight, flat)
        else:
            y = torch.baddbmm(add.reshape(batch, add.shape[1], -1), weight, flat)
        if self.bias is not None:
            y = y.add_(self.bias[:, None])
        return y.reshape(batch, -1, *x.shape[2:])

    def extra_repr(self) -> str:
        """Channel counts and whether there is a bias, shown in the module's ``repr``."""
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, bias={self.bias is not None}"


class ChannelMLP(nn.Module):
    """Two pointwise maps with an activation between: ``in -> hidden -> out``.

    Parameters
    ----------
    in_channels, hidden_channels, out_channels
        Channel counts.
    activation
        The activation's class (default GELU).
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 activation: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = Pointwise(in_channels, hidden_channels)
        self.act = activation()
        self.fc2 = Pointwise(hidden_channels, out_channels)

    def forward(self, x: InFields) -> OutFields:
        """``fc2(act(fc1(x)))`` at every point.

        Parameters
        ----------
        x
            ``[batch, in_channels, *space]``.

        Returns
        -------
        Tensor
            ``[batch, out_channels, *space]``.
        """
        return self.fc2(self.act(self.fc1(x)))


def check_fields(x: Fields, spatial_dims: int) -> None:
    """Refuse ``x`` unless it is ``[batch, channel, *space]`` with ``spatial_dims`` spatial axes.

    Parameters
    ----------
    x
        The fields a model was given.
    spatial_dims
        The spatial axes the model was built for.

    Raises
    ------
    ValueError
        With the expected layout and the shape that came.
    """
    if x.ndim != spatial_dims + 2:
        raise ValueError(f"expected [batch, channel, *space] with {spatial_dims} spatial axes, "
                         f"got shape {tuple(x.shape)}")


class DomainPadding(nn.Module):
    """Zero-pad the spatial axes before the Fourier layers and crop after them.

    A Fourier layer assumes periodicity; padding a non-periodic field gives
    the layers room to represent a non-periodic function on the original box
    (Li et al. 2021, appendix; their Darcy code pads 9 cells at s = 85).

    Parameters
    ----------
    cells
        Cells added per axis (an int for every axis, or one per axis) ...
    fraction
        ... or a fraction of each axis length (``round(fraction * n)``; one
        float for every axis, or one per axis), so the padding scales with
        the resolution and a model's Fourier modes keep their meaning on
        finer grids. Model configurations reach only this form.
    symmetric
        Add that many cells at *both* ends of each axis (neuraloperator's
        choice) instead of at the far end only (the FNO paper's code).
    """

    def __init__(self, cells: int | tuple[int, ...] | None = None, *,
                 fraction: float | tuple[float, ...] | None = None, symmetric: bool = False) -> None:
        super().__init__()
        if (cells is None) == (fraction is None):
            raise ValueError("give exactly one of `cells` or `fraction`")
        self.cells = cells
        self.fraction = fraction
        self.symmetric = symmetric

    def _amounts(self, shape: tuple[int, ...]) -> list[tuple[int, int]]:
        if self.fraction is not None:
            share = self.fraction if isinstance(self.fraction, tuple) else (self.fraction,) * len(shape)
            total = [round(f * n) for f, n in zip(share, shape, strict=True)]
        elif isinstance(self.cells, int):
            total = [self.cells] * len(shape)
        else:
            assert self.cells is not None  # __init__ requires exactly one of cells and fraction
            total = list(self.cells)
        if self.symmetric:
            return [(p, p) for p in total]
        return [(0, p) for p in total]

    def pad(self, x: Fields, spatial_dims: int) -> Fields:
        """Zero-pad the last ``spatial_dims`` axes of ``x``.

        Parameters
        ----------
        x
            ``[batch, channels, *space]``.
        spatial_dims
            Number of spatial axes.

        Returns
        -------
        Tensor
            The padded fields.
        """
        amounts = self._amounts(tuple(x.shape[-spatial_dims:]))
        flat = [v for lo_hi in reversed(amounts) for v in lo_hi]  # F.pad lists the last axis first
        return F.pad(x, flat)

    def unpad(self, x: Fields, shape: tuple[int, ...]) -> Fields:
        """Crop back to ``shape``, the spatial shape before :meth:`pad`.

        Parameters
        ----------
        x
            Padded fields.
        shape
            The spatial shape before padding.

        Returns
        -------
        Tensor
            ``[batch, channels, *shape]``.
        """
        index = [slice(lo, lo + n) for (lo, _), n in zip(self._amounts(shape), shape, strict=True)]
        return x[(..., *index)]

    def extra_repr(self) -> str:
        """The padding (cells or fraction) and whether it is symmetric, shown in the module's ``repr``."""
        size = f"fraction={self.fraction}" if self.fraction is not None else f"cells={self.cells}"
        return f"{size}, symmetric={self.symmetric}"


class GridCoordinates(nn.Module):
    """Append the point coordinates in ``[0, 1]`` as extra input channels.

    ``nodes`` puts ``n`` points at ``j / (n - 1)`` (both ends included: the
    Dirichlet/Neumann grids of pdeforge and the FNO paper); ``periodic`` at
    ``j / n`` (the right end is the left end; neuraloperator's embedding).

    Parameters
    ----------
    layout
        ``"nodes"`` or ``"periodic"``.
    """

    def __init__(self, layout: str = "nodes") -> None:
        super().__init__()
        if layout not in ("nodes", "periodic"):
            raise ValueError(f"unknown coordinate layout {layout!r} (use nodes or periodic)")
        self.layout = layout

    def forward(self, x: Fields, spatial_dims: int) -> Fields:
        """``x`` with ``spatial_dims`` coordinate channels appended.

        Parameters
        ----------
        x
            ``[batch, channels, *space]``.
        spatial_dims
            Number of spatial axes.

        Returns
        -------
        Tensor
            ``[batch, channels + spatial_dims, *space]``.
        """
        shape = x.shape[-spatial_dims:]
        axes = []
        for n in shape:
            step = 1.0 / max(n - 1, 1) if self.layout == "nodes" else 1.0 / n
            axes.append(torch.arange(n, dtype=x.dtype, device=x.device) * step)
        mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"))
        return torch.cat([x, mesh.expand(x.shape[0], *mesh.shape)], dim=1)

    def extra_repr(self) -> str:
        """The coordinate layout, shown in the module's ``repr``."""
        return f"layout={self.layout!r}"
