"""What a Krylov method needs from ``A`` and ``M``, and the shared per-system reductions.

Every method works on right-hand sides ``b`` of shape ``[batch, *n]``: a
batch of independent systems whose unknowns may be laid out on a grid.
:func:`as_operator` turns the usual ways of stating ``A`` into one object
with ``matvec`` on that layout, so the methods never branch on the kind of
matrix they are given.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any, Protocol, cast

import numpy as np
import scipy.sparse as sp
import torch

from pdeforge.errors import PdeforgeError
from pdeforge.solvers._result import SolveResult

__all__ = ["Callback", "KrylovProblem", "LinearOperator", "as_operator", "as_preconditioner", "batch_dot", "batch_norm",
           "default_maxiter", "per_system"]


Callback = Callable[[int, torch.Tensor, torch.Tensor], None]
"""``callback(k, x, rel_residuals)``: iteration ``k``, the iterate ``[batch, *n]`` and ``||r|| / ||b||`` ``[batch]``."""


class LinearOperator(Protocol):
    """Anything that applies ``A`` to a batch ``[batch, *n] -> [batch, *n]``."""

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for every system of the batch, ``x`` and the result ``[batch, *n]``."""
        ...


class _Callable:
    """A function ``x -> A x`` on ``[batch, *n]`` tensors."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class _Dense:
    """A dense ``[n, n]`` matrix shared by the batch, or ``[batch, n, n]`` one per system."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.matrix = matrix

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        if self.matrix.dim() == 2:
            out = flat @ self.matrix.mT
        else:
            out = torch.bmm(self.matrix, flat.unsqueeze(-1)).squeeze(-1)
        return out.reshape(x.shape)


class _Sparse:
    """A scipy sparse matrix, held as a torch CSR tensor on ``b``'s device."""

    def __init__(self, matrix: sp.spmatrix | sp.sparray, like: torch.Tensor) -> None:
        csr = sp.csr_matrix(matrix)
        csr.sort_indices()
        with warnings.catch_warnings():  # torch flags sparse CSR as beta; the product we use is stable
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.matrix = torch.sparse_csr_tensor(
                torch.as_tensor(csr.indptr.astype(np.int64)),
                torch.as_tensor(csr.indices.astype(np.int64)),
                torch.as_tensor(csr.data),
                size=csr.shape,
                check_invariants=False,  # scipy already keeps a canonical CSR
            ).to(dtype=like.dtype, device=like.device)

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        return (self.matrix @ flat.mT).mT.reshape(x.shape)


def as_operator(A: Any, like: torch.Tensor) -> LinearOperator:
    """``A`` as an object with ``matvec`` on ``[batch, *n]`` tensors like ``like``.

    Parameters
    ----------
    A
        An object with ``matvec`` (e.g. :class:`~pdeforge.problems.StencilOperator`),
        a callable ``x -> A x``, a dense torch matrix ``[n, n]`` (one matrix
        for the whole batch) or ``[batch, n, n]``, or a scipy sparse matrix
        (converted once to a torch sparse CSR tensor on ``like``'s device).
    like
        A right-hand side: fixes dtype, device and the number of unknowns.

    Examples
    --------
    >>> A = torch.tensor([[2.0, 1.0], [0.0, 3.0]], dtype=torch.float64)
    >>> as_operator(A, torch.ones(1, 2, dtype=torch.float64)).matvec(torch.ones(1, 2, dtype=torch.float64))
    tensor([[3., 3.]], dtype=torch.float64)
    """
    n = like[0].numel()
    if hasattr(A, "matvec"):
        return A
    if isinstance(A, torch.Tensor):
        if A.dim() not in (2, 3) or A.shape[-1] != n or A.shape[-2] != n:
            raise PdeforgeError(f"matrix of shape {tuple(A.shape)} does not act on {n} unknowns")
        if A.dim() == 3 and A.shape[0] != like.shape[0]:
            raise PdeforgeError(f"{A.shape[0]} matrices for a batch of {like.shape[0]} right-hand sides")
        return _Dense(A.to(dtype=like.dtype, device=like.device))
    if sp.issparse(A):
        if A.shape != (n, n):
            raise PdeforgeError(f"sparse matrix of shape {A.shape} does not act on {n} unknowns")
        return _Sparse(A, like)
    if callable(A):  # taken on trust to map a tensor to a tensor of the same layout
        return _Callable(cast(Callable[[torch.Tensor], torch.Tensor], A))
    raise PdeforgeError(f"cannot use an object of type {type(A).__name__} as a linear operator")


