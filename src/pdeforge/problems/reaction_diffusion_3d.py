"""Allen-Cahn on the periodic unit cube: the 1-D problem's equation and solve on three axes.

    u_t = eps^2 Lap u + u - u^3,   x in [0, 1)^3 periodic,   u(x, 0) = tanh(g(x)),

with ``g`` a Gaussian random field. Everything but the grid, the field axes
and the defaults is :class:`~pdeforge.problems.AllenCahn`'s
(``reaction_diffusion.ReactionDiffusionEquation`` is dimension-generic).
"""

from __future__ import annotations

from pydantic import Field

from pdeforge.problems._base import FieldSpec
from pdeforge.problems.reaction_diffusion import AllenCahn, AllenCahnConfig

__all__ = ["AllenCahn3D", "AllenCahn3DConfig"]


class AllenCahn3DConfig(AllenCahnConfig):
    """3-D Allen-Cahn parameters: ``eps = 0.08`` (interface about 3.6 points wide at 32^3), the 3-D prior of g."""

    resolution: int = Field(default=32, ge=4, description="grid points per axis of the stored fields")
    eps: float = Field(default=0.08, gt=0, description="interface width eps (the diffusivity is eps^2)")
    t_final: float = Field(default=2.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=4, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    ic_scale: float = Field(default=23000.0, gt=0,
                            description="covariance multiplier of the Gaussian field g (pointwise variance about 1)")
    ic_tau: float = Field(default=5.0, ge=0, description="inverse length scale of the Gaussian field g")
    ic_alpha: float = Field(default=3.0, gt=0, description="smoothness exponent of the Gaussian field g")


class AllenCahn3D(AllenCahn):
    """Allen-Cahn ``u_t = eps^2 Lap u + u - u^3`` on the periodic unit cube.

    The 1-D problem's reaction, step rule, maximum principle and energy on
    three axes: ``u0 = tanh(g)`` lies in ``(-1, 1)`` and stays there, and the
    Ginzburg-Landau energy never grows.

    Examples
    --------
    >>> from pdeforge.problems import AllenCahn3D, AllenCahn3DConfig
    >>> AllenCahn3D(AllenCahn3DConfig(resolution=8, n_times=2)).field_shapes()
    {'u0': (8, 8, 8), 'u': (2, 8, 8, 8)}
    """

    name = "allen-cahn-3d"
    summary = "3-D Allen-Cahn phase separation u_t = eps^2 Lap u + u - u^3 on the periodic unit cube"
    equation = "u_t = eps^2 Lap u + u - u^3 on the periodic box (0,L)^3, u(0) = tanh(g), g Gaussian"
    Config = AllenCahn3DConfig
    inputs = (FieldSpec("u0", ("x", "y", "z")),)
    outputs = (FieldSpec("u", ("t", "x", "y", "z")),)
    spatial_dims = 3
