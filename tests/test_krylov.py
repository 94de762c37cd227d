"""Batched Krylov methods against scipy's direct and iterative solvers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdeforge.problems import Darcy, DarcyConfig
from pdeforge.problems.darcy import darcy_operator
from pdeforge.solvers.krylov import as_operator, cg


def darcy_systems(resolution: int, count: int, *, seed: int = 0, high: float = 12.0, low: float = 3.0):
    """Darcy operators (FNO piecewise coefficients) and a random right-hand side per system."""
    problem = Darcy(DarcyConfig(resolution=resolution, high=high, low=low))
    a = problem.sample_inputs(seed, range(count))["coefficient"]
    op = darcy_operator(a, problem.grid)
    b = torch.as_tensor(np.random.default_rng(seed).standard_normal((count, *op.shape)))
    return a, problem.grid, op, b


def reference(op, b: torch.Tensor) -> torch.Tensor:
    return torch.stack([
        torch.as_tensor(spla.spsolve(op.to_scipy(i).tocsc(), b[i].numpy().ravel())).reshape(op.shape)
        for i in range(op.batch)
    ])


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (x - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)


# ----------------------------------------------------------------------------- CG


def test_cg_matches_spsolve_on_a_batch_of_darcy_systems():
    _, _, op, b = darcy_systems(24, 4)
    result = cg(op, b, rtol=1e-10)
    assert bool(result.converged.all())
    assert bool((op.residual_norm(result.x, b) <= 1e-10).all())
    assert float(relative_error(result.x, reference(op, b)).max()) < 1e-7
    # The history ends at each system's final residual and starts at ||b||/||b|| = 1.
    assert torch.allclose(result.history[0], torch.ones(4, dtype=torch.float64))
    assert bool((result.residual <= 1e-10).all())


def test_cg_batched_equals_one_at_a_time():
    a, grid, op, b = darcy_systems(20, 3, seed=3)
    batched = cg(op, b, rtol=1e-9)
    for i in range(3):
        alone = cg(darcy_operator(a[i : i + 1], grid), b[i : i + 1], rtol=1e-9)
        assert int(alone.iterations[0]) == int(batched.iterations[i])
        assert torch.allclose(alone.x[0], batched.x[i], rtol=0, atol=1e-12 * float(alone.x.abs().max()))
        n = int(alone.iterations[0])
        assert torch.allclose(alone.history[: n + 1, 0], batched.history[: n + 1, i], rtol=1e-10, atol=0)
    # Converged systems are frozen: their history stays flat after they stop.
    for i in range(3):
        n = int(batched.iterations[i])
        assert bool((batched.history[n:, i] == batched.history[n, i]).all())


def test_cg_history_agrees_with_scipy_cg():
    _, _, op, b = darcy_systems(16, 1, seed=1)
    matrix, rhs = op.to_scipy(0), b[0].numpy().ravel()
    scipy_history = [1.0]
    spla.cg(matrix, rhs, rtol=1e-12, maxiter=15,
            callback=lambda xk: scipy_history.append(np.linalg.norm(rhs - matrix @ xk) / np.linalg.norm(rhs)))
    ours = cg(op, b, rtol=1e-12, maxiter=15).history[:, 0].numpy()
    np.testing.assert_allclose(ours[:16], scipy_history[:16], rtol=1e-8)


def test_jacobi_preconditioning_saves_iterations_at_high_contrast():
    _, _, op, b = darcy_systems(24, 2, seed=2, high=1000.0, low=1.0)
    plain = cg(op, b, rtol=1e-8)
    diag = op.diagonal()
    jacobi = cg(op, b, rtol=1e-8, M=lambda r: r / diag)
    assert bool(plain.converged.all()) and bool(jacobi.converged.all())
    assert bool((jacobi.iterations < plain.iterations).all()), (jacobi.iterations, plain.iterations)
    assert int(jacobi.iterations.sum()) < 0.5 * int(plain.iterations.sum())
    assert float(relative_error(jacobi.x, reference(op, b)).max()) < 1e-5


def test_cg_starting_at_the_solution_takes_no_iterations():
    _, _, op, b = darcy_systems(16, 2)
    x = reference(op, b)
    result = cg(op, b, x0=x, rtol=1e-8)
    assert result.iterations.tolist() == [0, 0]
    assert torch.equal(result.x, x)


def test_cg_reports_non_convergence_when_maxiter_is_too_small():
    _, _, op, b = darcy_systems(16, 2)
    result = cg(op, b, rtol=1e-10, maxiter=5)
    assert result.iterations.tolist() == [5, 5]
    assert not bool(result.converged.any())
    assert result.history.shape == (6, 2)


# ----------------------------------------------------------------- operator adapter


@pytest.mark.parametrize("kind", ["stencil", "scipy", "dense", "dense-batched", "callable"])
def test_every_form_of_A_gives_the_same_cg_solution(kind):
    _, _, op, b = darcy_systems(12, 2, seed=4)
    flat_b = b.flatten(1)
    matrices = [op.to_scipy(i) for i in range(2)]
    if kind == "stencil":
        A, rhs = op, b
    elif kind == "scipy":  # one matrix for the batch: use system 0 twice
        A, rhs = matrices[0], torch.stack([flat_b[0], flat_b[1]])
    elif kind == "dense":
        A, rhs = torch.as_tensor(matrices[0].toarray()), flat_b
    elif kind == "dense-batched":
        A, rhs = torch.as_tensor(np.stack([m.toarray() for m in matrices])), flat_b
    else:
        A, rhs = (lambda x: op.matvec(x.reshape(b.shape)).reshape(x.shape)), flat_b
    result = cg(A, rhs, rtol=1e-11)
    shared = kind in ("scipy", "dense")
    for i in range(2):
        m = matrices[0] if shared else matrices[i]
        ref = spla.spsolve(m.tocsc(), rhs[i].numpy().ravel())
        np.testing.assert_allclose(result.x[i].numpy().ravel(), ref, rtol=0, atol=1e-8 * np.abs(ref).max())


def test_scipy_matrix_becomes_torch_csr_with_the_same_action():
    rng = np.random.default_rng(0)
    matrix = sp.random(30, 30, density=0.2, random_state=1, format="coo") + sp.eye(30)
    x = torch.as_tensor(rng.standard_normal((3, 30)))
    out = as_operator(matrix, x).matvec(x)
    np.testing.assert_allclose(out.numpy(), (matrix @ x.numpy().T).T, rtol=1e-13, atol=1e-13)