def as_preconditioner(M: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``M`` as a callable ``r -> M^{-1} r`` (``None`` stays ``None``: the identity)."""
    if M is None:
        return None
    if hasattr(M, "matvec"):
        return M.matvec
    if callable(M):  # taken on trust to map a tensor to a tensor of the same layout
        return cast(Callable[[torch.Tensor], torch.Tensor], M)
    raise PdeforgeError(f"cannot use an object of type {type(M).__name__} as a preconditioner")


ROW_DOT_MIN = 2**14
"""Unknowns per system from which :func:`batch_dot` takes one BLAS dot per system on the CPU."""


def batch_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Inner product of each system's unknowns: ``[batch, *n] x [batch, *n] -> [batch]``.

    ``conj(x) . y`` per system. On the CPU, systems of at least
    :data:`ROW_DOT_MIN` unknowns take one BLAS dot each: it reads the two
    vectors once, where the batched reduction first writes their product
    to a new tensor as large as ``x``, whose fresh pages cost as much as
    the product itself (2.6x slower for 12 systems of 255^2). Which way a
    system goes depends only on its size, never on the batch, so its bits
    do not depend on the batch it is solved in.
    """
    xf, yf = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    if x.device.type == "cpu" and xf.shape[1] >= ROW_DOT_MIN and xf.dtype == yf.dtype:
        return torch.stack([torch.vdot(u, v) for u, v in zip(xf, yf, strict=True)])
    return torch.linalg.vecdot(xf, yf)


def batch_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each system's unknowns ``[batch]``."""
    return torch.linalg.vector_norm(x.reshape(x.shape[0], -1), dim=1)


def default_maxiter(b: torch.Tensor, maxiter: int | None) -> int:
    """``maxiter`` or, when ``None``, ten times the number of unknowns (scipy's default for CG)."""
    if maxiter is None:
        return 10 * b[0].numel()
    if maxiter < 0:
        raise PdeforgeError(f"maxiter must be non-negative, got {maxiter}")
    return int(maxiter)


def _takes_out(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts an ``out`` keyword (a product it can write into a given buffer)."""
    try:
        return "out" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def per_system(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A ``[batch]`` tensor shaped ``[batch, 1, ...]`` to broadcast against ``like`` (``[batch, *n]``)."""
    return s.reshape(-1, *([1] * (like.dim() - 1)))


class KrylovProblem:
    """The arguments every Krylov method normalises the same way, and the counts it keeps.

    Parameters
    ----------
    A, b, x0, rtol, maxiter, M
        As in the common signature of :mod:`pdeforge.solvers.krylov`.

    Attributes
    ----------
    op
        ``A`` as a :class:`LinearOperator` (:func:`as_operator`).
    precond
        ``M`` as a callable ``r -> M^{-1} r``, or ``None`` for the identity.
    maxiter
        The iteration limit (:func:`default_maxiter`).
    x
        The iterate ``[batch, *n]``: a copy of ``x0``, or zeros.
    scale
        ``||b||`` per system, 1 where ``b = 0`` (so relative residuals are defined).
    iterations
        ``[batch]`` iterations taken by each system.
    matvecs
        Products with ``A`` for the whole batch.
    """

    def __init__(self, A: Any, b: torch.Tensor, x0: torch.Tensor | None, rtol: float, maxiter: int | None,
                 M: Any) -> None:
        self.op = as_operator(A, b)
        self.precond = as_preconditioner(M)
        self.b, self.shape, self.rtol = b, b.shape, rtol
        self.maxiter = default_maxiter(b, maxiter)
        self.has_guess = x0 is not None
        self.x = torch.zeros_like(b) if x0 is None else x0.clone()
        b_norm = batch_norm(b)
        self.scale = torch.where(b_norm > 0, b_norm, torch.ones_like(b_norm))
        self.iterations = torch.zeros(b.shape[0], dtype=torch.int64, device=b.device)
        self.matvecs = 0
        self._writes_into = (_takes_out(self.op.matvec), self.precond is not None and _takes_out(self.precond))

    def product(self, x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """``A x``, written into ``out`` when there is one and the operator's ``matvec`` takes ``out=``.

        For methods that need one product per iteration and drop the
        previous one: reusing its buffer spares the page faults of a new
        vector each iteration. Counts the product.
        """
        self.matvecs += 1
        if out is not None and self._writes_into[0]:
            return self.op.matvec(x, out=out)  # type: ignore[call-arg]
        return self.op.matvec(x)

    def precondition(self, r: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
        """``M^{-1} r`` (``r`` itself without ``M``), into ``out`` when ``M`` takes ``out=`` (as :meth:`product`)."""
        if self.precond is None:
            return r
        if out is not None and self._writes_into[1]:
            return self.precond(r, out=out)  # type: ignore[call-arg]
        return self.precond(r)

    def true_residual(self, out: torch.Tensor | None = None) -> torch.Tensor:
        """``b - A x`` in the layout of ``b`` (one product with ``A``), in ``out`` as :meth:`product` allows."""
        Ax = self.product(self.x, out)
        if out is not None and Ax is out:
            return torch.sub(self.b, Ax, out=out)
        return self.b - Ax

    def initial_residual(self) -> torch.Tensor:
        """The residual of the initial guess: ``b`` itself (no product) when no ``x0`` was given."""
        return self.true_residual() if self.has_guess else self.b.clone()

    def result(self, history: torch.Tensor, extra: dict | None = None) -> SolveResult:
        """The :class:`SolveResult`; a system converged if its last relative residual meets ``rtol``.

        ``history`` is ``[max_iterations + 1, batch]``; ``extra`` joins ``{"matvecs": ...}``.
        """
        final = history[self.iterations, torch.arange(self.b.shape[0], device=self.b.device)]
        extra = {"matvecs": self.matvecs, **(extra or {})}
        return SolveResult(x=self.x, iterations=self.iterations, history=history, converged=final <= self.rtol,
                            extra=extra)
