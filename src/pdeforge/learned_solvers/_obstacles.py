"""Poisson problems around random solid obstacles, the setting of DCDM (Kaneda et al., ICML 2023).

In the pressure projection of a fluid solver the unknowns live in fluid
cells only; across a face shared with a solid the normal flux vanishes
(homogeneous Neumann), while the box walls here hold ``p = 0`` (Dirichlet,
which keeps the system positive definite without a null space). With the
unscaled five-point stencil this is ``A = sum_faces a_f (e_i - e_j)(e_i - e_j)^T``
with ``a_f = 1`` between fluid cells and from fluid to the box wall and
``a_f = 0`` at every face that touches a solid cell.

Solid cells are kept in the grid as decoupled identity rows (``c = 1``,
all faces zero), so every field is a plain ``[batch, n, n]`` image; with
zero right-hand side there, their value stays zero in every Krylov method,
and a learned direction is multiplied by the fluid mask.

Fluid pockets sealed off from the box wall by obstacles would be pure
Neumann problems (singular); :func:`random_obstacles` fills them in.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from pdeforge.errors import PdeforgeError
from pdeforge.problems import StencilOperator

__all__ = ["obstacle_poisson", "random_obstacles"]


def random_obstacles(rng: np.random.Generator, n: int, *, count: tuple[int, int] = (3, 8),
                     size: tuple[float, float] = (0.04, 0.14)) -> np.ndarray:
    """A fluid mask ``[n, n]`` (``True`` = fluid) with random discs and rectangles as solids.

    Every fluid cell is connected to the box wall through fluid (sealed
    pockets are filled in).

    Parameters
    ----------
    rng
        Source of the layout.
    n
        Cells per axis (at least 4).
    count
        Least and most number of obstacles.
    size
        Least and largest half-width (radius) as a fraction of the box.
    """
    if n < 4:
        raise PdeforgeError("obstacle layouts need at least 4 cells per axis")
    y, x = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
    solid = np.zeros((n, n), dtype=bool)
    for _ in range(rng.integers(count[0], count[1] + 1)):
        cy, cx = rng.uniform(0.15, 0.85, size=2)
        r = rng.uniform(*size)
        if rng.random() < 0.5:
            solid |= (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        else:
            ry = rng.uniform(*size)
            solid |= (np.abs(x - cx) <= r) & (np.abs(y - cy) <= ry)
    # scipy is untyped and pyright infers the bare count that label() returns only when given output=.
    labels, _ = ndimage.label(~solid)  # pyright: ignore[reportGeneralTypeIssues]
    wall = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    fluid = np.isin(labels, wall[wall > 0])
    if not fluid.any():
        raise PdeforgeError("the obstacles filled the whole box")
    return fluid


def obstacle_poisson(fluid: torch.Tensor, *, dtype: torch.dtype = torch.float64) -> StencilOperator:
    """The batched five-point operator of ``-Laplace p`` on fluid cells ``fluid [batch, n1, n2]`` (bool).

    >>> fluid = torch.ones(1, 3, 3, dtype=torch.bool); fluid[0, 1, 1] = False
    >>> a = obstacle_poisson(fluid).to_scipy(0).toarray()
    >>> a[4].tolist()  # the solid centre is a decoupled identity row
    [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    >>> a[1].tolist()  # top-middle: two fluid neighbours, the wall, a Neumann face to the solid
    [-1.0, 3.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    f = fluid.to(dtype)
    pad = torch.nn.functional.pad(f, (1, 1, 1, 1), value=1.0)  # the box wall counts as "not solid"
    faces = [pad[:, :-1, 1:-1] * pad[:, 1:, 1:-1], pad[:, 1:-1, :-1] * pad[:, 1:-1, 1:]]
    return StencilOperator(faces, (1.0, 1.0), shift=1.0 - f)
