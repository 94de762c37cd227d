"""Poisson and Helmholtz generators against analytic answers and scipy, the solver
choice of every elliptic problem, and the refusal to store unconverged samples."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdeforge.data import generate, open_dataset
from pdeforge.errors import PdeforgeError
from pdeforge.problems import (
    PROBLEMS,
    Darcy,
    DarcyConfig,
    Helmholtz,
    HelmholtzConfig,
    LinearTraits,
    Poisson,
    PoissonConfig,
)
from pdeforge.problems.helmholtz import first_eigenvalue
from pdeforge.solvers import LINEAR_SOLVERS, choose_method, method_for, pcg_mg


@pytest.mark.parametrize("wavenumber, method", [(3.0, "pcg-mg"), (4.5, "gmres-mg"), (15.0, "gmres-mg"),
                                               (3.0, "dst"), (15.0, "dst")])
def test_helmholtz_agrees_with_spsolve(wavenumber, method):
    problem = Helmholtz(HelmholtzConfig(resolution=49, wavenumber=wavenumber, solver=method))
    assert choose_method(problem).name == method
    inputs = problem.sample_inputs(0, range(3))
    solution = problem.solve(inputs, method_for(problem))
    assert bool(solution.converged.all())
    op = problem.operator(3)
    for i in range(3):
        b = inputs["source"][i, 1:-1, 1:-1].numpy().ravel()
        ref = spla.spsolve(op.to_scipy(i).tocsc(), b).reshape(op.shape)
        got = solution.outputs["solution"][i, 1:-1, 1:-1].numpy()
        # rtol 1e-8 on the residual; the indefinite operator amplifies it by its condition number.
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_helmholtz_definiteness_decides_between_cg_and_gmres():
    lam = first_eigenvalue(65)
    assert 2 * np.pi**2 * 0.99 < lam < 2 * np.pi**2
    below, above = np.sqrt(lam) * 0.99, np.sqrt(lam) * 1.01
    assert Helmholtz(HelmholtzConfig(resolution=65, wavenumber=below)).definite
    assert not Helmholtz(HelmholtzConfig(resolution=65, wavenumber=above)).definite
    assert choose_method(Helmholtz(HelmholtzConfig(resolution=65, wavenumber=below, solver="pcg-mg"))).name == "pcg-mg"
    assert LINEAR_SOLVERS.choose("auto", LinearTraits(ndim=2, definite=True)).name == "pcg-mg"
    assert LINEAR_SOLVERS.choose("auto", LinearTraits(ndim=2, definite=False)).name == "gmres-mg"
    for name in ("pcg-mg", "pcg-ssor", "pcg-jacobi", "cg"):
        with pytest.raises(PdeforgeError, match="indefinite"):
            method_for(Helmholtz(HelmholtzConfig(resolution=65, wavenumber=above, solver=name)))


@pytest.mark.parametrize("cls, method", [(Darcy, "pcg-mg"), (Poisson, "dst"), (Helmholtz, "dst")])
def test_elliptic_problems_default_to_their_fastest_solver_and_reject_unknown_ones(cls, method):
    """Variable coefficients: multigrid-CG; one constant-coefficient matrix for all samples: the sine transform."""
    assert cls.Config().solver == "auto"
    assert choose_method(cls(cls.Config(resolution=33))).name == method
    with pytest.raises(PdeforgeError, match="unknown linear solver 'magic'"):
        method_for(cls(cls.Config(solver="magic")))
    assert PROBLEMS[cls.name] is cls


def test_darcy_refuses_the_constant_coefficient_solver():
    with pytest.raises(PdeforgeError, match="constant coefficients"):
        method_for(Darcy(DarcyConfig(solver="dst")))


@pytest.mark.parametrize("wavenumber", [0.0, 7.0, 25.0])
def test_sine_transform_solve_equals_multigrid_gmres_and_spsolve(wavenumber):
    """Poisson and definite/indefinite Helmholtz: dst, multigrid-Krylov and SuperLU give one solution."""
    fast = Helmholtz(HelmholtzConfig(resolution=65, wavenumber=wavenumber))
    assert choose_method(fast).name == "dst"
    iterative = Helmholtz(HelmholtzConfig(resolution=65, wavenumber=wavenumber,
                                          solver="pcg-mg" if fast.definite else "gmres-mg"))
    inputs = fast.sample_inputs(3, range(4))
    u_fast = fast.solve(inputs, method_for(fast))
    u_iter = iterative.solve(inputs, method_for(iterative))
    assert bool(u_fast.converged.all()) and bool(u_iter.converged.all())
    assert float(u_fast.diagnostics["residual"].max()) < 1e-10  # round-off times the condition number
    scale = float(u_fast.outputs["solution"].abs().max())
    torch.testing.assert_close(u_fast.outputs["solution"], u_iter.outputs["solution"], rtol=0, atol=1e-6 * scale)
    b = inputs["source"][2, 1:-1, 1:-1].to(torch.float64).numpy().ravel()
    ref = spla.spsolve(fast.operator(1).to_scipy(0).tocsc(), b)
    np.testing.assert_allclose(u_fast.outputs["solution"][2, 1:-1, 1:-1].numpy().ravel(), ref,
                               rtol=0, atol=1e-10 * np.abs(ref).max())


def test_a_helmholtz_resonance_is_refused_with_one_line():
    """k^2 equal to the first discrete eigenvalue: the operator is singular."""
    problem = Helmholtz(HelmholtzConfig(resolution=33, wavenumber=float(np.sqrt(first_eigenvalue(33)))))
    inputs = problem.sample_inputs(0, range(2))
    with pytest.raises(PdeforgeError, match="singular"):
        problem.solve(inputs, method_for(problem))


def test_a_sample_whose_solve_did_not_converge_is_reported_with_its_reason():
    problem = Darcy(DarcyConfig(resolution=65, high=3e4, low=3.0))
    inputs = problem.sample_inputs(0, range(2))
    solution = problem.solve(inputs, partial(pcg_mg, maxiter=2))
    assert not bool(solution.converged.any())
    assert all("relative residual above rtol" in why and "did not report convergence" in why
               for why in solution.reasons)
    assert bool((solution.diagnostics["iterations"] == 2).all())


def test_generated_poisson_data_satisfies_the_discrete_equation(tmp_path):
    problem = Poisson(PoissonConfig(resolution=33, store_dtype="float64"))
    generate(problem, n=5, seed=3, out=tmp_path / "poisson", shard_size=4)
    inputs, outputs = open_dataset(tmp_path / "poisson").read(0, 5)
    f, u = torch.as_tensor(inputs["source"]), torch.as_tensor(outputs["solution"])
    assert u.shape == (5, 33, 33) and float(u[:, 0].abs().max()) == 0.0
    op = problem.operator(5)
    residual = op.residual_norm(u[:, 1:-1, 1:-1].contiguous(), f[:, 1:-1, 1:-1].contiguous())
    assert float(residual.max()) <= 1e-8


def test_darcy_solved_on_a_finer_grid_stores_the_fine_solution_at_the_stored_nodes():
    """``solver_resolution = 33`` with ``resolution = 9``: the coefficient is drawn and the
    equation solved on 33^2 nodes, and the stored fields are every 4th node of that solve
    (the FNO data's 421 -> 85 convention), not a solve on the coarse grid."""
    from pdeforge.problems import Darcy, DarcyConfig
    from pdeforge.solvers import method_for

    fine = Darcy(DarcyConfig(resolution=33))
    both = Darcy(DarcyConfig(resolution=9, solver_resolution=33))
    a = fine.sample_inputs(3, range(2))
    assert torch.equal(both.sample_inputs(3, range(2))["coefficient"], a["coefficient"])
    u_fine = fine.solve(a, method_for(fine)).outputs["solution"]
    stored = both.stored_inputs(a)["coefficient"]
    u = both.solve(a, method_for(both)).outputs["solution"]
    assert tuple(u.shape) == (2, 9, 9) and tuple(stored.shape) == (2, 9, 9)
    assert torch.equal(stored, a["coefficient"][:, ::4, ::4])
    assert torch.allclose(u, u_fine[:, ::4, ::4], rtol=0, atol=1e-7 * float(u_fine.abs().max()))
    coarse = Darcy(DarcyConfig(resolution=9))
    u_coarse = coarse.solve({"coefficient": stored}, method_for(coarse)).outputs["solution"]
    assert float((u_coarse - u).norm() / u.norm()) > 1e-3  # a coarse solve is a different (less accurate) field


@pytest.mark.parametrize("solver_resolution", [30, 5])
def test_darcy_solver_resolution_must_hold_the_stored_nodes(solver_resolution):
    from pydantic import ValidationError

    from pdeforge.problems import DarcyConfig

    with pytest.raises(ValidationError, match="solver_resolution"):
        DarcyConfig(resolution=9, solver_resolution=solver_resolution)
