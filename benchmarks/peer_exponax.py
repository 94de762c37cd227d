"""pdeforge's periodic 1-D problems against exponax's ETDRK steppers (APEBench's solver), CPU jax, float64.

Run:  .bench-venv/bin/python benchmarks/peer_exponax.py [--problems burgers] [--repeats 3]

What is compared, per problem, from the same initial condition (pdeforge's
sampler draws it, seed 0; the very same nodal array is handed to exponax),
with the same parameters and the same stored times ``t_final (i + 1) /
n_times``, on the same ``n``-point periodic grid of length ``L``:

* ``burgers``: ``u_t + (u^2 / 2)_x = nu u_xx`` on ``[0, 1)``, ``nu = 0.1``,
  the FNO prior (pdeforge's ``burgers`` defaults), ``n = 1024``. pdeforge:
  ``Burgers`` (ETDRK4, 2/3 rule) at fixed steps ``dt`` and at its default
  adaptive step (``cfl = 0.5``). exponax: ``stepper.Burgers(1, 1.0, n, dt,
  diffusivity=nu, order=4, conservative=True)`` (ETDRK4 with contour-integral
  coefficients, 2/3 dealiasing), ``jax.vmap``-ed over the batch and
  ``jax.jit``-ed; compile time excluded (one warm-up call), timings end with
  ``block_until_ready``. Both use the domain's own units: no rescaling.
* ``kuramoto-sivashinsky``: ``u_t + (u^2/2)_x + u_xx + u_xxxx = 0`` on
  ``[0, 60)``, ``n = 128``, ``t <= 10`` (pdeforge's defaults but a shorter
  horizon: the dynamics are chaotic, so differences grow like ``e^(0.1 t)``).
  exponax: ``KuramotoSivashinskyConservative(1, 60, n, dt, order=4)``.
* ``kdv``: ``u_t + 6 u u_x + u_xxx = 0`` on ``[0, 20)``, ``n = 256``,
  ``t <= 1``. exponax: ``KortewegDeVries(1, 20, n, dt, convection_scale=6,
  hyper_diffusivity=0, conservative=True, order=4)``.

* ``gray-scott``: ``u_t = Du Lap u - u v^2 + F (1 - u)``,
  ``v_t = Dv Lap v + u v^2 - (F + k) v`` on the periodic square of side 2.5,
  Pearson's ``Du = 2e-5, Dv = 1e-5`` and the ``gamma`` preset ``F = 0.022,
  k = 0.051``, ``n = 64``, ``t <= 200`` (pdeforge's Pearson-patch initial
  state, both species). exponax: ``reaction.GrayScott(2, 2.5, n, dt, ...,
  order=4, dealiasing_fraction=2/3)`` (pdeforge's 2/3 truncation; exponax's
  default is 1/2).

For each step size both solvers' trajectories are compared with each other
(agreement at equal ``dt``) and with a fine pdeforge reference; cost is wall
time per sample (the whole trajectory), pdeforge batched as ``generate``
batches it. The equal-error ratio interpolates log cost against log error.

Prints one table per problem and writes ``benchmarks/results/peer_exponax.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peer_common import (  # noqa: E402 - the benchmark helpers sit beside this script
    configure_threads,
    cost_at_error,
    enable_jax_float64,
    environment,
    equal_error_levels,
    median_seconds,
    relative_l2,
    table,
    write_json,
)


@dataclass(frozen=True)
class Case:
    """One pdeforge problem and its exponax counterpart.

    ``substeps`` are the swept steps per output interval, ``reference_substeps``
    the fine reference's; ``params`` are the pdeforge config fields both sides use.
    """

    name: str
    params: dict = field(default_factory=dict)
    substeps: tuple[int, ...] = (1, 2, 4, 8, 16)
    reference_substeps: int = 256
    spatial_dims: int = 1
    channels: bool = False
    """Whether the state has a species axis (``[2, *grid]``) instead of exponax's added one."""


