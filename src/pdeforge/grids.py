"""The one domain type: a tensor-product grid on a box.

A :class:`Grid` carries everything a discretisation needs to know about its
domain (shape, extent, boundary kind) and derives coordinates, spacings and
wavenumbers from it, so that no function downstream takes loose ``nx, L, dx``
arguments.

Point layouts
-------------
periodic
    ``N`` points ``x_j = j L / N``, ``j = 0..N-1``; the right end is the left end.
dirichlet, neumann
    ``N`` nodes ``x_j = j L / (N - 1)`` *including* both boundary nodes, the
    convention of the FNO Darcy data (421 nodes on [0, 1]), so that a field
    at ``N`` nodes subsamples to ``(N - 1) / r + 1`` nodes by taking every
    ``r``-th value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import torch

__all__ = ["Boundary", "Grid"]


class Boundary(str, Enum):
    """Boundary kind shared by every axis of a :class:`Grid`."""

    PERIODIC = "periodic"
    DIRICHLET = "dirichlet"
    NEUMANN = "neumann"


@dataclass(frozen=True, init=False)
class Grid:
    """A tensor-product grid.

    Parameters
    ----------
    shape
        Number of points along each axis.
    extent
        Length of the domain along each axis (default: the unit box).
    boundary
        Boundary kind of every axis, a :class:`Boundary` or its value.

    Raises
    ------
    ValueError
        If the grid has no axis, too few points for its boundary kind, or an
        extent that does not match the shape or is not positive.

    Examples
    --------
    >>> g = Grid((4,))
    >>> g.coordinates()[0].tolist()
    [0.0, 0.25, 0.5, 0.75]
    >>> Grid((5, 5), boundary="dirichlet").spacing
    (0.25, 0.25)
    """

    shape: tuple[int, ...]
    extent: tuple[float, ...]
    boundary: Boundary

    # An explicit __init__ (not the dataclass one) so that the attributes are
    # typed as they are after normalisation: ``extent`` is never None and
    # ``boundary`` is always a Boundary, whatever the caller passed.
    def __init__(
        self,
        shape: Sequence[int],
        extent: Sequence[float] | None = None,
        boundary: Boundary | str = Boundary.PERIODIC,
    ) -> None:
        shape = tuple(int(n) for n in shape)
        extent = tuple(float(e) for e in (extent or (1.0,) * len(shape)))
        boundary = Boundary(boundary)
        if not shape:
            raise ValueError("a grid needs at least one axis")
        if len(extent) != len(shape):
            raise ValueError(f"extent {extent} does not match shape {shape}")
        smallest = 1 if boundary is Boundary.PERIODIC else 2
        if min(shape) < smallest:
            raise ValueError(f"grid shape {shape} is too small for {boundary.value} boundaries")
        if min(extent) <= 0:
            raise ValueError(f"grid extent {extent} must be positive")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "extent", extent)
        object.__setattr__(self, "boundary", boundary)

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of points in the grid."""
        return math.prod(self.shape)

    @property
    def volume(self) -> float:
        """Measure of the box, the product of the extents."""
        return math.prod(self.extent)

    @property
    def periodic(self) -> bool:
        """Whether the axes are periodic."""
        return self.boundary is Boundary.PERIODIC

    @property
    def spacing(self) -> tuple[float, ...]:
        """Distance between neighbouring points along each axis (see the point layouts above)."""
        if self.periodic:
            return tuple(e / n for e, n in zip(self.extent, self.shape, strict=True))
        return tuple(e / (n - 1) for e, n in zip(self.extent, self.shape, strict=True))

    def coordinates(
        self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, ...]:
        """One 1-D tensor of point positions per axis.

        Parameters
        ----------
        dtype, device
            Of the returned tensors.

        Returns
        -------
        tuple of torch.Tensor
            ``[shape[i]]`` positions along axis ``i`` (see the point layouts above).
        """
        return tuple(
            torch.arange(n, dtype=dtype, device=device) * h for n, h in zip(self.shape, self.spacing, strict=True)
        )

    def mesh(
        self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Coordinates broadcast to the full grid (``indexing='ij'``).

        Parameters
        ----------
        dtype, device
            Of the returned tensors.

        Returns
        -------
        tuple of torch.Tensor
            ``ndim`` tensors of shape ``shape``; the ``i``-th holds the ``i``-th coordinate.
        """
        return torch.meshgrid(*self.coordinates(dtype=dtype, device=device), indexing="ij")

    def wavenumbers(
        self, *, rfft: bool = True, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Angular wavenumbers of the grid's spectral basis, one tensor per axis.

        Each tensor is shaped to broadcast against the spectrum of a field on
        this grid (``[n0, 1, ...]``, ``[1, n1, ...]``, ...).

        periodic
            ``2 pi k / L`` in :func:`torch.fft.fftfreq` order; with ``rfft=True``
            the last axis holds only ``k >= 0`` (the layout of ``rfftn``).
        neumann
            ``pi k / L`` for ``k = 0..N-1``, the cosine modes of DCT-I.
        dirichlet
            ``pi k / L`` for ``k = 1..N-2``, the sine modes vanishing at both ends.

        Parameters
        ----------
        rfft
            For periodic grids, whether the last axis has the ``rfftn`` layout.
        dtype, device
            Of the returned tensors.

        Returns
        -------
        tuple of torch.Tensor
            One tensor per axis, shaped as described above.

        Examples
        --------
        >>> [k.flatten().tolist() for k in Grid((4, 4), extent=(1.0, 2 * math.pi)).wavenumbers()][1]
        [0.0, 1.0, 2.0]
        """
        out = []
        for axis, (n, length) in enumerate(zip(self.shape, self.extent, strict=True)):
            if self.periodic:
                last = rfft and axis == self.ndim - 1
                k = torch.fft.rfftfreq(n, d=1.0 / n) if last else torch.fft.fftfreq(n, d=1.0 / n)
                k = k.to(dtype=dtype, device=device) * (2 * math.pi / length)
            elif self.boundary is Boundary.NEUMANN:
                k = torch.arange(n, dtype=dtype, device=device) * (math.pi / length)
            else:
                k = torch.arange(1, n - 1, dtype=dtype, device=device) * (math.pi / length)
            view = [1] * self.ndim
            view[axis] = -1
            out.append(k.reshape(view))
        return tuple(out)

    def wavenumber_squared(
        self, *, rfft: bool = True, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``|k|^2`` on the spectral layout of :meth:`wavenumbers`: the symbol of ``-Lap``.

        Parameters
        ----------
        rfft, dtype, device
            As for :meth:`wavenumbers`.

        Returns
        -------
        torch.Tensor
            The sum of the squared wavenumbers, broadcast to the spectrum's shape.
        """
        first, *rest = self.wavenumbers(rfft=rfft, dtype=dtype, device=device)
        total = first * first
        for k in rest:
            total = total + k * k
        return total

    def refine(self, factor: int) -> Grid:
        """The grid with ``factor`` times as many intervals along every axis.

        Parameters
        ----------
        factor
            Positive integer refinement factor.

        Returns
        -------
        Grid
            Same extent and boundary; its points include this grid's points.

        Examples
        --------
        >>> Grid((5,), boundary="dirichlet").refine(2).shape
        (9,)
        """
        if self.periodic:
            shape = tuple(n * factor for n in self.shape)
        else:
            shape = tuple((n - 1) * factor + 1 for n in self.shape)
        return Grid(shape, self.extent, self.boundary)

    def to_json(self) -> dict:
        """The grid as JSON-ready data; ``Grid(**grid.to_json())`` rebuilds it."""
        return {"shape": list(self.shape), "extent": list(self.extent), "boundary": self.boundary.value}
