"""Training losses and error metrics: relative Lp and Sobolev H^s errors.

Every error is computed per sample over all channels and grid points of
``[batch, channel, *space]`` tensors, then averaged over the batch by the
loss objects, as in the FNO paper's ``LpLoss`` (Li et al. 2021, sec. 5).

Sobolev errors use Parseval on the trigonometric interpolant
(:func:`pdeforge.spectral.sobolev_norm`): exact for periodic data and any
real ``s``, negative included (``H^{-1}`` weighs the error by
``(1 + |k|^2)^{-1}``). Non-periodic data on the nodes of a box (both ends
stored, the pdeforge/FNO Darcy layout) is first extended to a periodic field
of twice the length along every axis:

``even``
    mirror image ``u(-x) = u(x)`` (the cosine series): continuous for any
    data, so ``H^s`` is finite for ``s < 3/2``. The default.
``odd``
    ``u(-x) = -u(x)`` (the sine series): smooth when ``u`` vanishes on the
    boundary (Dirichlet data such as Darcy's solution).
``zero``
    zeros appended: smooth only for data that vanishes near the boundary.

Reflections double the squared norm per axis; it is divided out, so
absolute norms approximate those on the original box.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from pdeforge.errors import PdeforgeError
from pdeforge.grids import Grid
from pdeforge.spectral import sobolev_norm

__all__ = [
    "LOSS_GRAMMAR",
    "LossName",
    "RelativeLpLoss",
    "SobolevLoss",
    "loss_for",
    "parse_loss_name",
    "parseval_relative_l2",
    "per_sample_metrics",
    "periodic_extension",
    "relative_lp_error",
    "sobolev_error",
]

PADDINGS = ("even", "odd", "zero")


def _per_sample_norm(u: torch.Tensor, p: float) -> torch.Tensor:
    return torch.linalg.vector_norm(u.flatten(1), ord=p, dim=1)


def relative_lp_error(pred: torch.Tensor, target: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """``||pred - target||_p / ||target||_p`` per sample ``[batch]`` (uniform-grid quadrature cancels)."""
    _check(pred, target)
    tiny = torch.finfo(target.dtype).tiny
    return _per_sample_norm(pred - target, p) / _per_sample_norm(target, p).clamp_min(tiny)


def parseval_relative_l2(pred_block: torch.Tensor, target_block: torch.Tensor,
                         target_outside: torch.Tensor) -> torch.Tensor:
    """Per-sample relative L2 error ``[batch]`` from orthonormal coefficients (Parseval).

    For a prediction whose orthonormal coefficients are ``pred_block`` on a
    block and zero elsewhere, and a target with ``target_block`` on the block
    and energy ``target_outside`` off it::

        ||pred - target||^2 = ||pred_block - target_block||^2 + target_outside
        ||target||^2        = ||target_block||^2 + target_outside

    so this equals :func:`relative_lp_error` with ``p = 2`` without going back
    to the grid.

    Parameters
    ----------
    pred_block, target_block
        ``[batch, channels, *kept]`` coefficients.
    target_outside
        ``[batch, channels]`` sums of the target's squared coefficients off the block.

    Returns
    -------
    torch.Tensor
        ``[batch]`` relative errors.
    """
    _check(pred_block, target_block)
    outside = target_outside.flatten(1).sum(1)
    num = (pred_block - target_block).flatten(1).square().sum(1) + outside
    den = target_block.flatten(1).square().sum(1) + outside
    return (num / den.clamp_min(torch.finfo(den.dtype).tiny)).sqrt()


def periodic_extension(u: torch.Tensor, spatial_dims: int, mode: str = "even") -> tuple[torch.Tensor, float]:
    """Extend node data ``[..., n_1, .., n_d]`` to a periodic field ``[..., 2(n_1-1), ..]``.

    Returns the extension and the factor by which reflections multiplied
    the squared norm (``2^d`` for ``even``/``odd``, 1 for ``zero``).
    """
    if mode not in PADDINGS:
        raise PdeforgeError(f"unknown Sobolev padding '{mode}' (use {', '.join(PADDINGS)})")
    for axis in range(u.ndim - spatial_dims, u.ndim):
        n = u.shape[axis]
        if n < 3:
            raise PdeforgeError(f"periodic extension needs at least 3 nodes per axis, got {n}")
        inner = u.narrow(axis, 1, n - 2).flip(axis)
        if mode == "zero":
            inner = torch.zeros_like(inner)
        elif mode == "odd":
            inner = -inner
        u = torch.cat([u, inner], dim=axis)
    return u, (1.0 if mode == "zero" else 2.0**spatial_dims)


def sobolev_error(pred: torch.Tensor, target: torch.Tensor, s: float = 1.0, *, spatial_dims: int,
                  periodic: bool = True, relative: bool = True, padding: str = "even",
                  extent: tuple[float, ...] | None = None, seminorm: bool = False) -> torch.Tensor:
    r"""Per-sample ``H^s`` error ``[batch]``, relative to ``||target||_{H^s}`` unless ``relative=False``.

    Parameters
    ----------
    s
        Sobolev order, any real number (``s < 0`` for dual norms).
    periodic
        ``True``: the grid is periodic (``n`` points, right end excluded).
        ``False``: node data with both ends stored, extended by ``padding``.
    extent
        Box side lengths (default the unit box); they set the wavenumbers
        ``2 pi k / L``.
    seminorm
        Use ``|k|^{2s}`` and drop the mean (``s > 0`` only is meaningful).

    Examples
    --------
    >>> import math
    >>> x = torch.arange(64, dtype=torch.float64) / 64
    >>> u = torch.sin(2 * math.pi * 3 * x)[None, None]
    >>> err = sobolev_error(u, torch.zeros_like(u), s=1, spatial_dims=1, relative=False)
    >>> bool(torch.isclose(err, torch.tensor(math.sqrt((1 + (6 * math.pi) ** 2) / 2), dtype=torch.float64)))
    True
    """
    _check(pred, target)
    if pred.ndim != spatial_dims + 2:
        raise PdeforgeError(f"expected [batch, channel, *space] with {spatial_dims} spatial axes, "
                            f"got {tuple(pred.shape)}")
    shape = tuple(pred.shape[-spatial_dims:])
    extent = tuple(extent) if extent is not None else (1.0,) * spatial_dims
    diff, ref = pred - target, target
    factor = 1.0
    if not periodic:
        diff, factor = periodic_extension(diff, spatial_dims, padding)
        ref, _ = periodic_extension(ref, spatial_dims, padding)
        shape = tuple(diff.shape[-spatial_dims:])
        extent = tuple(2 * e for e in extent)
    grid = Grid(shape, extent)
    num = sobolev_norm(diff, grid, s, seminorm=seminorm).square().sum(1) / factor
    if not relative:
        return num.sqrt()
    den = sobolev_norm(ref, grid, s, seminorm=seminorm).square().sum(1) / factor
    return (num / den.clamp_min(torch.finfo(den.dtype).tiny)).sqrt()


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise PdeforgeError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")


class RelativeLpLoss:
    """Mean over the batch of the per-sample relative Lp error.

    Parameters
    ----------
    p
        The exponent, ``p >= 1`` (see :func:`relative_lp_error`).
    """

    def __init__(self, p: float = 2.0) -> None:
        self.p = p

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of a batch.

        Parameters
        ----------
        pred, target
            Predicted and true fields ``[batch, channel, *space]``.

        Returns
        -------
        Tensor
            The scalar mean of the per-sample relative errors.
        """
        return relative_lp_error(pred, target, self.p).mean()

    def __repr__(self) -> str:
        return f"RelativeLpLoss(p={self.p})"


