"""Preconditioners as operators (symmetric, positive definite, the published formulas)
and the table of linear solvers that problem configs name."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdeforge.errors import PdeforgeError
from pdeforge.problems import Darcy, DarcyConfig, LinearTraits, StencilOperator
from pdeforge.problems.darcy import darcy_operator
from pdeforge.solvers import LINEAR_SOLVERS, cg, sine_eigenvalues
from pdeforge.solvers.multigrid import CycleSpec, Sublattices
from pdeforge.solvers.preconditioners import SSOR, Jacobi, MultigridPreconditioner, PyAMGPreconditioner


def darcy_batch(resolution: int, count: int, *, contrast: float = 4.0) -> tuple[StencilOperator, torch.Tensor]:
    problem = Darcy(DarcyConfig(resolution=resolution, high=3.0 * contrast, low=3.0))
    op = darcy_operator(problem.sample_inputs(2, range(count))["coefficient"], problem.grid)
    b = torch.as_tensor(np.random.default_rng(2).standard_normal((count, *op.shape)))
    return op, b


def matrix_of(apply, shape: tuple[int, ...], batch: int, index: int) -> np.ndarray:
    """The matrix of a batched linear map ``[batch, *shape] -> [batch, *shape]`` for system ``index``."""
    size = int(np.prod(shape))
    columns = []
    for j in range(size):
        e = torch.zeros((batch, size), dtype=torch.float64)
        e[index, j] = 1
        columns.append(apply(e.reshape(batch, *shape))[index].reshape(-1).numpy())
    return np.stack(columns, axis=1)


PRECONDITIONERS = {
    "jacobi": lambda op: Jacobi(op),
    "ssor": lambda op: SSOR(op, omega=1.3),
    "multigrid": lambda op: MultigridPreconditioner(op, CycleSpec(dtype=torch.float64, coarsest=9)),
}


@pytest.mark.parametrize("name", sorted(PRECONDITIONERS))
def test_preconditioners_are_symmetric_positive_definite(name):
    op, _ = darcy_batch(11, 2, contrast=1e4)
    M = PRECONDITIONERS[name](op)
    for i in range(2):
        inverse = matrix_of(M, op.shape, 2, i)
        np.testing.assert_allclose(inverse, inverse.T, rtol=0, atol=1e-12 * np.abs(inverse).max())
        assert np.linalg.eigvalsh(inverse).min() > 0


def test_jacobi_is_the_inverse_diagonal():
    op, b = darcy_batch(12, 2)
    torch.testing.assert_close(Jacobi(op)(b), b / op.diagonal(), rtol=1e-15, atol=0)


@pytest.mark.parametrize("omega", [1.0, 1.5])
def test_ssor_matches_its_matrix_formula_in_red_black_order(omega):
    """M = (D/w + L) (w / (2 - w)) D^{-1} (D/w + U), with L, U the strict triangles of A
    with the unknowns numbered red first (Saad 2003, sec. 10.2)."""
    op, b = darcy_batch(10, 2)
    layout = Sublattices(op.shape)
    # Red-first numbering of the natural unknowns.
    ids = layout.split(torch.arange(1, op.unknowns + 1, dtype=torch.float64).reshape(op.shape))[:, 1:-1, 1:-1]
    order = [int(v) - 1 for s in (0, 3, 1, 2) for v in ids[s].flatten() if v > 0]
    for i in range(2):
        A = op.to_scipy(i).toarray()[np.ix_(order, order)]
        D = np.diag(np.diag(A))
        lower, upper = np.tril(A, -1), np.triu(A, 1)
        M = (D / omega + lower) @ np.linalg.inv(D) @ (D / omega + upper) * (omega / (2 - omega))
        expected = np.linalg.solve(M, b[i].numpy().ravel()[order])
        got = SSOR(op, omega)(b)[i].numpy().ravel()[order]
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_stronger_preconditioners_take_fewer_cg_iterations_to_the_same_solution():
    op, b = darcy_batch(65, 2)
    reference = np.stack([spla.spsolve(op.to_scipy(i).tocsc(), b[i].numpy().ravel()) for i in range(2)])
    counts = {}
    for name, M in [("none", None), *((n, make(op)) for n, make in PRECONDITIONERS.items())]:
        result = cg(op, b, rtol=1e-10, M=M)
        assert bool(result.converged.all()), name
        np.testing.assert_allclose(result.x.reshape(2, -1).numpy(), reference, rtol=1e-6, atol=1e-9)
        counts[name] = int(result.iterations.max())
    assert counts["multigrid"] < counts["ssor"] < counts["jacobi"] <= counts["none"], counts
    assert counts["multigrid"] <= 12, counts


def test_pyamg_adapter_solves_or_says_how_to_install_pyamg():
    op, b = darcy_batch(20, 2)
    if importlib.util.find_spec("pyamg") is None:
        with pytest.raises(PdeforgeError, match="pip install pyamg"):
            PyAMGPreconditioner(op)
        return
    result = cg(op, b, rtol=1e-10, M=PyAMGPreconditioner(op))
    assert bool(result.converged.all()) and int(result.iterations.max()) <= 20


# ----------------------------------------------------------------------------- the solver table


def solve(name: str, op: StencilOperator, b: torch.Tensor, rtol: float):
    """Through the table, as generation does: ``auto`` resolved and applicability checked."""
    return LINEAR_SOLVERS.choose(name, LinearTraits.of_operator(op)).run(op, b, rtol=rtol)


@pytest.mark.parametrize("name", sorted(set(LINEAR_SOLVERS.names) - {"dst"}))
def test_every_linear_solver_meets_rtol_and_agrees_with_the_direct_solve(name):
    """Variable coefficients with contrast 1e4 (``dst`` applies to constant ones only: tested below)."""
    op, b = darcy_batch(24, 3, contrast=1e4)
    result = solve(name, op, b, rtol=1e-9)
    assert bool(result.converged.all())
    residual = op.residual_norm(result.x, b)
    assert float(residual.max()) <= 1e-9
    torch.testing.assert_close(result.residual, residual, rtol=1e-3, atol=1e-12)
    direct = solve("direct", op, b, rtol=1e-12).x
    torch.testing.assert_close(result.x, direct, rtol=1e-4, atol=1e-8 * float(direct.abs().max()))


@pytest.mark.parametrize("name", ["auto", "pcg-ssor", "pcg-jacobi", "cg"])
def test_solvers_without_multigrid_work_in_three_dimensions(name):
    """7-point operators: ``auto`` falls back to SSOR-preconditioned CG there."""
    gen = torch.Generator().manual_seed(5)
    shape = (9, 8, 7)
    faces = []
    for d in range(3):
        size = list(shape)
        size[d] += 1
        faces.append(torch.rand((2, *size), generator=gen, dtype=torch.float64) + 0.5)
    op = StencilOperator(faces, (0.1, 0.1, 0.1))
    b = torch.randn(2, *shape, dtype=torch.float64, generator=gen)
    result = solve(name, op, b, rtol=1e-9)
    assert bool(result.converged.all())
    reference = spla.spsolve(op.to_scipy(1).tocsc(), b[1].numpy().ravel())
    np.testing.assert_allclose(result.x[1].numpy().ravel(), reference, rtol=0, atol=1e-7 * np.abs(reference).max())


def constant_operator(shape, spacing, faces, shift, batch=2):
    """``-div(a grad) + c`` with a constant ``a_d`` per axis, as :class:`StencilOperator`."""
    tensors = []
    for d, a in enumerate(faces):
        size = list(shape)
        size[d] += 1
        tensors.append(torch.full((batch, *size), a, dtype=torch.float64))
    return StencilOperator(tensors, spacing, shift)


@pytest.mark.parametrize("shape, spacing, faces, shift", [
    ((31, 31), (1 / 32, 1 / 32), (1.0, 1.0), 0.0),             # Poisson
    ((23, 40), (1 / 24, 1 / 41), (2.0, 0.5), -150.0),          # anisotropic, indefinite Helmholtz
    ((9, 8, 7), (0.1, 0.2, 0.15), (1.0, 3.0, 0.7), 4.0),       # 7-point, positive shift
])
def test_sine_transform_solve_agrees_with_spsolve(shape, spacing, faces, shift):
    op = constant_operator(shape, spacing, faces, shift)
    assert op.uniform_coefficients() == (faces, shift)
    b = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for name in ("dst", "auto"):
        result = solve(name, op, b, rtol=1e-9)
        assert bool(result.converged.all()) and float(result.residual.max()) < 1e-11
        reference = spla.spsolve(op.to_scipy(1).tocsc(), b[1].numpy().ravel())
        np.testing.assert_allclose(result.x[1].numpy().ravel(), reference, rtol=0, atol=1e-10 * np.abs(reference).max())


def test_sine_eigenvalues_are_the_spectrum_of_the_assembled_matrix():
    op = constant_operator((6, 5), (0.2, 0.25), (1.5, 0.5), -3.0, batch=1)
    lam = sine_eigenvalues(op.shape, op.spacing, (1.5, 0.5), -3.0)
    np.testing.assert_allclose(np.sort(lam.numpy().ravel()), np.linalg.eigvalsh(op.to_scipy(0).toarray()), rtol=1e-12)


def test_sine_transform_solve_refuses_variable_coefficients():
    op, b = darcy_batch(24, 2, contrast=4.0)
    assert op.uniform_coefficients() is None
    with pytest.raises(PdeforgeError, match="constant coefficients"):
        solve("dst", op, b, rtol=1e-8)
    with pytest.raises(PdeforgeError, match="constant coefficients"):
        LINEAR_SOLVERS["dst"].run(op, b, rtol=1e-8)  # the method itself refuses too, called directly