CASES = {
    "burgers": Case("burgers", dict(resolution=1024, nu=0.1, t_final=1.0, n_times=10),
                    substeps=(10, 20, 40, 80, 160), reference_substeps=1280),
    "kuramoto-sivashinsky": Case("kuramoto-sivashinsky", dict(resolution=128, length=60.0, nu=1.0, t_final=10.0,
                                                             n_times=10),
                                 substeps=(2, 4, 8, 16, 32), reference_substeps=256),
    "kdv": Case("kdv", dict(resolution=256, length=20.0, t_final=1.0, n_times=10),
                substeps=(25, 50, 100, 200, 400), reference_substeps=1600),
    "gray-scott": Case("gray-scott", dict(resolution=64, length=2.5, diffusivity_u=2e-5, diffusivity_v=1e-5,
                                          feed=0.022, kill=0.051, t_final=200.0, n_times=10),
                       substeps=(1, 2, 4, 8, 16), reference_substeps=128, spatial_dims=2, channels=True),
}


def pdeforge_problem(case: Case, dt: float | None):
    from pdeforge.problems import PROBLEMS

    cls = PROBLEMS[case.name]
    return cls(cls.Config(**case.params, dt=dt, cfl_limit=10.0))


def pdeforge_runner(case: Case, dt: float | None, u0):
    from pdeforge.solvers import method_for

    problem = pdeforge_problem(case, dt)
    method = method_for(problem)
    name = problem.inputs[0].name
    output = problem.outputs[0].name

    def run():
        return problem.solve({name: u0}, method).outputs[output].numpy()

    return run


def exponax_stepper(case: Case, dt: float, order: int = 4):
    """exponax's stepper for ``case`` with step ``dt`` and ETDRK ``order`` (state ``[1, n]``)."""
    import exponax

    p = case.params
    if case.name == "burgers":
        return exponax.stepper.Burgers(1, 1.0, p["resolution"], dt, diffusivity=p["nu"], order=order,
                                       conservative=True, dealiasing_fraction=2 / 3)
    if case.name == "kuramoto-sivashinsky":
        return exponax.stepper.KuramotoSivashinskyConservative(
            1, p["length"], p["resolution"], dt, convection_scale=1.0, second_order_scale=1.0,
            fourth_order_scale=p["nu"], conservative=True, dealiasing_fraction=2 / 3, order=order)
    if case.name == "kdv":
        # exponax writes u_t + b1 (u^2/2)_x + a3 u_xxx = 0; pdeforge's 6 u u_x is b1 = +6 (exponax's default
        # -6 is the u_t - 6 u u_x + u_xxx = 0 convention), and exponax's default hyper-diffusion 0.01 is off.
        return exponax.stepper.KortewegDeVries(1, p["length"], p["resolution"], dt, convection_scale=6.0,
                                               diffusivity=0.0, dispersivity=1.0, hyper_diffusivity=0.0,
                                               conservative=True, order=order, dealiasing_fraction=2 / 3)
    if case.name == "gray-scott":
        # exponax: u_t = nu1 Lap u + f (1 - u) - u v^2, v_t = nu2 Lap v - (f + k) v + u v^2, pdeforge's equations;
        # pdeforge truncates to 2/3 before and after the cubic reaction, so exponax gets the same fraction.
        return exponax.stepper.reaction.GrayScott(2, p["length"], p["resolution"], dt, diffusivity_1=p["diffusivity_u"],
                                                  diffusivity_2=p["diffusivity_v"], feed_rate=p["feed"],
                                                  kill_rate=p["kill"], order=order, dealiasing_fraction=2 / 3)
    raise SystemExit(f"no exponax counterpart for {case.name}")


def exponax_runner(case: Case, dt: float, u0: np.ndarray, order: int = 4):
    """A jitted exponax trajectory of the batch ``u0`` ([B, n]); returns the warm closure."""
    import jax
    import jax.numpy as jnp

    p = case.params
    stepper = exponax_stepper(case, dt, order)
    interval = p["t_final"] / p["n_times"]
    steps = round(interval / dt)
    if not math.isclose(steps * dt, interval, rel_tol=1e-9):
        raise SystemExit(f"dt {dt} does not divide the output interval {interval}")

    def trajectory(u):
        def advance(state, _):
            state = jax.lax.fori_loop(0, steps, lambda _, s: stepper(s), state)
            return state, state if case.channels else state[0]
        _, frames = jax.lax.scan(advance, u if case.channels else u[None], None, length=p["n_times"])
        return frames

    solve = jax.jit(jax.vmap(trajectory))
    u0_jax = jnp.asarray(u0)
    solve(u0_jax).block_until_ready()  # compile and warm up

    def run():
        return np.asarray(solve(u0_jax).block_until_ready())

    return run


