"""Known answers: analytic and manufactured solutions shared by tests, docs and benchmarks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pdeforge.grids import Grid

__all__ = [
    "ColeHopfBurgers",
    "DirichletEigenfunction",
    "KolmogorovLaminar",
    "ManufacturedDarcy",
    "SwiftHohenbergMode",
    "TaylorGreen",
    "UniformGrayScott",
]


@dataclass(frozen=True)
class TaylorGreen:
    """Taylor-Green vortex on the unit torus: an exact decaying Navier-Stokes solution.

    ``w = A sin(2 pi k x) sin(2 pi k y) exp(-8 pi^2 k^2 nu t)``: a single
    eigenfunction of the Laplacian, so ``u . grad w = 0`` and only viscosity acts.
    """

    nu: float
    k: int = 1
    amplitude: float = 1.0

    def vorticity(self, grid: Grid, t: float) -> torch.Tensor:
        """The exact vorticity on ``grid``'s nodes at time ``t``."""
        x, y = grid.mesh()
        decay = math.exp(-8 * math.pi**2 * self.k**2 * self.nu * t)
        return self.amplitude * torch.sin(2 * math.pi * self.k * x) * torch.sin(2 * math.pi * self.k * y) * decay


@dataclass(frozen=True)
class ColeHopfBurgers:
    """An exact periodic solution of ``u_t + (u^2/2)_x = nu u_xx`` by the Cole-Hopf transform.

    ``u = -2 nu phi_x / phi`` where ``phi = a0 + sum_n a_n exp(-4 pi^2 n^2 nu t) cos(2 pi n x)``
    solves the heat equation ``phi_t = nu phi_xx``; ``a0 > sum |a_n|`` keeps ``phi > 0``.
    """

    nu: float
    a0: float = 1.5
    modes: tuple[float, ...] = (1.0, 0.3)

    def __post_init__(self) -> None:
        if self.a0 <= sum(abs(a) for a in self.modes):
            raise ValueError("a0 must exceed sum |a_n| so that phi stays positive")

    def solution(self, grid: Grid, t: float) -> torch.Tensor:
        """The exact ``u(x, t)`` on ``grid``'s nodes."""
        (x,) = grid.coordinates()
        phi = torch.full_like(x, self.a0)
        phi_x = torch.zeros_like(x)
        for n, a in enumerate(self.modes, start=1):
            kn = 2 * math.pi * n
            decay = a * math.exp(-kn * kn * self.nu * t)
            phi = phi + decay * torch.cos(kn * x)
            phi_x = phi_x - decay * kn * torch.sin(kn * x)
        return -2 * self.nu * phi_x / phi


