"""The Kuramoto-Sivashinsky equation on a periodic interval, in conservative (flux) form.

    u_t + (u^2 / 2)_x + u_xx + nu u_xxxx = 0,   x in [0, L) periodic,   u(x, 0) = u0(x),

the form of exponax's ``KuramotoSivashinskyConservative`` (convection scale
1, both diffusivities 1) and of Kassam & Trefethen 2005 (sec. 6). The
second-order term feeds the long waves ``|k| < 1 / sqrt(nu)``, the
fourth-order one damps the short ones, and the nonlinearity moves energy
between them; for ``L`` above about 22 (``nu = 1``) the dynamics are
chaotic. ``nu`` only rescales: ``u`` solves it with ``nu`` on length
``L`` exactly when ``w(y, s) = sqrt(nu) u(sqrt(nu) y, nu s)`` solves it with
``nu = 1`` on length ``L / sqrt(nu)``. The mean of ``u`` is conserved.
Solved pseudo-spectrally (2/3 rule) with ETDRK4, whose exact treatment of
the stiff linear part is what Kassam & Trefethen designed it for.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from pdeforge.problems._base import FieldSpec, Integrator
from pdeforge.problems._convection import ConservativeConvection
from pdeforge.problems._spectral_common import GaussianStartConfig, PeriodicProblem, output_times, step_size_rule

__all__ = ["KuramotoSivashinsky", "KuramotoSivashinskyConfig"]


class KuramotoSivashinskyConfig(GaussianStartConfig):
    """Kuramoto-Sivashinsky parameters; defaults are exponax's 1-D chaotic setting (``L = 60``).

    Presets: ``kassam-trefethen`` (their domain ``32 pi``, 128 points, step
    1/4, to ``t = 150``; their initial condition is a fixed function, not drawn here).
    """

    PRESETS = {
        "kassam-trefethen": {"length": 32 * math.pi, "resolution": 128, "dt": 0.25, "t_final": 150.0,
                             "n_times": 150},
    }

    resolution: int = Field(default=128, ge=4, description="grid points of the stored fields")
    length: float = Field(default=60.0, gt=0, description="period L of the domain (chaotic above about 22)")
    nu: float = Field(default=1.0, gt=0, description="coefficient of the fourth-order term nu u_xxxx")
    t_final: float = Field(default=50.0, gt=0, description="time of the last stored snapshot")
    n_times: int = Field(default=50, ge=1, description="number of stored snapshots, equally spaced in (0, t_final]")
    ic_scale: float = Field(default=0.5, gt=0, description="initial condition covariance multiplier")
    ic_tau: float = Field(default=0.5, ge=0, description="initial condition inverse length scale")
    ic_alpha: float = Field(default=2.0, gt=0, description="initial condition smoothness exponent")


class KuramotoSivashinsky(PeriodicProblem[KuramotoSivashinskyConfig]):
    """Kuramoto-Sivashinsky ``u_t + (u^2/2)_x + u_xx + nu u_xxxx = 0`` on a periodic interval.

    A Gaussian random initial condition (zero mean by default) mapped to the
    trajectory ``u(t_i)``; ``L = u_xx``-destabilised, ``u_xxxx``-damped,
    integrated with the configured integrator (ETDRK4 by default).

    Examples
    --------
    >>> from pdeforge.problems import KuramotoSivashinsky, KuramotoSivashinskyConfig
    >>> problem = KuramotoSivashinsky(KuramotoSivashinskyConfig(resolution=64, n_times=2))
    >>> problem.field_shapes(), problem.grid.extent
    ({'u0': (64,), 'u': (2, 64)}, (60.0,))
    """

    name = "kuramoto-sivashinsky"
    stored_params = ("nu",)
    summary = "1-D Kuramoto-Sivashinsky (conservative form) on a periodic interval, chaotic for L > ~22"
    equation = "u_t + (u^2/2)_x + u_xx + nu u_xxxx = 0 on the periodic interval (0,L), u(0) = u0"
    Config = KuramotoSivashinskyConfig
    inputs = (FieldSpec("u0", ("x",)),)
    outputs = (FieldSpec("u", ("t", "x")),)
    spatial_dims = 1

    def equation_for(self) -> ConservativeConvection:
        """The equation on the solver's grid: ``L = k^2 - nu k^4``, convection scale 1."""
        fine = self.fine_grid
        (k,) = fine.wavenumbers(device=self.device)
        k2 = k * k
        return ConservativeConvection(fine, k2 - self.config.nu * k2 * k2, 1.0, device=self.device)

    def integrate(self, u0: torch.Tensor, method: Integrator):
        """Solve from ``u0`` with ``method``; the step keeps ``max|u| h / dx`` at ``cfl`` per output interval."""
        c, fine = self.config, self.fine_grid
        equation = self.equation_for()
        u_hat, steps = method(equation, torch.fft.rfft(u0), output_times(c), step_size_rule(c, fine, equation.speed))
        return torch.fft.irfft(u_hat, n=fine.shape[0]), steps, equation
