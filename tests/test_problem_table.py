"""One row per registered problem, and the checks every problem must pass, driven by the table.

Each row of :data:`CASES` gives a small fast config and, for that problem:

- batch variants: the samples of a batch of five equal bitwise the same samples solved as
  a pair in another order (a sample never depends on its batch);
- convergence studies: errors against a known answer (the gallery's exact or manufactured
  solution, or a much finer run where none exists) fall at the declared order; for a time
  integrator that order is its ``order`` attribute, so a new integrator joins unchanged;
- laws: per-sample functionals of the stored trajectory that must stay constant, move one way only
  (energy decay, mass growth) or respect a bound (maximum principles);
- bad parameters: configs that must be refused with a validation error, one of them also
  through ``pdeforge generate NAME --set KEY=VALUE`` (one error line).

A new problem adds its row (in a block of its own, to keep merges clean).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import Any, Literal

import pytest
import torch
from pydantic import ValidationError
from typer.testing import CliRunner

from helpers import assert_converges, one_line_error
from pdeforge.cli import app
from pdeforge.grids import Grid
from pdeforge.problems import PROBLEMS, Problem
from pdeforge.problems.darcy import darcy_operator
from pdeforge.problems.gallery import (
    ColeHopfBurgers,
    DirichletEigenfunction,
    FourierAdvectionDiffusion,
    LogisticGrowth,
    ManufacturedDarcy,
    SwiftHohenbergMode,
    TwoSolitonKdV,
    UniformAllenCahn,
    UniformGrayScott,
)
from pdeforge.problems.reaction_diffusion import ginzburg_landau_energy
from pdeforge.problems.swift_hohenberg import lyapunov_functional
from pdeforge.solvers import INTEGRATORS, direct_solve, method_for
from pdeforge.spectral import rfft_weights

ErrorAt = Callable[[float, str], float]
"""``error(size, integrator)``: the error of one run at step or mesh size ``size``."""


@dataclass(frozen=True)
class Convergence:
    """A convergence study: ``error(size)`` falls like ``size**order``.

    ``integrators`` empty: a spatial study at the fixed ``order``; else one study per
    integrator, at its declared ``order`` unless ``order`` is given, with the sizes
    ``sizes(order)`` (each method's asymptotic range differs).
    """

    label: str
    error: ErrorAt
    sizes: Callable[[float], Sequence[float]]
    order: float | None = None
    tol: float = 0.25
    integrators: tuple[str, ...] = ()
    finest_below: float | None = None


@dataclass(frozen=True)
class Law:
    """A per-sample functional of ``[u0, u(t_1), ...]`` that stays constant, never grows, or obeys a bound.

    ``values(problem, trajectory [batch, T + 1, *grid]) -> [batch, T + 1]``. For
    ``constant``, ``non-increasing`` and ``non-decreasing``, ``tol`` is relative to the
    functional's initial size (plus ``1e-300``, for a zero functional), and a monotone
    functional must also move; for ``at-most`` and ``at-least`` every value must lie
    within ``tol`` of ``bound``.
    """

    label: str
    values: Callable[[Problem, torch.Tensor], torch.Tensor]
    kind: Literal["constant", "non-increasing", "non-decreasing", "at-most", "at-least"]
    tol: float
    config: dict[str, Any] = field(default_factory=dict)
    bound: float = 0.0


@dataclass(frozen=True)
class Case:
    """One registered problem's row of the table.

    Attributes
    ----------
    config
        Keyword arguments of a small, fast config.
    batch_variants
        ``(config overrides, method options)`` pairs for the batch-independence check.
    orders
        Convergence studies on known answers.
    laws
        Conservation or monotonicity laws along the stored trajectory.
    bad
        Config keyword arguments that must raise a validation error.
    cli_bad
        ``(KEY=VALUE, fragment of the error line)`` refused by ``pdeforge generate``.
    max_spectral_tail
        Largest admissible resolution diagnostic on the laws' runs (periodic problems).
    """

    config: dict[str, Any]
    orders: tuple[Convergence, ...]
    bad: tuple[dict[str, Any], ...]
    cli_bad: tuple[str, str]
    batch_variants: tuple[tuple[dict[str, Any], dict[str, Any]], ...] = (({}, {}),)
    laws: tuple[Law, ...] = ()
    max_spectral_tail: float = 1e-2


def make(name: str, **config: Any) -> Problem:
    """The registered problem ``name`` with config ``config``."""
    cls = PROBLEMS[name]
    return cls(cls.Config(**config))


# ---------------------------------------------------------------------------------------------
# Known answers shared by several rows
# ---------------------------------------------------------------------------------------------

def time_error_vs_exact(name: str, config: dict[str, Any], exact: Callable[[Grid, float], torch.Tensor],
                        t_final: float) -> ErrorAt:
    """Max error at ``t_final`` of the problem's own pipeline started from an exact solution."""

    def error(dt: float, integrator: str) -> float:
        problem = make(name, **config, dt=dt, integrator=integrator, t_final=t_final, n_times=1, cfl_limit=1e9)
        u0 = exact(problem.fine_grid, 0.0)[None].expand(2, *problem.fine_grid.shape)
        solution = problem.solve({problem.inputs[0].name: u0}, method_for(problem))
        u = solution.outputs[problem.outputs[0].name][0, -1]
        return float((u - exact(problem.grid, t_final)).abs().max())

    return error


def self_convergence(name: str, config: dict[str, Any], t_final: float, reference_dt: float) -> ErrorAt:
    """Max error at ``t_final`` against a run at ``reference_dt``, from two sampled initial conditions."""

    def run(dt: float, integrator: str) -> torch.Tensor:
        problem = make(name, **config, dt=dt, integrator=integrator, t_final=t_final, n_times=1, cfl_limit=1e9)
        inputs = problem.sample_inputs(0, range(2))
        return problem.solve(inputs, method_for(problem)).outputs[problem.outputs[0].name][:, -1]

    reference = cache(lambda integrator: run(reference_dt, integrator))

    def error(dt: float, integrator: str) -> float:
        return float((run(dt, integrator) - reference(integrator)).abs().max())

    return error


def eigenfunction_error(name: str, mode: DirichletEigenfunction, wavenumber: float = 0.0) -> ErrorAt:
    """Max error of an elliptic generator's solution for an eigenfunction source at mesh size ``h``."""

    def error(h: float, _: str) -> float:
        config = {"resolution": round(1 / h) + 1} | ({"wavenumber": wavenumber} if name == "helmholtz" else {})
        problem = make(name, **config)
        x, y = problem.grid.mesh()
        f = mode.source(x, y, wavenumber)[None].expand(2, -1, -1)
        solution = problem.solve({"source": f}, method_for(problem))
        assert bool(solution.converged.all())
        return float((solution.outputs["solution"][0] - mode.solution(x, y)).abs().max())

    return error


def darcy_mms_error(h: float, _: str) -> float:
    """Max error of the Darcy discretisation on the manufactured solution at mesh size ``h``."""
    n = round(1 / h) + 1
    mms = ManufacturedDarcy()
    grid = Grid((n, n), boundary="dirichlet")
    x, y = grid.mesh()
    op = darcy_operator(mms.coefficient(x, y)[None], grid)
    b = mms.forcing(x, y)[1:-1, 1:-1][None]
    u = direct_solve(op, b, rtol=1e-10).x[0]
    return float((u - mms.solution(x, y)[1:-1, 1:-1]).abs().max())


def mean(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """The spatial mean of every snapshot (mass over the domain's measure)."""
    return u.flatten(2).mean(-1)


def mean_square(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """The spatial mean of ``u^2`` of every snapshot (the L2 energy over the measure)."""
    return (u * u).flatten(2).mean(-1)


def maximum(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """The largest value of every snapshot."""
    return u.flatten(2).amax(-1)


def minimum(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """The smallest value of every snapshot."""
    return u.flatten(2).amin(-1)


def largest_magnitude(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """``max |u|`` of every snapshot."""
    return u.flatten(2).abs().amax(-1)


def allen_cahn_energy(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """The Ginzburg-Landau energy of every snapshot, Allen-Cahn's Lyapunov functional."""
    return ginzburg_landau_energy(u, problem.grid, problem.config.eps)


def mesh_sizes(*nodes: int) -> Callable[[float], list[float]]:
    """Mesh sizes of grids with these node counts on the unit square."""
    return lambda _order: [1 / (n - 1) for n in nodes]


def halvings(base: Callable[[float], float], count: int = 4) -> Callable[[float], list[float]]:
    """``count`` step sizes halving from ``base(order)``."""
    return lambda order: [base(order) / 2**i for i in range(count)]


COLE_HOPF = ColeHopfBurgers(nu=0.05, a0=1.5, modes=(1.0, 0.3))
# Two solitons meeting mid-domain at t ~ 1; on L = 70 their tails at the ends stay below 1e-13 up to t = 1.
SOLITONS = TwoSolitonKdV(k1=1.0, k2=2.0, x1=34.0, x2=31.0)
SOLITON_GRID = {"length": 70.0, "resolution": 1024}
ODE_STEPS = halvings(lambda order: {1: 0.01, 2: 0.02, 3: 0.05}.get(int(order), 0.1))
SMOOTH = {"ic_alpha": 4.0}  # smooth initial data: the integrators' classical order shows without order reduction

# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

CASES: dict[str, Case] = {}

# --- elliptic problems (lead) ---
CASES["darcy"] = Case(
    config={"resolution": 16},
    batch_variants=(({}, {}), ({"resolution": 65}, {"chunk": 2})),
    orders=(Convergence("manufactured", darcy_mms_error, mesh_sizes(17, 33, 65, 129), order=2.0, tol=0.1,
                        finest_below=2e-4),),
    bad=({"resolution": 3}, {"low": 0.0}, {"high": -1.0}, {"coefficient": "smooth"}, {"coeff_alpha": math.inf},
         {"resolution": 9, "solver_resolution": 30}),
    cli_bad=("low=0", "'low'"),
)
CASES["poisson"] = Case(
    config={"resolution": 33},
    batch_variants=(({"resolution": 65, "solver": "pcg-mg"}, {"chunk": 2}), ({"resolution": 65}, {})),
    # The 5-point error of sin(pi x) sin(pi y) is (pi h)^2 / 12 relative, to leading order.
    orders=(Convergence("eigenfunction", eigenfunction_error("poisson", DirichletEigenfunction(1, 1)),
                        mesh_sizes(17, 33, 65, 129), order=2.0, tol=0.05,
                        finest_below=1.05 * math.pi**2 / 12 / 128**2),),
    bad=({"rtol": 0.0}, {"rtol": 1.0}, {"source_alpha": 0.0}, {"source_tau": -1.0}),
    cli_bad=("rtol=2", "'rtol'"),
)
CASES["helmholtz"] = Case(
    config={"resolution": 33, "wavenumber": 8.0},
    batch_variants=(({"resolution": 65, "solver": "gmres-mg"}, {"chunk": 2}), ({"resolution": 65}, {})),
    # Below (CG) and above (GMRES) the first eigenvalue.
    orders=tuple(Convergence(f"eigenfunction-k{k:g}", eigenfunction_error("helmholtz", DirichletEigenfunction(2, 1), k),
                             mesh_sizes(33, 65, 129), order=2.0, tol=0.1) for k in (3.0, 10.0)),
    bad=({"wavenumber": -1.0}, {"wavenumber": 31.0}, {"source_scale": 0.0}),
    cli_bad=("wavenumber=40", "'wavenumber'"),
)

# --- periodic time-dependent problems (lead) ---
CASES["burgers"] = Case(
    config={"resolution": 64, "t_final": 0.2, "n_times": 2},
    orders=(Convergence(
        "cole-hopf",
        time_error_vs_exact("burgers", {"resolution": 64, "nu": COLE_HOPF.nu}, COLE_HOPF.solution, 0.5),
        # Step sizes in each method's asymptotic range, above the spatial error (~1e-13 at N=64).
        halvings(lambda order: {1: 0.02, 2: 0.05, 3: 0.1}.get(int(order), 0.125)),
        tol=0.3, integrators=tuple(sorted(INTEGRATORS))),),
    laws=(Law("mass", mean, "constant", 1e-12, {"ic_zero_mean": False}),
          Law("energy", mean_square, "non-increasing", 1e-10)),
    bad=({"nu": -0.1}, {"nu": 0.0}, {"t_final": 0.0}, {"n_times": 0}, {"cfl": -1.0},
         {"resolution": 64, "solver_resolution": 96}, {"length": 0.0}),
    cli_bad=("nu=-0.1", "greater than 0"),
)
CASES["navier-stokes"] = Case(
    config={"resolution": 16, "t_final": 0.5, "n_times": 2},
    # No exact solution shows ETDRK4's order (it integrates Taylor-Green's linear decay exactly,
    # see tests/test_problems.py), so a self-convergence study on random initial vorticity.
    orders=(Convergence("self", self_convergence("navier-stokes", {"resolution": 16}, 1.0, 1 / 128),
                        halvings(lambda order: 0.25), integrators=("etdrk4",)),),
    laws=(Law("mean vorticity", mean, "constant", 1e-13,
              {"resolution": 64, "ic_zero_mean": False, "t_final": 2.0, "n_times": 4}),
          # Unforced, the dealiased nonlinearity conserves enstrophy; viscosity only dissipates it.
          Law("enstrophy", mean_square, "non-increasing", 1e-10,
              {"resolution": 64, "forcing": "none", "t_final": 2.0, "n_times": 4})),
    bad=({"nu": -1e-3}, {"drag": -1.0}, {"forcing": "wind"}, {"kolmogorov_wavenumber": 0}, {"ic_alpha": 0.0}),
    cli_bad=("nu=-1e-3", "'nu'"),
)

# --- 1-D periodic problems (gallery1d) ---
CASES["kuramoto-sivashinsky"] = Case(
    config={"resolution": 64, "length": 30.0, "t_final": 2.0, "n_times": 2},
    orders=(Convergence("self", self_convergence("kuramoto-sivashinsky", {"resolution": 64, "length": 30.0} | SMOOTH,
                                                 5.0, 1 / 320), halvings(lambda order: 0.4), integrators=("etdrk4",)),),
    laws=(Law("mass", mean, "constant", 1e-12, {"ic_zero_mean": False, "t_final": 20.0, "n_times": 10}),),
    bad=({"length": 0.0}, {"nu": 0.0}, {"nu": -1.0}, {"resolution": 3}, {"preset": "exponax-2d"}),
    cli_bad=("length=-60", "'length'"),
    # dx = 0.47 (the default's): a tail of ~0.015, while the field agrees with a 4x finer solve to ~1e-5.
    max_spectral_tail=0.03,
)
CASES["kdv"] = Case(
    config={"resolution": 64, "t_final": 0.2, "n_times": 2},
    orders=(Convergence("two-soliton", time_error_vs_exact("kdv", SOLITON_GRID, SOLITONS.solution, 1.0),
                        halvings(lambda order: 0.01), integrators=("etdrk4",)),),
    laws=(Law("mass", mean, "constant", 1e-12,
              {"resolution": 256, "ic_zero_mean": False, "t_final": 1.0, "n_times": 4}),
          Law("momentum", mean_square, "constant", 1e-4, {"resolution": 256, "t_final": 1.0, "n_times": 4})),
    bad=({"nu": -0.1}, {"hyper_diffusivity": -0.01}, {"length": 0.0}, {"cfl": 0.0}),
    cli_bad=("hyper_diffusivity=-1", "'hyper_diffusivity'"),
)
CASES["allen-cahn"] = Case(
    config={"resolution": 64, "eps": 0.05, "t_final": 1.0, "n_times": 4},
    # A uniform state solves the reaction ODE exactly: every integrator's order, the linear part idle.
    orders=(Convergence("uniform", time_error_vs_exact("allen-cahn", {"resolution": 16}, UniformAllenCahn(0.3).solution,
                                                       2.0), ODE_STEPS, integrators=tuple(sorted(INTEGRATORS))),
            Convergence("self", self_convergence("allen-cahn", {"resolution": 64, "eps": 0.05} | SMOOTH, 1.0, 1 / 512),
                        halvings(lambda order: 0.25), integrators=("etdrk4",))),
    laws=(Law("energy", allen_cahn_energy, "non-increasing", 1e-10, {"resolution": 128, "eps": 0.02}),
          Law("maximum principle", largest_magnitude, "at-most", 1e-9, {"resolution": 128, "eps": 0.02}, bound=1.0)),
    bad=({"eps": 0.0}, {"eps": -0.1}, {"ic_alpha": 0.0}, {"n_times": 0}),
    cli_bad=("eps=0", "'eps'"),
)
CASES["fisher-kpp"] = Case(
    config={"resolution": 64, "t_final": 0.5, "n_times": 5},
    orders=(Convergence("logistic", time_error_vs_exact("fisher-kpp", {"resolution": 16, "rate": 5.0},
                                                        LogisticGrowth(rate=5.0, u0=0.1).solution, 1.0),
                        ODE_STEPS, integrators=tuple(sorted(INTEGRATORS))),
            Convergence("self", self_convergence("fisher-kpp", {"resolution": 64, "rate": 5.0} | SMOOTH, 1.0, 1 / 512),
                        halvings(lambda order: 0.1), integrators=("etdrk4",))),
    laws=(Law("at most 1", maximum, "at-most", 1e-12, {"rate": 5.0}, bound=1.0),
          Law("at least 0", minimum, "at-least", 1e-12, {"rate": 5.0}, bound=0.0),
          Law("mass grows", mean, "non-decreasing", 1e-12, {"rate": 5.0})),
    bad=({"rate": 0.0}, {"nu": -1.0}, {"resolution": 3}, {"t_final": -1.0}),
    cli_bad=("rate=-1", "'rate'"),
)

# --- 2-D pattern problems and the Navier-Stokes presets (gallery2d) ---

GRAY_SCOTT_ODE = UniformGrayScott(feed=0.022, kill=0.051, u0=0.5, v0=0.25)
GRAY_SCOTT_ODE_END = cache(lambda: GRAY_SCOTT_ODE.solution([40.0])[-1])


def uniform_gray_scott_error(dt: float, integrator: str) -> float:
    """Max error at t = 40 of a spatially uniform Gray-Scott state against the reaction ODE (SciPy, rtol 1e-13)."""
    config = {"resolution": 8, "feed": GRAY_SCOTT_ODE.feed, "kill": GRAY_SCOTT_ODE.kill}
    problem = make("gray-scott", **config, dt=dt, integrator=integrator, t_final=40.0, n_times=1, cfl_limit=1e9)
    state = torch.tensor([GRAY_SCOTT_ODE.u0, GRAY_SCOTT_ODE.v0], dtype=torch.float64)[:, None, None]
    uv0 = state.expand(2, *problem.fine_grid.shape)[None].expand(2, -1, -1, -1)
    uv = problem.solve({"uv0": uv0}, method_for(problem)).outputs["uv"][0, -1]
    return float((uv - GRAY_SCOTT_ODE_END()[:, None, None]).abs().max())


def kinetic_energy(problem: Problem, w: torch.Tensor) -> torch.Tensor:
    """``<|u|^2> / 2`` of every vorticity snapshot (``|u_k|^2 = |w_k|^2 / |k|^2``, Parseval)."""
    grid = problem.grid
    k2 = grid.wavenumber_squared(device=w.device)
    power = torch.fft.rfft2(w).abs() ** 2 * rfft_weights(grid, device=w.device) / grid.size**2
    return (power * torch.where(k2 > 0, 1 / k2.clamp_min(1e-30), 0.0)).sum((-2, -1)) / 2


def swift_hohenberg_lyapunov(problem: Problem, u: torch.Tensor) -> torch.Tensor:
    """The Swift-Hohenberg Lyapunov functional of every snapshot."""
    return lyapunov_functional(u, problem.grid, problem.config.r, problem.config.g)  # type: ignore[attr-defined]


SH_MODE = SwiftHohenbergMode(r=0.2, mode=(6, 3), length=16 * math.pi, amplitude=1e-6)
SH_STIFF = {"resolution": 32, "length": 8 * math.pi, "r": 0.3, "g": 0.5}

CASES["gray-scott"] = Case(
    config={"resolution": 16, "t_final": 50.0, "n_times": 2, "preset": "mu"},
    orders=(
        Convergence("uniform-ode", uniform_gray_scott_error,
                    halvings(lambda order: {1: 0.25, 2: 0.5, 3: 1.0}.get(int(order), 2.0)),
                    tol=0.3, integrators=tuple(sorted(INTEGRATORS))),
        # A patterned run (theta, half Pearson's side at 32 points) against a run at dt = 1/8.
        Convergence("self", self_convergence("gray-scott", {"resolution": 32, "length": 1.25, "preset": "theta",
                                                            "ic_patches": 2}, 200.0, 0.125),
                    halvings(lambda order: 4.0), tol=0.35, integrators=("etdrk4",)),
    ),
    bad=({"feed": -0.1}, {"kill": 2.0}, {"diffusivity_u": 0.0}, {"ic_noise": 1.0}, {"ic_patches": -1},
         {"preset": "omega"}, {"length": -2.5}),
    cli_bad=("feed=-1", "'feed'"),
)
CASES["swift-hohenberg"] = Case(
    config={"resolution": 16, "length": 4 * math.pi, "t_final": 5.0, "n_times": 2, "g": 0.5},
    orders=(
        # One small mode: ETDRK4 is exact on it (tests/test_pattern_problems.py); the IMEX methods
        # show their orders. Amplitude 1e-6 keeps the cubic term 1e-12 relative.
        Convergence("linear-mode", time_error_vs_exact("swift-hohenberg", {"resolution": 32, "r": SH_MODE.r},
                                                       SH_MODE.solution, 5.0),
                    halvings(lambda order: {1: 0.1, 2: 0.25}.get(int(order), 0.5)), tol=0.3,
                    integrators=("ars222", "ars443", "imex-euler")),
        # Stiff (L down to -225): Cox-Matthews ETDRK4 shows order ~3.1 here, not 4
        # (Hochbruck & Ostermann 2005), see docs/conventions.md.
        Convergence("self-stiff", self_convergence("swift-hohenberg", SH_STIFF, 5.0, 1 / 256),
                    halvings(lambda order: 1 / 8), order=3.2, tol=0.4, integrators=("etdrk4",)),
    ),
    laws=(Law("lyapunov", swift_hohenberg_lyapunov, "non-increasing", 1e-12,
              {"resolution": 64, "length": 8 * math.pi, "r": 0.3, "g": 0.5, "t_final": 40.0, "n_times": 8}),),
    bad=({"r": 11.0}, {"g": -11.0}, {"length": 0.0}, {"ic_scale": -1.0}, {"resolution": 64, "solver_resolution": 96}),
    cli_bad=("r=20", "'r'"),
)
# The decaying preset (McWilliams spectrum, unforced): energy and enstrophy only decay. At 64^2 the
# spectral tail stays below 1e-2 with nu = 5e-3 (the preset's 1e-4 needs a finer grid).
_DECAYING = {"preset": "decaying", "resolution": 64, "nu": 5e-3, "t_final": 2.0, "n_times": 4}
CASES["navier-stokes"] = replace(CASES["navier-stokes"], laws=CASES["navier-stokes"].laws + (
    Law("decaying-energy", kinetic_energy, "non-increasing", 1e-10, _DECAYING),
    Law("decaying-enstrophy", mean_square, "non-increasing", 1e-10, _DECAYING),
), bad=CASES["navier-stokes"].bad + ({"ic_spectrum": "kraichnan"}, {"ic_peak_wavenumber": 0.0}, {"ic_energy": -1.0},
                                     {"preset": "channel"}))
# --- advection-diffusion, 1-D and 3-D (gallery3d) ---
# The equation is all linear part: ETDRK4 is exact at every step (tests/test_advection_diffusion.py),
# so the order studies are the IMEX schemes', on a plane wave of the exact Fourier solution.
IMEX = tuple(sorted(n for n in INTEGRATORS if n != "etdrk4"))
IMEX_SIZES = halvings(lambda order: {1: 0.002, 2: 0.02}.get(int(order), 0.04))
WAVE_1D = FourierAdvectionDiffusion((1.0,), 0.02)
WAVE_3D = FourierAdvectionDiffusion((1.0, 0.5, -1.0), 0.02)
CASES["advection-diffusion"] = Case(
    config={"resolution": 64, "t_final": 0.5, "n_times": 2},
    orders=(Convergence(
        "plane-wave",
        time_error_vs_exact("advection-diffusion", {"resolution": 16, "nu": WAVE_1D.diffusivity, "velocity": 1.0},
                            partial(WAVE_1D.plane_wave, mode=(2,)), 1.0),
        IMEX_SIZES, tol=0.15, integrators=IMEX),),
    laws=(Law("mass", mean, "constant", 1e-12, {"ic_zero_mean": False}),
          Law("L2 energy", mean_square, "non-increasing", 1e-12)),
    bad=({"nu": -0.01}, {"velocity": math.inf}, {"length": 0.0}, {"t_final": 0.0},
         {"resolution": 64, "solver_resolution": 96}),
    cli_bad=("nu=-1", "greater than or equal to 0"),
)
CASES["advection-diffusion-3d"] = Case(
    # nu = 0.05 damps the 3-D prior's upper band within the first output interval (spectral tail < 1e-2).
    config={"resolution": 16, "nu": 0.05, "t_final": 0.5, "n_times": 2},
    orders=(Convergence(
        "plane-wave",
        time_error_vs_exact("advection-diffusion-3d",
                            {"resolution": 8, "nu": WAVE_3D.diffusivity, "velocity": WAVE_3D.velocity},
                            partial(WAVE_3D.plane_wave, mode=(1, -1, 2)), 1.0),
        IMEX_SIZES, tol=0.15, integrators=IMEX),),
    laws=(Law("mass", mean, "constant", 1e-12, {"ic_zero_mean": False}),
          Law("L2 energy", mean_square, "non-increasing", 1e-12),
          Law("heat-equation energy", mean_square, "non-increasing", 1e-12, {"velocity": (0.0, 0.0, 0.0)})),
    bad=({"nu": -0.01}, {"velocity": (1.0, 0.0)}, {"velocity": (math.nan, 0.0, 0.0)}, {"ic_tau": -1.0}),
    cli_bad=("velocity=[1,0]", "'velocity.2'"),
)

# --- allen-cahn-3d (gallery3d), the 1-D problem's equation on three axes ---
CASES["allen-cahn-3d"] = Case(
    config={"resolution": 32, "eps": 0.1, "t_final": 0.5, "n_times": 2},
    orders=(Convergence("uniform", time_error_vs_exact("allen-cahn-3d", {"resolution": 8},
                                                       UniformAllenCahn(0.3).solution, 2.0),
                        ODE_STEPS, integrators=tuple(sorted(INTEGRATORS))),),
    laws=(Law("energy", allen_cahn_energy, "non-increasing", 1e-10),
          Law("maximum principle", largest_magnitude, "at-most", 1e-9, bound=1.0)),
    bad=({"eps": 0.0}, {"ic_alpha": 0.0}, {"resolution": 3}),
    cli_bad=("eps=-1", "'eps'"),
)

# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


def test_every_problem_has_a_case():
    assert set(CASES) == set(PROBLEMS)


@pytest.mark.parametrize("name, overrides, options", [
    pytest.param(name, overrides, options, id=f"{name}-{i}")
    for name, case in CASES.items() for i, (overrides, options) in enumerate(case.batch_variants)])
def test_a_sample_does_not_depend_on_its_batch(name, overrides, options):
    """Bitwise, for batches of two or more (a batch of one takes other library code
    paths; the dataset writer never solves one alone)."""
    problem = make(name, **(CASES[name].config | overrides))
    method = partial(method_for(problem), **options)
    together = problem.solve(problem.sample_inputs(7, range(5)), method)
    pair = problem.solve(problem.sample_inputs(7, [3, 0]), method)
    assert bool(together.converged.all()) and bool(pair.converged.all())
    for key, value in pair.outputs.items():
        assert torch.equal(value[0], together.outputs[key][3]), key
        assert torch.equal(value[1], together.outputs[key][0]), key


def _studies():
    for name, case in CASES.items():
        for study in case.orders:
            for integrator in study.integrators or ("",):
                label = f"{name}-{study.label}" + (f"-{integrator}" if integrator else "")
                yield pytest.param(name, study, integrator, id=label)


@pytest.mark.parametrize("name, study, integrator", list(_studies()))
def test_known_answer_converges_at_the_declared_order(name, study, integrator):
    order = study.order if study.order is not None else INTEGRATORS[integrator].run.order
    errors = assert_converges(study.sizes(order), lambda size: study.error(size, integrator), order=order,
                              tol=study.tol)
    if study.finest_below is not None:
        assert errors[-1] < study.finest_below, errors


@pytest.mark.parametrize("name, law", [
    pytest.param(name, law, id=f"{name}-{law.label}") for name, case in CASES.items() for law in case.laws])
def test_a_law_holds_along_every_stored_trajectory(name, law):
    problem = make(name, **(CASES[name].config | law.config))
    inputs = problem.sample_inputs(3, range(3))
    solution = problem.solve(inputs, method_for(problem))
    assert bool(solution.converged.all()), solution.reasons
    assert float(solution.diagnostics["spectral_tail"].max()) < CASES[name].max_spectral_tail
    stored = problem.stored_inputs(inputs)[problem.inputs[0].name]
    trajectory = torch.cat([stored[:, None], solution.outputs[problem.outputs[0].name]], dim=1)
    values = law.values(problem, trajectory)
    scale = values[:, :1].abs() + 1e-300
    if law.kind == "constant":
        drift = (values - values[:, :1]).abs() / scale
        assert float(drift.max()) <= law.tol, values
    elif law.kind in ("non-increasing", "non-decreasing"):
        sign = 1.0 if law.kind == "non-increasing" else -1.0
        growth = sign * (values[:, 1:] - values[:, :-1]) / scale
        assert float(growth.max()) <= law.tol, values
        assert float((sign * (values[:, -1] - values[:, 0])).max()) < 0, "the functional should move, not stay put"
    elif law.kind == "at-most":
        assert float(values.max()) <= law.bound + law.tol, values
    else:
        assert float(values.min()) >= law.bound - law.tol, values

@pytest.mark.parametrize("name, kwargs", [
    pytest.param(name, kwargs, id=f"{name}-{'-'.join(kwargs)}") for name, case in CASES.items() for kwargs in case.bad])
def test_bad_parameters_are_refused(name, kwargs):
    with pytest.raises(ValidationError):
        PROBLEMS[name].Config(**kwargs)


@pytest.mark.parametrize("name", list(CASES))
def test_the_command_line_refuses_a_bad_parameter_in_one_line(name, tmp_path):
    setting, fragment = CASES[name].cli_bad
    result = CliRunner().invoke(app, ["generate", name, "--out", str(tmp_path / "x"), "--set", setting])
    one_line_error(result, fragment)
    assert not (tmp_path / "x").exists()

