"""The table of models: the one place a model is named.

Each entry of :data:`MODELS` is a :class:`ModelSpec`: the builder
``(in_channels, out_channels, spatial_dims, **options)`` whose keyword-only
parameters are the model's options, all plain values (as they arrive from a
YAML/JSON config), a one-line summary, the paper, and what the table-driven
tests need to know (the spatial dimensions it takes, the grids across which
it is resolution-invariant, whether it needs a fit step on the training
outputs, and the options of a tiny instance). Everything that lists or
checks model names (:func:`build_model`, the training configuration, the
command line) reads this table; a new model joins by adding an entry and
inherits the tests.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from torch import nn

from pdeforge._typing import Fields
from pdeforge.errors import PdeforgeError
from pdeforge.models._deeponet import DeepONet, PODDeepONet
from pdeforge.models._fno import FNO, TFNO
from pdeforge.models._layers import DomainPadding, GridCoordinates
from pdeforge.models._lsm import LSM
from pdeforge.models._mgno import MgNO
from pdeforge.models._scot import ScOT
from pdeforge.models._spacetime import STFNO, FNO3d
from pdeforge.models._t1 import T1
from pdeforge.models._unet import UNet2d

__all__ = ["MODELS", "ModelSpec", "build_model", "model_names", "model_options"]

DEFAULT_MODES = {1: 16, 2: 12, 3: 8}
"""Kept modes per axis by dimension: the FNO paper's Burgers, Darcy/Navier-Stokes and 3-D choices."""

RESOLUTION_GRIDS = ("periodic", "nodes")


@dataclass(frozen=True)
class ModelSpec:
    """One row of the model table.

    Parameters
    ----------
    builder
        ``builder(in_channels, out_channels, spatial_dims, **options) -> nn.Module``;
        its keyword-only parameters (with defaults) are the model's options.
    summary
        One line saying what the model is.
    reference
        The paper (authors, title, venue, section) the model follows.
    spatial_dims
        The numbers of spatial axes the model takes.
    resolution
        The grids across which the model is resolution-invariant:
        ``"periodic"`` (points ``j / n``: the same function on ``n`` and
        ``2 n`` points gives the same output at the common points, e.g. the
        Fourier models), ``"nodes"`` (points ``j / (n - 1)``, ``n`` and
        ``2 n - 1`` points: models that interpolate on the unit box), or
        ``None`` (tied to the grid it was trained on).
    fit
        ``fit(model, training_outputs)``: a step the model needs on the
        (normalised) training outputs ``[N, C, *space]`` before training, such
        as POD-DeepONet's basis; ``None`` when there is none.
    tiny
        Options of a small instance, for smoke tests and examples.
    """

    builder: Callable[..., nn.Module]
    summary: str
    reference: str
    spatial_dims: tuple[int, ...] = (1, 2, 3)
    resolution: str | None = None
    fit: Callable[[nn.Module, Fields], object] | None = None
    tiny: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.resolution not in (*RESOLUTION_GRIDS, None):
            raise ValueError(f"resolution must be one of {RESOLUTION_GRIDS} or None, got {self.resolution!r}")
        object.__setattr__(self, "tiny", MappingProxyType(dict(self.tiny)))

    def options(self) -> dict[str, object]:
        """The options the builder accepts, with their defaults.

        Returns
        -------
        dict
            Option name to default value, in the builder's order.
        """
        params = inspect.signature(self.builder).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _padding(padding: float | Sequence[float], symmetric: bool) -> DomainPadding | None:
    """Domain padding as a fraction of each axis (one value or one per axis), or none for 0."""
    share = (float(padding),) if isinstance(padding, (int, float)) else tuple(float(p) for p in padding)
    if any(not 0 <= p < 1 for p in share):
        raise ValueError(f"padding is a fraction of each axis in [0, 1), e.g. 0.25, got {padding!r} "
                         "(4 cells at 16 points is 0.25)")
    if not any(share):
        return None
    return DomainPadding(fraction=share[0] if len(share) == 1 else share, symmetric=symmetric)


def _fourier_options(spatial_dims: int, modes, padding: float | Sequence[float], symmetric_padding: bool,
                     coordinates: str) -> dict:
    if coordinates not in ("nodes", "periodic", "none"):
        raise ValueError(f"coordinates must be nodes, periodic or none, got {coordinates!r}")
    return {
        "modes": DEFAULT_MODES[spatial_dims] if modes is None else modes,
        "spatial_dims": spatial_dims,
        "padding": _padding(padding, symmetric_padding),
        "coordinates": None if coordinates == "none" else GridCoordinates(coordinates),
    }


