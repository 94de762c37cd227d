"""Trajectories: steps composed between requested output times, step size per sample."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["integrate"]

StepSize = Callable[[torch.Tensor], torch.Tensor]


def integrate(method, equation, u0: torch.Tensor, times: Sequence[float], step_size: StepSize | float, *,
              t0: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance ``u0 [batch, ...]`` from ``t0`` through each of ``times``.

    At the start of every output interval, ``step_size(u)`` gives each
    sample its largest admissible step ``[batch]`` (a float means the same
    for all); the interval is cut into the fewest equal steps not longer
    than that, so output times are hit exactly and a sample's trajectory
    depends on its own state only, never on the other samples of the batch.
    An equation with a ``set_step(h)`` method is told each interval's steps
    ``[batch]`` (to monitor its stability).

    Returns
    -------
    ``([batch, len(times), ...], steps taken per sample [batch])``
    """
    batch = u0.shape[0]
    shape = (batch,) + (1,) * (u0.ndim - 1)
    real = u0.real.dtype if u0.is_complex() else u0.dtype
    out, u, t = [], u0, t0
    steps = torch.zeros(batch, dtype=torch.int64, device=u0.device)
    for target, span in zip(times, _interval_lengths(times, t0), strict=True):
        if span < -1e-12:
            raise ValueError("output times must increase")
        if span > 1e-12:
            dt = step_size(u) if callable(step_size) else step_size
            dt = torch.as_tensor(dt, dtype=real, device=u0.device).expand(batch)
            if not bool((dt > 0).all()):
                raise ValueError("time steps must be positive")
            n = torch.ceil(span / dt - 1e-9).clamp_min(1).to(torch.int64)
            h = span / n.to(real)
            if hasattr(equation, "set_step"):
                equation.set_step(h)  # lets the equation monitor its Courant number
            step = method.stepper(equation, h.reshape(shape))
            most = int(n.max())
            uniform = bool((n == most).all())
            for i in range(most):
                ti = t + i * h.reshape(shape)
                new = step(u, ti)
                u = new if uniform else torch.where((i < n).reshape(shape), new, u)
            steps += n
        t = float(target)
        out.append(u)
    return torch.stack(out, dim=1), steps


def _interval_lengths(times: Sequence[float], t0: float) -> list[float]:
    """The output intervals' lengths; equal intervals get one length, bit for bit.

    Equally spaced output times (``t_final (i + 1) / n``) differ from one
    another by amounts that vary in the last bits, so their steps would too.
    Giving them one common length lets a scheme that builds coefficients per
    step size (ETDRK4) reuse them interval after interval; the output times
    themselves are unchanged.
    """
    starts = [t0, *(float(t) for t in times[:-1])]
    spans = [float(b) - a for a, b in zip(starts, times, strict=True)]
    if len(spans) > 1 and spans[0] > 0:
        common = (float(times[-1]) - t0) / len(spans)
        if all(abs(s - common) <= 1e-12 * common for s in spans):
            return [common] * len(spans)
    return spans
