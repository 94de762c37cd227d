"""Batched Krylov methods against scipy's direct and iterative solvers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pdeforge.problems import Darcy, DarcyConfig
from pdeforge.problems.darcy import darcy_operator
from pdeforge.solvers.krylov import as_operator, cg, gcrodr, gmres

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def darcy_systems(resolution: int, count: int, *, seed: int = 0, high: float = 12.0, low: float = 3.0):
    """Darcy operators (FNO piecewise coefficients) and a random right-hand side per system."""
    problem = Darcy(DarcyConfig(resolution=resolution, high=high, low=low))
    a = problem.sample_inputs(seed, range(count))["coefficient"]
    op = darcy_operator(a, problem.grid)
    b = torch.as_tensor(np.random.default_rng(seed).standard_normal((count, *op.shape)))
    return a, problem.grid, op, b


def convection_diffusion(n: int, wind: float = 20.0) -> sp.csr_matrix:
    """Upwind-free central-difference ``-Lap u + wind u_x`` on an ``n x n`` interior grid: non-symmetric."""
    h = 1.0 / (n + 1)
    e = np.ones(n)
    second = sp.diags([-e[:-1], 2 * e, -e[:-1]], [-1, 0, 1]) / h**2
    first = sp.diags([-e[:-1], e[:-1]], [-1, 1]) / (2 * h)
    eye = sp.eye(n)
    return (sp.kron(eye, second + wind * first) + sp.kron(second, eye)).tocsr()


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


# ------------------------------------------------------------------ GMRES and GCRO-DR

METHODS = {
    "gmres": lambda A, b, **kw: gmres(A, b, restart=20, **kw),
    "gcrodr": lambda A, b, **kw: gcrodr(A, b, m=20, k=6, **kw),
}


def batch_case(kind: str):
    """``(A, b, matrices)``: a batch of Darcy systems (SPD) or one convection-diffusion matrix (non-symmetric)."""
    if kind == "darcy":
        _, _, op, b = darcy_systems(20, 3, seed=5)
        return op, b, [op.to_scipy(i) for i in range(3)]
    matrix = convection_diffusion(16)
    b = torch.as_tensor(np.random.default_rng(6).standard_normal((3, matrix.shape[0])))
    return matrix, b, [matrix] * 3


@pytest.mark.parametrize("kind", ["darcy", "convection"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_gmres_family_matches_spsolve(name, kind):
    A, b, matrices = batch_case(kind)
    result = METHODS[name](A, b, rtol=1e-10)
    assert bool(result.converged.all())
    for i, m in enumerate(matrices):
        rhs = b[i].numpy().ravel()
        ref = spla.spsolve(m.tocsc(), rhs)
        x = result.x[i].numpy().ravel()
        assert np.linalg.norm(rhs - m @ x) <= 1e-10 * np.linalg.norm(rhs)
        assert np.linalg.norm(x - ref) <= 1e-7 * np.linalg.norm(ref)
        assert float(result.residual[i]) <= 1e-10


@pytest.mark.parametrize("name", sorted(METHODS))
def test_gmres_family_batched_equals_one_at_a_time(name):
    a, grid, op, b = darcy_systems(16, 3, seed=7)
    batched = METHODS[name](op, b, rtol=1e-9)
    for i in range(3):
        alone = METHODS[name](darcy_operator(a[i : i + 1], grid), b[i : i + 1], rtol=1e-9)
        n = int(alone.iterations[0])
        assert n == int(batched.iterations[i])
        assert torch.allclose(alone.x[0], batched.x[i], rtol=0, atol=1e-11 * float(alone.x.abs().max()))
        # The final true residuals (~1e-9) differ only by rounding of b - A x (~1e-17).
        assert torch.allclose(alone.history[: n + 1, 0], batched.history[: n + 1, i], rtol=1e-6, atol=1e-15)


def test_gmres_history_agrees_with_scipy_gmres():
    matrix = convection_diffusion(14)
    rhs = np.random.default_rng(8).standard_normal(matrix.shape[0])
    scipy_history = [1.0]
    spla.gmres(matrix, rhs, rtol=1e-12, restart=10, maxiter=3, callback=scipy_history.append, callback_type="pr_norm")
    ours = gmres(matrix, torch.as_tensor(rhs)[None], rtol=1e-12, restart=10, maxiter=30).history[:, 0].numpy()
    # Within a cycle both report the Givens estimate; at a restart scipy keeps the estimate
    # of the last step, we report the true residual: equal up to rounding.
    np.testing.assert_allclose(ours[:31], scipy_history[:31], rtol=1e-7)


def test_gmres_callback_sees_iterates_with_the_reported_residual():
    matrix = convection_diffusion(12)
    b = torch.as_tensor(np.random.default_rng(9).standard_normal((2, matrix.shape[0])))
    seen = []
    gmres(matrix, b, rtol=1e-8, restart=8, maxiter=20,
          callback=lambda k, x, rel: seen.append((k, x.numpy().copy(), rel.numpy().copy())))
    assert [k for k, _, _ in seen] == list(range(1, 21))
    for _, x, rel in seen:
        true = np.linalg.norm(b.numpy() - (matrix @ x.T).T, axis=1) / np.linalg.norm(b.numpy(), axis=1)
        np.testing.assert_allclose(true, rel, rtol=1e-6)


def test_right_preconditioned_gmres_converges_faster_with_jacobi():
    _, _, op, b = darcy_systems(20, 2, seed=2, high=1000.0, low=1.0)
    diag = op.diagonal()
    plain = gmres(op, b, rtol=1e-8, restart=30, maxiter=1500)  # may stagnate at this contrast
    jacobi = gmres(op, b, rtol=1e-8, restart=30, M=lambda r: r / diag)
    assert bool(jacobi.converged.all())
    assert bool((jacobi.iterations < plain.iterations).all()), (jacobi.iterations, plain.iterations)
    assert bool((op.residual_norm(jacobi.x, b) <= 1e-8).all())


def test_gmres_reports_non_convergence():
    matrix = convection_diffusion(14)
    b = torch.ones(1, matrix.shape[0], dtype=torch.float64)
    result = gmres(matrix, b, rtol=1e-12, restart=5, maxiter=12)
    assert result.iterations.tolist() == [12]
    assert not bool(result.converged[0])
    true_residual = float(torch.linalg.norm(b - torch.as_tensor(matrix @ result.x[0].numpy()))) / float(b.norm())
    assert float(result.residual[0]) == pytest.approx(true_residual, rel=1e-12)


@pytest.mark.parametrize("kind", ["darcy", "convection"])
def test_gcrodr_with_k_zero_is_gmres(kind):
    A, b, _ = batch_case(kind)
    ref = gmres(A, b, rtol=1e-10, restart=15)
    ours = gcrodr(A, b, rtol=1e-10, m=15, k=0)
    assert torch.equal(ours.iterations, ref.iterations)
    assert torch.allclose(ours.x, ref.x, rtol=0, atol=1e-14 * float(ref.x.abs().max()))
    assert torch.allclose(ours.history, ref.history, rtol=1e-12, atol=0)


def test_gcrodr_recycle_space_satisfies_its_invariants():
    matrix = convection_diffusion(16)
    other = convection_diffusion(16, wind=25.0)
    b = torch.as_tensor(np.random.default_rng(10).standard_normal((1, matrix.shape[0])))
    first = gcrodr(matrix, b, rtol=1e-10, m=20, k=6)
    second = gcrodr(other, b, rtol=1e-10, m=20, k=6, recycle=first.extra["recycle"])
    for result, m in ((first, matrix), (second, other)):
        space = result.extra["recycle"]
        U, C = space.U[0].numpy(), space.C[0].numpy()
        assert int(space.count[0]) == 6
        np.testing.assert_allclose((m @ U.T).T, C, atol=1e-10 * np.abs(C).max())  # C = A U
        np.testing.assert_allclose(C @ C.T, np.eye(6), atol=1e-12)  # orthonormal rows
    assert bool(second.converged[0])


def test_gcrodr_recycling_saves_iterations_and_reuses_c_for_the_same_matrix():
    matrix = convection_diffusion(20)
    rng = np.random.default_rng(11)
    b1, b2 = (torch.as_tensor(rng.standard_normal((1, matrix.shape[0]))) for _ in range(2))
    first = gcrodr(matrix, b1, rtol=1e-10, m=30, k=10)
    again = gcrodr(matrix, b2, rtol=1e-10, m=30, k=10, recycle=first.extra["recycle"])
    cold = gcrodr(matrix, b2, rtol=1e-10, m=30, k=10)
    baseline = gmres(matrix, b2, rtol=1e-10, restart=30)
    assert bool(again.converged[0])
    assert int(again.iterations[0]) < int(cold.iterations[0]) <= int(baseline.iterations[0])
    # Same matrix object: C = A U is reused, so no extra products beyond iterations and restarts.
    cycles = -(-int(again.iterations[0]) // 20)
    assert again.extra["matvecs"] <= int(again.iterations[0]) + cycles
    x = again.x[0].numpy()
    assert np.linalg.norm(b2.numpy()[0] - matrix @ x) <= 1e-10 * np.linalg.norm(b2.numpy())


@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("name", ["cg", "gmres", "gcrodr"])
def test_methods_keep_the_dtype_and_reach_rtol(name, dtype, rtol):
    _, _, op, b = darcy_systems(16, 2, seed=12)
    A = torch.as_tensor(np.stack([op.to_scipy(i).toarray() for i in range(2)])).to(dtype)
    rhs = b.flatten(1).to(dtype)
    solver = {"cg": cg, **METHODS}[name]
    result = solver(A, rhs, rtol=rtol)
    assert result.x.dtype == dtype
    true = torch.linalg.vector_norm(rhs.double() - torch.bmm(A.double(), result.x.double()[..., None])[..., 0], dim=1)
    assert bool(result.converged.all())
    assert bool((true <= 2 * rtol * torch.linalg.vector_norm(rhs.double(), dim=1)).all())


@pytest.mark.parametrize("name", ["cg", "gmres", "gcrodr"])
def test_krylov_methods_plug_into_the_darcy_generator(name):
    from pdeforge.solvers import direct_solve

    problem = Darcy(DarcyConfig(resolution=20, rtol=1e-10))
    inputs = problem.sample_inputs(3, range(3))
    method = {"cg": cg, "gmres": gmres, "gcrodr": gcrodr}[name]
    ours = problem.solve(inputs, method)
    reference_solution = problem.solve(inputs, direct_solve)
    assert bool(ours.converged.all())
    assert bool((ours.diagnostics["residual"] <= 1e-10).all())
    u, ref = ours.outputs["solution"], reference_solution.outputs["solution"]
    assert float(relative_error(u, ref).max()) < 1e-7
    assert bool((ours.diagnostics["iterations"] > 1).all())
