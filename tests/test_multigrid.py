"""Geometric multigrid: stencils, layouts, transfers and Galerkin operators against
assembled scipy matrices; the V-cycle as a symmetric preconditioner; MG-PCG against
spsolve, with an iteration count that does not grow with resolution."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from pdeforge.errors import PdeforgeError
from pdeforge.grids import Grid
from pdeforge.problems import Darcy, DarcyConfig, StencilOperator
from pdeforge.problems.darcy import darcy_operator
from pdeforge.solvers import pcg_mg
from pdeforge.solvers.krylov import cg
from pdeforge.solvers.krylov._operator import ROW_DOT_MIN, batch_dot
from pdeforge.solvers.multigrid import (
    ColouredGaussSeidel,
    CycleSpec,
    Interpolation,
    Level,
    Multigrid,
    SplitStencil,
    Stencil,
    Sublattices,
    galerkin,
)


def darcy_ops(resolution: int, count: int, *, contrast: float = 4.0, seed: int = 0) -> StencilOperator:
    """FNO-style piecewise-constant Darcy operators with values 3 and 3 * contrast."""
    problem = Darcy(DarcyConfig(resolution=resolution, high=3.0 * contrast, low=3.0))
    return darcy_operator(problem.sample_inputs(seed, range(count))["coefficient"], problem.grid)


def random_operator(shape: tuple[int, ...], batch: int, *, shift: bool = True) -> StencilOperator:
    """Random positive face coefficients (and a random nonnegative shift) on a box of any dimension."""
    gen = torch.Generator().manual_seed(sum(shape))
    faces = []
    for d in range(len(shape)):
        size = list(shape)
        size[d] += 1
        faces.append(torch.rand((batch, *size), generator=gen, dtype=torch.float64) * 10 + 0.1)
    c = torch.rand((batch, *shape), generator=gen, dtype=torch.float64) if shift else 0.0
    return StencilOperator(faces, tuple(1.0 / (n + 1) for n in shape), c)


def unsmoothed_level(fine: SplitStencil) -> Level:
    """A V-cycle level with no pre-smoothing, so its residual (and restriction) covers every colour."""
    return Level(fine, ColouredGaussSeidel(fine), Interpolation(fine), pre=[])


def prolongation_matrix(level: Level, index: int) -> np.ndarray:
    """Columns ``P e_c`` of system ``index``: the V-cycle's ``x += P correction`` of each coarse unit vector."""
    my, mx = level.interpolation.shape
    columns = []
    for c in range(my * mx):
        level.x.zero_()
        level.coarse_solution.zero_()
        level.coarse_solution[index, c // mx, c % mx] = 1.0
        level.prolong_correction()
        columns.append(level.A.layout.merge(level.x)[index].numpy().ravel().copy())
    level.x.zero_()
    level.coarse_solution.zero_()
    return np.stack(columns, axis=1)


def restricted_residual(level: Level, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The V-cycle's ``P^T (b - A x)`` (natural layouts in and out)."""
    level.x.copy_(level.A.layout.split(x))
    level.b.copy_(level.A.layout.split(b))
    level.restrict_residual()
    return level.coarse_rhs.clone()


# ----------------------------------------------------------------------------- stencils and layout


@pytest.mark.parametrize("shape", [(9, 7), (6, 5, 4)])
def test_stencil_operator_in_any_dimension_matches_its_scipy_matrix(shape):
    """2-D 5-point and 3-D 7-point operators: matvec, diagonal and the compact stencil
    all agree with the assembled matrix, which is symmetric."""
    op = random_operator(shape, 2)
    stencil = Stencil.from_operator(op)
    assert len(stencil.offsets) == 2 * len(shape) + 1
    u = torch.randn(2, *shape, dtype=torch.float64)
    for i in range(2):
        A = op.to_scipy(i)
        assert abs(A - A.T).max() == 0
        assert abs(stencil.to_scipy(i) - A).max() < 1e-12 * abs(A).max()
        Au = A @ u[i].numpy().ravel()
        np.testing.assert_allclose(op.matvec(u)[i].numpy().ravel(), Au, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(stencil.matvec(u)[i].numpy().ravel(), Au, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(op.diagonal()[i].numpy().ravel(), A.diagonal(), rtol=1e-14)


@pytest.mark.parametrize("shape", [(7, 7), (8, 5), (6, 5, 4)])
def test_split_layout_is_a_permutation_and_carries_the_operator(shape):
    layout = Sublattices(shape)
    u = torch.randn(3, *shape, dtype=torch.float64)
    split = layout.split(u)
    assert torch.equal(layout.merge(split), u)
    # Nothing else lives in the split array: it holds exactly the values of u, and zeros.
    assert torch.equal(layout.split(layout.merge(split)), split)
    torch.testing.assert_close(split.abs().sum(), u.abs().sum(), rtol=1e-14, atol=0)
    op = random_operator(shape, 3)
    A = SplitStencil.from_stencil(Stencil.from_operator(op))
    torch.testing.assert_close(layout.merge(A.apply(split)), op.matvec(u), rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(A.to_stencil().matvec(u), op.matvec(u), rtol=1e-12, atol=1e-10)


# ----------------------------------------------------------------------------- transfers and Galerkin


@pytest.mark.parametrize("resolution, contrast", [(12, 4.0), (13, 1e4)])
def test_galerkin_coarse_operators_equal_rap_assembled_with_scipy(resolution, contrast):
    """Two levels deep, odd and even sizes: the stencil-algebra coarse operator is P^T A P
    of the assembled matrices, and restriction is the transpose of prolongation."""
    op = darcy_ops(resolution, 2, contrast=contrast)
    fine = SplitStencil.from_stencil(Stencil.from_operator(op))
    for _ in range(2):
        level = unsmoothed_level(fine)
        coarse = galerkin(fine, level.interpolation)
        x = torch.randn(2, *fine.shape, dtype=torch.float64)
        b = torch.randn(2, *fine.shape, dtype=torch.float64)
        restricted = restricted_residual(level, x, b)
        for i in range(2):
            P = prolongation_matrix(level, i)
            A = fine.to_stencil().to_scipy(i).toarray()
            rap = P.T @ A @ P
            np.testing.assert_allclose(coarse.to_scipy(i).toarray(), rap, rtol=0, atol=1e-12 * np.abs(rap).max())
            r = b[i].numpy().ravel() - A @ x[i].numpy().ravel()
            np.testing.assert_allclose(restricted[i].numpy().ravel(), P.T @ r, rtol=1e-12, atol=1e-12)
        fine = SplitStencil.from_stencil(coarse)


def test_operator_dependent_interpolation_reproduces_constants_and_follows_jumps():
    """Away from the boundary each row of P sums to one (a zero-row-sum operator's
    null space is kept), and across a coefficient jump the weights lean to the stiff side."""
    n = 15
    a = torch.ones(1, n + 2, n + 2, dtype=torch.float64)
    a[:, :, 7:] = 1e4  # stiff from interior column 6 on
    op = darcy_operator(a, Grid((n + 2, n + 2), boundary="dirichlet"))
    level = unsmoothed_level(SplitStencil.from_stencil(Stencil.from_operator(op)))
    P = prolongation_matrix(level, 0)
    rows = P.sum(1).reshape(n, n)
    np.testing.assert_allclose(rows[1:-1, 1:-1], 1.0, atol=1e-12)
    # Fine node (3, 6) sits between coarse columns 5 (across a soft face) and 7 (across a stiff one).
    my, mx = level.interpolation.shape
    weights = P.reshape(n, n, my, mx)[3, 6, 1]
    assert weights[3] > 0.99 and weights[2] < 0.01  # the flux continuity across the jump


# ----------------------------------------------------------------------------- the cycle


def gauss_seidel(A: np.ndarray, colour: np.ndarray, order: list[int], x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense Gauss-Seidel, one colour block at a time (a colour's nodes do not couple to each other)."""
    x = x.copy()
    for s in order:
        block = colour == s
        assert np.count_nonzero(A[np.ix_(block, block)] - np.diag(A.diagonal()[block])) == 0
        x[block] = (b[block] - A[np.ix_(block, ~block)] @ x[~block]) / A.diagonal()[block]
    return x


@pytest.mark.parametrize("resolution", [20, 23])
def test_v_cycle_smoothing_and_restriction_match_dense_gauss_seidel_and_p_transpose(resolution):
    """The finest level of the V-cycle as generation builds it: pre-smoothing from zero and
    post-smoothing from any x are coloured Gauss-Seidel on the assembled matrix; after the
    pre-smoothing the residual is zero on the colours it skips, so its restriction is P^T (b - A x)."""
    op = darcy_ops(resolution, 2, contrast=1e2)
    mg = Multigrid(op, CycleSpec(dtype=torch.float64, coarsest=16))
    level, layout = mg.levels[0], mg.layout
    assert set(level.live) < set(range(4))  # the cycle does skip colours
    marks = layout.zeros((1,), level.b)
    for s in range(4):
        marks[:, s] = s
    colour = layout.merge(marks)[0].numpy().ravel()
    b = torch.randn(2, *op.shape, dtype=torch.float64)
    x = torch.randn(2, *op.shape, dtype=torch.float64)
    P = [prolongation_matrix(unsmoothed_level(level.A), i) for i in range(2)]

    level.b.copy_(layout.split(b))
    level.x.zero_()
    level.relax(level.pre, zero_start=True)
    smoothed = layout.merge(level.x).clone()
    level.restrict_residual()
    level.x.copy_(layout.split(x))
    level.relax(level.pre[::-1])
    post = layout.merge(level.x).clone()
    for i in range(2):
        A, bi = op.to_scipy(i).toarray(), b[i].numpy().ravel()
        ref = gauss_seidel(A, colour, level.pre, np.zeros_like(bi), bi)
        np.testing.assert_allclose(smoothed[i].numpy().ravel(), ref, rtol=1e-12, atol=1e-12)
        residual = bi - A @ ref
        skipped = ~np.isin(colour, level.live)
        np.testing.assert_allclose(residual[skipped], 0.0, atol=1e-12 * np.abs(bi).max())
        np.testing.assert_allclose(level.coarse_rhs[i].numpy().ravel(), P[i].T @ residual, rtol=1e-10, atol=1e-12)
        ref = gauss_seidel(A, colour, level.pre[::-1], x[i].numpy().ravel(), bi)
        np.testing.assert_allclose(post[i].numpy().ravel(), ref, rtol=1e-12, atol=1e-12)



@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_v_cycle_is_symmetric_positive_definite(dtype, tol):
    op = darcy_ops(40, 3, contrast=1e4)
    mg = Multigrid(op, CycleSpec(dtype=dtype, coarsest=16))
    assert len(mg.shapes) >= 3
    x = torch.randn(3, *op.shape, dtype=torch.float64)
    y = torch.randn(3, *op.shape, dtype=torch.float64)
    xMy, yMx = (x * mg(y)).sum((1, 2)), (y * mg(x)).sum((1, 2))
    torch.testing.assert_close(xMy, yMx, rtol=tol, atol=0)
    assert bool(((x * mg(x)).sum((1, 2)) > 0).all())


def test_v_cycle_alone_converges_as_a_stationary_iteration():
    """x <- x + M (b - A x) contracts the error by a resolution-independent factor."""
    factors = []
    for resolution in (33, 129):
        op = darcy_ops(resolution, 2)
        mg = Multigrid(op, CycleSpec(dtype=torch.float64))
        b = torch.randn(2, *op.shape, dtype=torch.float64)
        x = torch.zeros_like(b)
        norms = []
        for _ in range(6):
            x = x + mg(b - op.matvec(x))
            norms.append(op.residual_norm(x, b))
        factors.append(float((norms[-1] / norms[-2]).max()))
    assert max(factors) < 0.2, factors


def test_multigrid_is_two_dimensional():
    with pytest.raises(PdeforgeError, match="2-D"):
        Multigrid(random_operator((5, 5, 5), 1))


# ----------------------------------------------------------------------------- MG-PCG


def spsolve_all(op: StencilOperator, b: torch.Tensor) -> torch.Tensor:
    return torch.stack([
        torch.as_tensor(spla.spsolve(op.to_scipy(i).tocsc(), b[i].numpy().ravel())).reshape(op.shape)
        for i in range(op.batch)
    ])


@pytest.mark.parametrize("contrast", [4.0, 1e4])
def test_mg_pcg_matches_spsolve_on_batched_darcy_systems(contrast):
    op = darcy_ops(49, 5, contrast=contrast, seed=1)
    b = torch.randn(5, *op.shape, dtype=torch.float64)
    result = pcg_mg(op, b, rtol=1e-10, chunk=2)
    assert bool(result.converged.all())
    assert float(op.residual_norm(result.x, b).max()) <= 1e-10
    ref = spsolve_all(op, b)
    error = (result.x - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)
    # The error is bounded by cond(A) * rtol; contrast enters cond(A).
    assert float(error.max()) < 1e-10 * 1e3 * contrast


@pytest.mark.parametrize("contrast", [4.0, 1e4])
def test_mg_pcg_iterations_stay_flat_from_63_to_255_unknowns_per_side(contrast):
    counts = {}
    for resolution in (65, 257):
        op = darcy_ops(resolution, 2, contrast=contrast)
        result = pcg_mg(op, torch.ones(2, *op.shape, dtype=torch.float64), rtol=1e-8)
        assert bool(result.converged.all())
        counts[resolution] = int(result.iterations.max())
    assert counts[257] <= 1.3 * counts[65], counts
    assert counts[257] <= 15, counts


@pytest.mark.parametrize("shape", [(419, 419), (40, 57)])
def test_mg_pcg_handles_any_interior_size(shape):
    """Coarse nodes at odd fine indices coarsen every size: 419 = 421 - 2 (the FNO grid), and even, unequal sides."""
    op = random_operator(shape, 2, shift=False)
    b = torch.randn(2, *shape, dtype=torch.float64)
    result = pcg_mg(op, b, rtol=1e-8)
    assert bool(result.converged.all()) and int(result.iterations.max()) <= 20
    assert float(op.residual_norm(result.x, b).max()) <= 1e-8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mg_pcg_runs_on_cuda_and_agrees_with_the_cpu():
    op = darcy_ops(65, 2)
    b = torch.randn(2, *op.shape, dtype=torch.float64)
    gpu = StencilOperator([f.cuda() for f in op.faces], op.spacing)
    result = pcg_mg(gpu, b.cuda(), rtol=1e-10)
    assert result.x.device.type == "cuda"
    torch.testing.assert_close(result.x.cpu(), pcg_mg(op, b, rtol=1e-10).x, rtol=1e-7, atol=1e-9)


# ----------------------------------------------------------------------------- the lean cycle (issue 11)


@pytest.mark.parametrize("shape", [(7, 8), (9, 9), (6, 5), (5, 6, 7)])
def test_split_stencil_from_faces_equals_the_split_natural_stencil(shape):
    op = random_operator(shape, 2)
    for dtype, tol in ((torch.float64, 1e-14), (torch.float32, 1e-6)):
        direct = SplitStencil.from_operator(op, dtype)
        reference = SplitStencil.from_stencil(Stencil.from_operator(op, dtype))
        assert direct.offsets == reference.offsets
        scale = float(reference.coeffs.abs().max())
        assert float((direct.coeffs - reference.coeffs).abs().max()) <= tol * scale


class _Plain(ColouredGaussSeidel):
    """The same smoother with neither shortcut: every colour zeroed first and corrected after."""

    def stale_reads(self, schedule, *, zero_start=False):
        return set(self.steps)

    def overwritten(self, schedule):
        return set()


@pytest.mark.parametrize("pattern", ["rbr", "rb", "br", "rbrb"])
def test_cycle_that_skips_lost_corrections_and_needless_zeroing_is_the_plain_cycle_bit_for_bit(pattern):
    op = darcy_ops(65, 2, contrast=10.0)
    mg = Multigrid(op, CycleSpec(smoothing=pattern, dtype=torch.float64))
    # On the red-black fine grid, one colour is relaxed before anything reads it after the correction.
    assert len(mg.levels[0].skipped) == 2 and not mg.levels[0]._stale
    plain = [Level(lv.A, _Plain(lv.A), lv.interpolation, lv.pre) for lv in mg.levels]
    for fine, coarse in zip(plain, plain[1:], strict=False):
        fine.link(coarse)
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):  # twice: what the first cycle leaves in the buffers must not leak into the second
        r = mg.layout.split(torch.randn(2, *op.shape, generator=gen, dtype=torch.float64))
        z = mg.cycle(r)
        mg.levels, kept = plain, mg.levels
        z_plain = mg.cycle(r)
        mg.levels = kept
        assert torch.equal(z, z_plain)


def test_cg_writing_into_its_own_buffers_is_bitwise_cg_on_plain_callables():
    op = darcy_ops(33, 3, contrast=10.0)
    A = SplitStencil.from_operator(op)
    mg = Multigrid(A)
    b = A.layout.split(torch.ones(3, *op.shape, dtype=torch.float64))
    fast = cg(A, b, rtol=1e-10, M=mg.cycle)  # A.apply and mg.cycle take out=
    plain = cg(lambda x: A.apply(x), b, rtol=1e-10, M=lambda r: mg.cycle(r))
    assert torch.equal(fast.x, plain.x) and torch.equal(fast.iterations, plain.iterations)
    assert float((A.layout.merge(b) - A.layout.merge(A.apply(fast.x))).norm()) <= 1e-10 * float(b.norm())


def test_batch_dot_per_system_path_agrees_with_the_batched_reduction_and_ignores_the_batch():
    gen = torch.Generator().manual_seed(2)
    n = int(ROW_DOT_MIN**0.5) + 1
    x, y = (torch.randn(3, n, n, generator=gen, dtype=torch.float64) for _ in range(2))
    reference = (x * y).sum(dim=(1, 2))
    torch.testing.assert_close(batch_dot(x, y), reference, rtol=1e-12, atol=0)
    assert torch.equal(batch_dot(x[1:2], y[1:2]), batch_dot(x, y)[1:2])
    z = torch.randn(2, n, n, generator=gen, dtype=torch.complex128)
    torch.testing.assert_close(batch_dot(z, z).real, (z.abs() ** 2).sum(dim=(1, 2)), rtol=1e-12, atol=0)