def _fno(in_channels: int, out_channels: int, spatial_dims: int, *, modes: int | Sequence[int] | None = None,
         width: int = 32, layers: int = 4, padding: float | Sequence[float] = 0.0, symmetric_padding: bool = False,
         coordinates: str = "nodes", projection_channels: int = 128, lifting_channels: int | None = None,
         mlp_expansion: float | None = None, backend: str = "auto") -> nn.Module:
    return FNO(in_channels, out_channels, width=width, layers=layers, projection_channels=projection_channels,
               lifting_channels=lifting_channels, mlp_expansion=mlp_expansion, backend=backend,
               **_fourier_options(spatial_dims, modes, padding, symmetric_padding, coordinates))


def _tfno(in_channels: int, out_channels: int, spatial_dims: int, *, modes: int | Sequence[int] | None = None,
          width: int = 32, layers: int = 4, rank: float = 0.5, contraction: str = "auto",
          padding: float | Sequence[float] = 0.0, symmetric_padding: bool = False, coordinates: str = "nodes",
          projection_channels: int = 128, lifting_channels: int | None = None, mlp_expansion: float | None = None,
          backend: str = "auto") -> nn.Module:
    return TFNO(in_channels, out_channels, width=width, layers=layers, rank=rank, contraction=contraction,
                projection_channels=projection_channels, lifting_channels=lifting_channels,
                mlp_expansion=mlp_expansion, backend=backend,
                **_fourier_options(spatial_dims, modes, padding, symmetric_padding, coordinates))


def _unet(in_channels: int, out_channels: int, spatial_dims: int, *, width: int = 32, depth: int = 3) -> nn.Module:
    return UNet2d(in_channels, out_channels, width=width, depth=depth)


def _deeponet(in_channels: int, out_channels: int, spatial_dims: int, *, sensors: int = 32, width: int = 128,
              depth: int = 3, basis: int = 64) -> nn.Module:
    return DeepONet(in_channels, out_channels, spatial_dims, sensors=sensors, width=width, depth=depth, basis=basis)


def _pod_deeponet(in_channels: int, out_channels: int, spatial_dims: int, *, modes: int = 32, sensors: int = 32,
                  width: int = 128, depth: int = 3) -> nn.Module:
    return PODDeepONet(in_channels, out_channels, spatial_dims, modes=modes, sensors=sensors, width=width, depth=depth)


def _fit_pod(model: nn.Module, outputs: Fields) -> None:
    if not isinstance(model, PODDeepONet):
        raise TypeError(f"the POD fit step needs a PODDeepONet, got {type(model).__name__}")
    model.fit_pod(outputs)


def _mgno(in_channels: int, out_channels: int, spatial_dims: int, *, width: int = 52, layers: int = 5,
          smoothing: Sequence[int] = (1, 1, 1, 1, 1, 2), post_smoothing: int = 0) -> nn.Module:
    if isinstance(smoothing, (str, bytes)) or not isinstance(smoothing, Sequence):
        raise ValueError(f"smoothing must be a list of steps per level, finest first (e.g. [1, 1, 2]), "
                         f"got {smoothing!r}")
    return MgNO(in_channels, out_channels, width=width, layers=layers, smoothing=smoothing,
                post_smoothing=post_smoothing, spatial_dims=spatial_dims)


def _lsm(in_channels: int, out_channels: int, spatial_dims: int, *, width: int = 64, num_basis: int = 12,
         num_tokens: int = 4, patch_size: int | Sequence[int] = 6, depth: int = 4, heads: int = 8,
         projection_channels: int = 128, coordinates: str = "nodes") -> nn.Module:
    return LSM(in_channels, out_channels, width=width, num_basis=num_basis, num_tokens=num_tokens,
               patch_size=patch_size, depth=depth, heads=heads, projection_channels=projection_channels,
               coordinates=None if coordinates == "none" else GridCoordinates(coordinates))


T1_DEFAULT_MODES = {1: 32, 2: 24, 3: 16}
"""T1's kept DCT coefficients per axis by dimension: 24 in 2-D as in the authors' released Navier-Stokes
configuration (Poli et al. 2022, 64^2 grids), twice the FNO's per-axis count in 1-D and 3-D; the ``fft``
transform keeps one more (whole cos/sin pairs)."""


def _t1(in_channels: int, out_channels: int, spatial_dims: int, *, modes: int | Sequence[int] | None = None,
        width: int = 32, layers: int = 4, transform: str = "dct", projection_channels: int = 128,
        coordinates: str = "none") -> nn.Module:
    if coordinates not in ("nodes", "periodic", "none"):
        raise ValueError(f"coordinates must be nodes, periodic or none, got {coordinates!r}")
    if modes is None:
        modes = T1_DEFAULT_MODES[spatial_dims] + (transform == "fft")
    return T1(in_channels, out_channels, modes, width=width, layers=layers, spatial_dims=spatial_dims,
              transform=transform, projection_channels=projection_channels,
              coordinates=None if coordinates == "none" else GridCoordinates(coordinates))


