"""The table of models the training command can build, and the one builder it calls.

Each entry is a function ``(in_channels, out_channels, spatial_dims, **options)``
whose keyword-only parameters are the model's options, all plain values (as
they arrive from a YAML/JSON config); components such as the domain padding
are made from them here. A new model joins by adding a builder to ``MODELS``
and inherits the table-driven tests.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from torch import nn

from pdeforge.errors import PdeforgeError
from pdeforge.models._deeponet import DeepONet, PODDeepONet
from pdeforge.models._fno import FNO, TFNO
from pdeforge.models._layers import DomainPadding, GridCoordinates
from pdeforge.models._unet import UNet2d

__all__ = ["MODELS", "build_model"]

DEFAULT_MODES = {1: 16, 2: 12, 3: 8}
"""Kept modes per axis by dimension: the FNO paper's Burgers, Darcy/Navier-Stokes and 3-D choices."""


def _fourier_options(spatial_dims: int, modes, padding: int | Sequence[int], symmetric_padding: bool,
                     coordinates: str) -> dict:
    if coordinates not in ("nodes", "periodic", "none"):
        raise ValueError(f"coordinates must be nodes, periodic or none, got {coordinates!r}")
    pad = padding if isinstance(padding, int) else tuple(padding)
    return {
        "modes": DEFAULT_MODES[spatial_dims] if modes is None else modes,
        "spatial_dims": spatial_dims,
        "padding": DomainPadding(pad, symmetric=symmetric_padding) if pad else None,
        "coordinates": None if coordinates == "none" else GridCoordinates(coordinates),
    }


def _fno(in_channels: int, out_channels: int, spatial_dims: int, *, modes: int | Sequence[int] | None = None,
         width: int = 32, layers: int = 4, padding: int | Sequence[int] = 0, symmetric_padding: bool = False,
         coordinates: str = "nodes", projection_channels: int = 128, lifting_channels: int | None = None,
         mlp_expansion: float | None = None, backend: str = "auto") -> nn.Module:
    return FNO(in_channels, out_channels, width=width, layers=layers, projection_channels=projection_channels,
               lifting_channels=lifting_channels, mlp_expansion=mlp_expansion, backend=backend,
               **_fourier_options(spatial_dims, modes, padding, symmetric_padding, coordinates))


def _tfno(in_channels: int, out_channels: int, spatial_dims: int, *, modes: int | Sequence[int] | None = None,
          width: int = 32, layers: int = 4, rank: float = 0.5, contraction: str = "auto",
          padding: int | Sequence[int] = 0, symmetric_padding: bool = False, coordinates: str = "nodes",
          projection_channels: int = 128, lifting_channels: int | None = None, mlp_expansion: float | None = None,
          backend: str = "auto") -> nn.Module:
    return TFNO(in_channels, out_channels, width=width, layers=layers, rank=rank, contraction=contraction,
                projection_channels=projection_channels, lifting_channels=lifting_channels,
                mlp_expansion=mlp_expansion, backend=backend,
                **_fourier_options(spatial_dims, modes, padding, symmetric_padding, coordinates))


def _unet(in_channels: int, out_channels: int, spatial_dims: int, *, width: int = 32, depth: int = 3) -> nn.Module:
    if spatial_dims != 2:
        raise ValueError(f"the U-Net baseline is 2-D only, the data has {spatial_dims} spatial axes")
    return UNet2d(in_channels, out_channels, width=width, depth=depth)


def _deeponet(in_channels: int, out_channels: int, spatial_dims: int, *, sensors: int = 32, width: int = 128,
              depth: int = 3, basis: int = 64) -> nn.Module:
    return DeepONet(in_channels, out_channels, spatial_dims, sensors=sensors, width=width, depth=depth, basis=basis)


def _pod_deeponet(in_channels: int, out_channels: int, spatial_dims: int, *, modes: int = 32, sensors: int = 32,
                  width: int = 128, depth: int = 3) -> nn.Module:
    return PODDeepONet(in_channels, out_channels, spatial_dims, modes=modes, sensors=sensors, width=width, depth=depth)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "fno": _fno,
    "tfno": _tfno,
    "unet": _unet,
    "deeponet": _deeponet,
    "pod-deeponet": _pod_deeponet,
}


def model_options(name: str) -> dict[str, object]:
    """The options a model accepts, with their defaults."""
    params = inspect.signature(MODELS[name]).parameters.values()
    return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_model(name: str, in_channels: int, out_channels: int, spatial_dims: int, **options) -> nn.Module:
    """Build model ``name`` from plain options; mistakes end in a one-line :class:`PdeforgeError`.

    A ``pod-deeponet`` still needs ``model.fit_pod(training_outputs)`` before training.

    Examples
    --------
    >>> net = build_model("fno", 1, 1, 2, width=8, modes=4, layers=2)
    >>> type(net).__name__, net.modes
    ('FNO', (4, 4))
    """
    if name not in MODELS:
        raise PdeforgeError(f"unknown model '{name}' (known: {', '.join(MODELS)})")
    if spatial_dims not in (1, 2, 3):
        raise PdeforgeError(f"models take 1 to 3 spatial axes, the data has {spatial_dims}")
    known = model_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise PdeforgeError(f"model '{name}' has no option '{unknown[0]}' (options: {', '.join(known)})")
    try:
        return MODELS[name](in_channels, out_channels, spatial_dims, **options)
    except (TypeError, ValueError) as exc:
        raise PdeforgeError(f"model '{name}': {str(exc).splitlines()[0]}") from None