class SobolevLoss:
    """Mean over the batch of the per-sample (relative) ``H^s`` error; see :func:`sobolev_error`.

    Parameters
    ----------
    s
        The Sobolev order (negative and fractional allowed).
    spatial_dims, periodic, relative, padding, extent
        As for :func:`sobolev_error`; they are kept in ``options``.
    """

    def __init__(self, s: float = 1.0, *, spatial_dims: int, periodic: bool = True, relative: bool = True,
                 padding: str = "even", extent: tuple[float, ...] | None = None) -> None:
        if padding not in PADDINGS:
            raise PdeforgeError(f"unknown Sobolev padding '{padding}' (use {', '.join(PADDINGS)})")
        self.options: dict[str, Any] = dict(s=s, spatial_dims=spatial_dims, periodic=periodic, relative=relative,
                            padding=padding, extent=extent)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of a batch.

        Parameters
        ----------
        pred, target
            Predicted and true fields ``[batch, channel, *space]``.

        Returns
        -------
        Tensor
            The scalar mean of the per-sample errors.
        """
        return sobolev_error(pred, target, **self.options).mean()

    def __repr__(self) -> str:
        return "SobolevLoss(" + ", ".join(f"{k}={v}" for k, v in self.options.items()) + ")"


LOSS_GRAMMAR = ("a loss name is l followed by a number p >= 1, the relative Lp error, such as l2 or l1; "
                "or h followed by a number s, negative or fractional allowed, the relative Sobolev error "
                "of order s, such as h1, h-1 or h0.5; letters may be upper or lower case")

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class LossName:
    """A parsed loss name.

    Attributes
    ----------
    name
        The canonical spelling: stripped and lower case (``"H1"`` is ``"h1"``).
    kind
        ``"l"`` (relative Lp error) or ``"h"`` (relative Sobolev ``H^s`` error).
    order
        ``p`` of an Lp loss (at least 1) or ``s`` of a Sobolev loss (any real).
    """

    name: str
    kind: str
    order: float


def parse_loss_name(name: str) -> LossName:
    """Read a loss name, the one parser of the grammar (:data:`LOSS_GRAMMAR`); case is ignored.

    Raises
    ------
    PdeforgeError
        A one-line message that states the grammar in words.

    Examples
    --------
    >>> parse_loss_name("H-1")
    LossName(name='h-1', kind='h', order=-1.0)
    """
    text = name.strip().lower() if isinstance(name, str) else ""
    kind, number = text[:1], text[1:]
    if kind not in ("l", "h") or _NUMBER.fullmatch(number) is None:
        raise PdeforgeError(f"unknown loss {name!r}: {LOSS_GRAMMAR}")
    order = float(number)
    if kind == "l" and order < 1:
        raise PdeforgeError(f"an Lp loss needs p >= 1, got {name!r}: {LOSS_GRAMMAR}")
    return LossName(text, kind, order)


def loss_for(name: str, *, spatial_dims: int,
             periodic: bool = True) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The relative loss called ``name``: ``l<p>`` (e.g. ``l2``, ``l1``) or ``h<s>`` (``h1``, ``h-1``, ``h0.5``).

    The name is read by :func:`parse_loss_name`, so case is ignored (``H1`` is ``h1``).

    >>> loss_for("h1", spatial_dims=2, periodic=False)
    SobolevLoss(s=1.0, spatial_dims=2, periodic=False, relative=True, padding=even, extent=None)
    """
    spec = parse_loss_name(name)
    if spec.kind == "l":
        return RelativeLpLoss(spec.order)
    return SobolevLoss(spec.order, spatial_dims=spatial_dims, periodic=periodic)


@torch.no_grad()
def per_sample_metrics(pred: torch.Tensor, target: torch.Tensor, *, spatial_dims: int,
                       periodic: bool = True) -> dict[str, torch.Tensor]:
    """Relative L2 and H1 errors per sample, ``{"rel_l2": [batch], "rel_h1": [batch]}``."""
    return {
        "rel_l2": relative_lp_error(pred, target, 2.0),
        "rel_h1": sobolev_error(pred, target, 1.0, spatial_dims=spatial_dims, periodic=periodic),
    }