def compare(case: Case, args) -> dict:
    import torch

    p = case.params
    n_points = p["resolution"] ** case.spatial_dims
    batch = args.batch or max(2, 2**14 // n_points)  # generate's default batch (2^14 points), at least 2
    interval = p["t_final"] / p["n_times"]
    ref_dt = interval / case.reference_substeps
    u0 = pdeforge_problem(case, ref_dt).sample_inputs(args.seed, range(batch))
    u0 = next(iter(u0.values())).to(torch.float64)
    print(f"\n## {case.name} {p}: batch {batch}, reference dt {ref_dt:.3g}", flush=True)
    reference = pdeforge_runner(case, ref_dt, u0)()
    peer_reference = exponax_runner(case, ref_dt, u0.numpy(), args.exponax_order)()
    floor = relative_l2(peer_reference, reference)
    print(f"exponax at dt_ref vs pdeforge at dt_ref: relative L2 {floor:.2e}", flush=True)

    rows = []
    for k in (*case.substeps, None):
        dt = None if k is None else interval / k
        ours_run = pdeforge_runner(case, dt, u0)
        ours = ours_run()
        ours_s = median_seconds(ours_run, args.repeats)
        default = f"cfl {pdeforge_problem(case, None).config.cfl:g} (default)"
        row = dict(dt=default if dt is None else f"{dt:.4g}",
                   pdeforge_error=relative_l2(ours, reference), pdeforge_ms=1e3 * ours_s / batch)
        if dt is not None:
            theirs_run = exponax_runner(case, dt, u0.numpy(), args.exponax_order)
            theirs = theirs_run()
            theirs_s = median_seconds(theirs_run, args.repeats)
            row.update(exponax_error=relative_l2(theirs, reference), exponax_ms=1e3 * theirs_s / batch,
                       agreement=relative_l2(theirs, ours), time_ratio=theirs_s / ours_s)
        rows.append(row)
        print(row, flush=True)

    def points(solver: str) -> list[tuple[float, float]]:
        return [(r[f"{solver}_error"], r[f"{solver}_ms"]) for r in rows if "exponax_ms" in r]

    equal = []
    for level in equal_error_levels(points("pdeforge"), points("exponax"), count=3, floor=10 * floor):
        ours, theirs = cost_at_error(points("pdeforge"), level), cost_at_error(points("exponax"), level)
        if ours is not None and theirs is not None:
            equal.append(dict(error=level, pdeforge_ms=ours, exponax_ms=theirs, speedup=theirs / ours))

    def fmt(r: dict, key: str, spec: str) -> str:
        return format(r[key], spec) if key in r else ""

    print(table([(r["dt"], fmt(r, "agreement", ".2e"), fmt(r, "pdeforge_error", ".2e"), fmt(r, "exponax_error", ".2e"),
                  fmt(r, "pdeforge_ms", ".1f"), fmt(r, "exponax_ms", ".1f"), fmt(r, "time_ratio", ".2f"))
                 for r in rows],
                ["dt", "agreement (rel. L2)", "pdeforge error", "exponax error", "pdeforge ms/sample",
                 "exponax ms/sample", "exponax / pdeforge time"]))
    if equal:
        print(table([(f"{e['error']:.1e}", f"{e['pdeforge_ms']:.1f}", f"{e['exponax_ms']:.1f}", f"{e['speedup']:.2f}x")
                     for e in equal], ["equal error", "pdeforge ms/sample", "exponax ms/sample", "pdeforge speed-up"]))
    return dict(problem=case.name, params=p, batch=batch, ref_dt=ref_dt, reference_agreement=floor, rows=rows,
                equal_error=equal)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--resolution", type=int, default=None, help="override every case's grid size")
    parser.add_argument("--batch", type=int, default=None, help="samples per batch (default: generate's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per point (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for torch and XLA")
    parser.add_argument("--exponax-order", type=int, default=4, choices=range(5),
                        help="exponax's ETDRK order (pdeforge always runs ETDRK4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="peer_exponax", help="name of the json under benchmarks/results/")
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    enable_jax_float64()
    results = []
    for name in args.problems:
        case = CASES[name]
        if args.resolution is not None:
            case = Case(case.name, {**case.params, "resolution": args.resolution}, case.substeps,
                        case.reference_substeps, case.spatial_dims, case.channels)
        results.append(compare(case, args))
    path = write_json(args.out, dict(args=vars(args), environment=environment(), results=results))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