@dataclass(frozen=True)
class ManufacturedDarcy:
    """``u = sin(pi x) sin(pi y)`` with ``a = 1 + s sin(2 pi x) cos(3 pi y)`` on the unit square.

    ``f = -div(a grad u)`` is computed in closed form, so that a
    discretisation's error against ``u`` measures its order.
    """

    strength: float = 0.5

    def coefficient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``a(x, y)``."""
        return 1 + self.strength * torch.sin(2 * math.pi * x) * torch.cos(3 * math.pi * y)

    def solution(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``u(x, y)``."""
        return torch.sin(math.pi * x) * torch.sin(math.pi * y)

    def forcing(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``f = -div(a grad u)`` in closed form (product rule)."""
        pi, s = math.pi, self.strength
        a = self.coefficient(x, y)
        a_x = s * 2 * pi * torch.cos(2 * pi * x) * torch.cos(3 * pi * y)
        a_y = -s * 3 * pi * torch.sin(2 * pi * x) * torch.sin(3 * pi * y)
        u_x = pi * torch.cos(pi * x) * torch.sin(pi * y)
        u_y = pi * torch.sin(pi * x) * torch.cos(pi * y)
        lap_u = -2 * pi * pi * self.solution(x, y)
        return -(a_x * u_x + a_y * u_y + a * lap_u)


@dataclass(frozen=True)
class DirichletEigenfunction:
    """``u = sin(m pi x) sin(n pi y)``, an eigenfunction of ``-Lap`` on the unit square with ``u = 0`` on its boundary.

    ``-Lap u - k^2 u = ((m^2 + n^2) pi^2 - k^2) u``, so the source that
    produces it is a multiple of itself: Poisson (``k = 0``) and Helmholtz
    share it, and a 5-point discretisation must reproduce it to ``O(h^2)``.
    """

    m: int = 1
    n: int = 1

    def solution(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``u(x, y)``."""
        return torch.sin(self.m * math.pi * x) * torch.sin(self.n * math.pi * y)

    def source(self, x: torch.Tensor, y: torch.Tensor, wavenumber: float = 0.0) -> torch.Tensor:
        """The source ``f = ((m^2 + n^2) pi^2 - k^2) u`` that produces ``u``."""
        eigenvalue = (self.m**2 + self.n**2) * math.pi**2
        return (eigenvalue - wavenumber**2) * self.solution(x, y)


@dataclass(frozen=True)
class UniformGrayScott:
    """A spatially uniform Gray-Scott state: diffusion drops out and ``(u, v)`` follows the reaction ODE.

    ``u' = -u v^2 + F (1 - u)``, ``v' = u v^2 - (F + k) v``; :meth:`solution`
    integrates it with SciPy's DOP853 at tight tolerance.
    """

    feed: float
    kill: float
    u0: float = 0.5
    v0: float = 0.25

    def rhs(self, t: float, y):
        """The ODE's right-hand side at ``y = (u, v)``."""
        u, v = y
        return [-u * v * v + self.feed * (1 - u), u * v * v - (self.feed + self.kill) * v]

    def solution(self, times, rtol: float = 1e-13, atol: float = 1e-15):
        """``[len(times), 2]`` values of ``(u, v)`` at the given times (``times`` increasing, > 0)."""
        from scipy.integrate import solve_ivp

        times = [float(t) for t in times]
        result = solve_ivp(self.rhs, (0.0, times[-1]), [self.u0, self.v0], method="DOP853", t_eval=times,
                           rtol=rtol, atol=atol)
        if not result.success:
            raise RuntimeError(result.message)
        return torch.as_tensor(result.y.T, dtype=torch.float64)


@dataclass(frozen=True)
class SwiftHohenbergMode:
    """One small Fourier mode of Swift-Hohenberg: ``u = A cos(k . x) exp(s t)``, ``s = r - (1 - |k|^2)^2``.

    Exact for the linearised equation; at amplitude ``A`` the neglected
    terms ``g u^2 - u^3`` are ``O(g A)`` and ``O(A^2)`` relative to ``u``:
    ``1e-12`` for the default ``A`` and ``|g| <= 1``. ``mode`` counts periods
    per domain side ``length`` along ``x`` and ``y``.
    """

    r: float
    mode: tuple[int, int]
    length: float
    amplitude: float = 1e-12

    @property
    def wavenumber(self) -> float:
        """``|k| = 2 pi |mode| / length``."""
        return 2 * math.pi * math.hypot(*self.mode) / self.length

    @property
    def growth_rate(self) -> float:
        """``s = r - (1 - |k|^2)^2``."""
        return self.r - (1 - self.wavenumber**2) ** 2

    def solution(self, grid: Grid, t: float) -> torch.Tensor:
        """The mode on ``grid``'s nodes at time ``t``."""
        x, y = grid.mesh()
        kx, ky = (2 * math.pi * m / self.length for m in self.mode)
        return self.amplitude * math.exp(self.growth_rate * t) * torch.cos(kx * x + ky * y)


@dataclass(frozen=True)
class KolmogorovLaminar:
    """The laminar Kolmogorov flow: a steady vorticity of ``w_t + u.grad w = nu Lap w - drag w + f``.

    For ``f = -2 pi n A cos(2 pi n y)`` (the curl of the body force
    ``(A sin(2 pi n y), 0)``), ``w = f / (nu (2 pi n)^2 + drag)`` is a shear
    flow ``u = (U(y), 0)`` with ``u.grad w = 0``: the linear terms balance the
    forcing exactly.
    """

    nu: float
    drag: float
    amplitude: float
    wavenumber: int

    def vorticity(self, grid: Grid) -> torch.Tensor:
        """The steady vorticity on ``grid``'s nodes (period 1 along ``y``)."""
        _, y = grid.mesh()
        k = 2 * math.pi * self.wavenumber
        return -k * self.amplitude * torch.cos(k * y) / (self.nu * k * k + self.drag)