def _fno3d(in_channels: int, out_channels: int, spatial_dims: int, *, fields: int = 1,
           modes: int | Sequence[int] = 8, width: int = 20, layers: int = 4, time_padding: int = 6,
           projection_channels: int = 128, backend: str = "auto") -> nn.Module:
    return FNO3d(in_channels, out_channels, spatial_dims=spatial_dims, fields=fields, modes=modes, width=width,
                 layers=layers, time_padding=time_padding, projection_channels=projection_channels, backend=backend)


def _stfno(in_channels: int, out_channels: int, spatial_dims: int, *, fields: int = 1,
           modes: int | Sequence[int] = 8, width: int = 20, layers: int = 4, time_padding: int = 6,
           projection_channels: int = 128) -> nn.Module:
    return STFNO(in_channels, out_channels, spatial_dims=spatial_dims, fields=fields, modes=modes, width=width,
                 layers=layers, time_padding=time_padding, projection_channels=projection_channels)


def _scot(in_channels: int, out_channels: int, spatial_dims: int, *, patch_size: int = 4, embed_dim: int = 48,
          depths: Sequence[int] = (2, 2, 2), heads: Sequence[int] = (3, 6, 12), window: int = 4,
          mlp_ratio: float = 4.0, conditioned: bool = False) -> nn.Module:
    return ScOT(in_channels, out_channels, patch_size=patch_size, embed_dim=embed_dim, depths=tuple(depths),
                heads=tuple(heads), window=window, mlp_ratio=mlp_ratio, conditioned=conditioned)


_FNO_PAPER = ("Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart, Anandkumar, \"Fourier Neural Operator "
              "for Parametric Partial Differential Equations\", ICLR 2021, sec. 4")

MODELS: dict[str, ModelSpec] = {
    "fno": ModelSpec(
        _fno, "Fourier neural operator: spectral convolutions on the kept low modes plus pointwise maps",
        _FNO_PAPER, resolution="periodic",
        tiny={"width": 8, "modes": 3, "layers": 2, "coordinates": "none", "mlp_expansion": 0.5,
              "projection_channels": 16}),
    "tfno": ModelSpec(
        _tfno, "FNO whose spectral weights are a Tucker decomposition",
        "Kossaifi, Kovachki, Azizzadenesheli, Anandkumar, \"Multi-Grid Tensorized Fourier Neural Operator for "
        "High-Resolution PDEs\", TMLR 2024, sec. 3",
        resolution="periodic",
        tiny={"width": 8, "modes": 3, "layers": 2, "rank": 0.5, "coordinates": "none", "projection_channels": 16}),
    "unet": ModelSpec(
        _unet, "2-D U-Net, the convolutional baseline (tied to its training grid)",
        "Ronneberger, Fischer, Brox, \"U-Net: Convolutional Networks for Biomedical Image Segmentation\", "
        "MICCAI 2015, sec. 2",
        spatial_dims=(2,), tiny={"width": 8, "depth": 2}),
    "deeponet": ModelSpec(
        _deeponet, "DeepONet: a branch net on the input at fixed sensors times a trunk net on the coordinates",
        "Lu, Jin, Pang, Zhang, Karniadakis, \"Learning nonlinear operators via DeepONet\", "
        "Nat. Mach. Intell. 3, 2021, sec. 2",
        resolution="nodes", tiny={"sensors": 8, "width": 16, "basis": 4}),
    "pod-deeponet": ModelSpec(
        _pod_deeponet, "DeepONet whose trunk is the POD basis of the training outputs only",
        "Lu, Meng, Cai, Mao, Goswami, Zhang, Karniadakis, \"A comprehensive and fair comparison of two neural "
        "operators\", CMAME 393, 2022, sec. 2.2",
        resolution="nodes", fit=_fit_pod, tiny={"modes": 4, "sensors": 8, "width": 16}),
    "mgno": ModelSpec(
        _mgno, "MgNO: layers sigma(V-cycle + pointwise) whose V-cycle is a learned multichannel multigrid",
        "He, Liu, Xu, \"MgNO: Efficient Parameterization of Linear Operators via Multigrid\", ICLR 2024, sec. 3",
        tiny={"width": 4, "layers": 2, "smoothing": [1, 1, 2]}),
    "lsm": ModelSpec(
        _lsm, "Latent spectral model: a U-Net whose scales pass through latent-token trigonometric-basis blocks",
        "Wu, Hu, Luo, Wang, Long, \"Solving High-Dimensional PDEs with Latent Spectral Models\", ICML 2023, sec. 3",
        spatial_dims=(2,),
        tiny={"width": 8, "num_basis": 3, "num_tokens": 2, "patch_size": 2, "depth": 2, "heads": 2,
              "projection_channels": 8}),
    "t1": ModelSpec(
        _t1, "Transform Once: one orthonormal DCT/rFFT of the input, layers on the kept block, one inverse",
        "Poli, Massaroli, Berto, Park, Dao, Re, Ermon, \"Transform Once: Efficient Operator Learning in Frequency "
        "Domain\", NeurIPS 2022 (arXiv:2211.14453)",
        tiny={"width": 8, "modes": 4, "layers": 2, "projection_channels": 16}),
    "fno3d": ModelSpec(
        _fno3d, "FNO-3D on a trajectory window: the history repeated over the output times, a (t, x, y) FNO",
        _FNO_PAPER + " (FNO-3D, Navier-Stokes)",
        spatial_dims=(1, 2), tiny={"modes": 3, "width": 8, "layers": 2, "time_padding": 2,
                                   "projection_channels": 16}),
    "stfno": ModelSpec(
        _stfno, "spatiotemporal FNO: space-time spectra of the history resampled onto the future's times",
        "Cao, Brarda, Li, Xi, \"Spectral-Refiner: Accurate Fine-Tuning of Spatiotemporal Fourier Neural "
        "Operator for Turbulent Flows\", ICLR 2025, sec. 3",
        spatial_dims=(1, 2), tiny={"modes": 3, "width": 8, "layers": 2, "time_padding": 2,
                                   "projection_channels": 16}),
    "scot": ModelSpec(
        _scot, "scOT: a Swin U-Net transformer whose layer norms are conditioned on the lead time (Poseidon)",
        "Herde, Raonic, Rohner, Kappeli, Molinaro, de Bezenac, Mishra, \"Poseidon: Efficient Foundation Models "
        "for PDEs\", NeurIPS 2024, sec. 3",
        spatial_dims=(2,), tiny={"patch_size": 2, "embed_dim": 8, "depths": [2], "heads": [2], "window": 2}),
}
"""Model name -> :class:`ModelSpec`. Read it through the functions below; tests may add a temporary row."""


