"""Known answers: analytic and manufactured solutions shared by tests, docs and benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pdeforge.grids import Grid

__all__ = [
    "ColeHopfBurgers",
    "DirichletEigenfunction",
    "KolmogorovLaminar",
    "FourierAdvectionDiffusion",
    "LogisticGrowth",
    "ManufacturedDarcy",
    "SwiftHohenbergMode",
    "TaylorGreen",
    "TwoSolitonKdV",
    "UniformAllenCahn",
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


@dataclass(frozen=True)
class TwoSolitonKdV:
    """The two-soliton solution of ``u_t + 6 u u_x + u_xxx = 0`` (Hirota's form).

    ``u = 2 (log F)_xx`` with ``F = 1 + e^eta1 + e^eta2 + A e^(eta1 + eta2)``,
    ``eta_i = k_i (x - x_i) - k_i^3 t`` and ``A = ((k1 - k2) / (k1 + k2))^2``
    (Drazin & Johnson, *Solitons: an introduction*, 1989, sec. 5.2). Alone,
    soliton ``i`` is ``(k_i^2 / 2) sech^2(eta_i / 2)``: height ``k_i^2 / 2``,
    speed ``k_i^2``; the faster one overtakes the slower and both leave the
    collision unchanged but shifted. Mass ``2 (k1 + k2)`` and momentum
    ``integral u^2 = 2 (k1^3 + k2^3) / 3`` are exact.

    ``x_i`` are phase constants: long before the collision the fast soliton
    is centred at ``x2 + k2^2 t``, long after it the slow one at ``x1 + k1^2 t``.
    On a periodic grid it is exact up to the tails beyond the domain's ends,
    ``~ 2 k^2 exp(-k d)`` at distance ``d`` from a soliton: place the solitons
    far enough from both ends for the times used (:meth:`tail` measures it).
    """

    k1: float = 1.0
    k2: float = 2.0
    x1: float = 0.0
    x2: float = 0.0

    def _log_f_terms(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Exponents ``theta_j`` of the four terms of ``F`` and their ``x``-slopes ``s_j``."""
        k1, k2 = self.k1, self.k2
        eta1 = k1 * (x - self.x1) - k1**3 * t
        eta2 = k2 * (x - self.x2) - k2**3 * t
        log_a = 2 * math.log(abs(k1 - k2) / (k1 + k2))
        theta = torch.stack([torch.zeros_like(x), eta1, eta2, eta1 + eta2 + log_a], dim=-1)
        slopes = torch.tensor([0.0, k1, k2, k1 + k2], dtype=x.dtype, device=x.device)
        return theta, slopes

    def solution(self, grid: Grid, t: float) -> torch.Tensor:
        """The exact ``u(x, t)`` on ``grid``'s nodes.

        ``(log F)_xx`` is the variance of the slopes ``s_j`` under the weights
        ``softmax(theta_j)``, which never overflows and never cancels.
        """
        (x,) = grid.coordinates()
        theta, slopes = self._log_f_terms(x, t)
        p = torch.softmax(theta, dim=-1)
        mean = (p * slopes).sum(-1)
        return 2 * (p * (slopes - mean[..., None]) ** 2).sum(-1)

    def mass(self) -> float:
        """``integral u dx`` over the line."""
        return 2 * (self.k1 + self.k2)

    def momentum(self) -> float:
        """``integral u^2 dx`` over the line."""
        return 2 * (self.k1**3 + self.k2**3) / 3

    def tail(self, grid: Grid, t: float) -> float:
        """The larger of ``|u|`` at the domain's two ends at time ``t`` (the periodic wrap's error scale)."""
        (length,) = grid.extent
        ends = Grid((2,), (2 * length,))  # nodes 0 and L
        return float(self.solution(ends, t).abs().max())


@dataclass(frozen=True)
class LogisticGrowth:
    """A spatially uniform Fisher-KPP state: ``u_t = r u (1 - u)`` in closed form.

    ``u(t) = u0 e^(r t) / (1 - u0 + u0 e^(r t))``; diffusion acts on no
    uniform field, so this solves ``u_t = D Lap u + r u (1 - u)`` exactly.
    """

    rate: float
    u0: float

    def solution(self, grid: Grid, t: float) -> torch.Tensor:
        """The uniform exact field on ``grid`` at time ``t``."""
        growth = math.exp(self.rate * t)
        value = self.u0 * growth / (1 - self.u0 + self.u0 * growth)
        return torch.full(grid.shape, value, dtype=torch.float64)


@dataclass(frozen=True)
class UniformAllenCahn:
    """A spatially uniform Allen-Cahn state: ``u_t = u - u^3`` in closed form.

    ``u(t) = u0 / sqrt(u0^2 + (1 - u0^2) e^(-2 t))`` (a Bernoulli equation in
    ``u^-2``), an exact solution of ``u_t = eps^2 Lap u + u - u^3``.
    """

    u0: float

    def solution(self, grid: Grid, t: float) -> torch.Tensor:
        """The uniform exact field on ``grid`` at time ``t``."""
        value = self.u0 / math.sqrt(self.u0**2 + (1 - self.u0**2) * math.exp(-2 * t))
        return torch.full(grid.shape, value, dtype=torch.float64)


@dataclass(frozen=True)
class FourierAdvectionDiffusion:
    """Exact periodic solutions of ``u_t + c . grad u = D Lap u`` in any dimension.

    Every Fourier mode moves with the velocity and decays on its own:
    ``u_hat(k, t) = u_hat(k, 0) exp(-(D |k|^2 + i c . k) t)``. A single mode
    is ``cos(k . (x - c t)) exp(-D |k|^2 t)`` in closed form. ``c = 0`` is the
    heat equation; ``D = 0`` translates ``u0`` rigidly, so after time ``t``
    with ``c t`` a whole number of periods per axis it returns exactly.
    """

    velocity: tuple[float, ...]
    diffusivity: float

    def evolve(self, u0: torch.Tensor, grid: Grid, t: float) -> torch.Tensor:
        """The exact solution at time ``t`` from the trigonometric interpolant of ``u0 [..., *grid.shape]``."""
        dims = tuple(range(-grid.ndim, 0))
        phase = torch.zeros((), dtype=torch.complex128)
        for c, k in zip(self.velocity, grid.wavenumbers(device=u0.device), strict=True):
            phase = phase + c * k
        factor = torch.exp(-self.diffusivity * t * grid.wavenumber_squared(device=u0.device) - 1j * t * phase)
        return torch.fft.irfftn(torch.fft.rfftn(u0, dim=dims) * factor, s=grid.shape, dim=dims)

    def plane_wave(self, grid: Grid, t: float, mode: Sequence[int]) -> torch.Tensor:
        """``cos(k . (x - c t)) exp(-D |k|^2 t)`` with ``k = 2 pi mode / L`` on ``grid``'s nodes."""
        phase = torch.zeros(grid.shape, dtype=torch.float64)
        k2 = 0.0
        for x, m, c, length in zip(grid.mesh(), mode, self.velocity, grid.extent, strict=True):
            k = 2 * math.pi * m / length
            phase = phase + k * (x - c * t)
            k2 += k * k
        return torch.cos(phase) * math.exp(-self.diffusivity * k2 * t)
