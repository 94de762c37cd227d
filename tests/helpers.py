"""Declarative assertions about numerical mathematics, shared by the tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def observed_order(sizes: Sequence[float], errors: Sequence[float]) -> float:
    """Least-squares slope of log(error) against log(size)."""
    slope, _ = np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(errors, float)), 1)
    return float(slope)


def assert_converges(
    sizes: Sequence[float], error: Callable[[float], float], *, order: float, tol: float = 0.25
) -> list[float]:
    """Errors at the given step sizes fall like ``size**order`` (log-log slope within ``tol``)."""
    errors = [float(error(h)) for h in sizes]
    assert all(np.isfinite(errors)), errors
    slope = observed_order(sizes, errors)
    assert abs(slope - order) <= tol, f"observed order {slope:.3f}, expected {order} (errors {errors})"
    return errors


def one_line_error(result, *fragments: str) -> str:
    """Assert a CLI result failed with exactly one ``error:`` line holding every fragment; return that line."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