def model_names() -> list[str]:
    """The names of the models in the table, in table order.

    Returns
    -------
    list of str

    Examples
    --------
    >>> model_names()[:2]
    ['fno', 'tfno']
    """
    return list(MODELS)


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise PdeforgeError(f"unknown model '{name}' (known: {', '.join(MODELS)})")
    return MODELS[name]


def model_options(name: str) -> dict[str, object]:
    """The options model ``name`` accepts, with their defaults.

    Parameters
    ----------
    name
        A name in :data:`MODELS`.

    Returns
    -------
    dict
        Option name to default value.

    Examples
    --------
    >>> model_options("unet")
    {'width': 32, 'depth': 3}
    """
    return _spec(name).options()


def build_model(name: str, in_channels: int, out_channels: int, spatial_dims: int, **options) -> nn.Module:
    """Build model ``name`` from plain options; mistakes end in a one-line :class:`PdeforgeError`.

    Parameters
    ----------
    name
        A name in :data:`MODELS`.
    in_channels, out_channels
        Channels of the input and output fields.
    spatial_dims
        Spatial axes of the data; must be among the entry's ``spatial_dims``.
    **options
        The model's options (see :func:`model_options`).

    Returns
    -------
    torch.nn.Module
        The model; an entry with a ``fit`` step (``pod-deeponet``) still needs
        it on the training outputs before training.

    Examples
    --------
    >>> net = build_model("fno", 1, 1, 2, width=8, modes=4, layers=2)
    >>> type(net).__name__, net.modes
    ('FNO', (4, 4))
    """
    spec = _spec(name)
    if spatial_dims not in spec.spatial_dims:
        if len(spec.spatial_dims) == 1:
            raise PdeforgeError(f"model '{name}' is {spec.spatial_dims[0]}-D only, "
                                f"the data has {spatial_dims} spatial axes")
        raise PdeforgeError(f"model '{name}' takes {'/'.join(map(str, spec.spatial_dims))} spatial axes, "
                            f"the data has {spatial_dims}")
    known = spec.options()
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise PdeforgeError(f"model '{name}' has no option '{unknown[0]}' (options: {', '.join(known)})")
    try:
        return spec.builder(in_channels, out_channels, spatial_dims, **options)
    except (TypeError, ValueError) as exc:
        raise PdeforgeError(f"model '{name}': {str(exc).splitlines()[0]}") from None
