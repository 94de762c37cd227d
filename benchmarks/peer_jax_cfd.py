"""pdeforge's ``navier-stokes`` against jax-cfd's spectral Navier-Stokes, at equal accuracy.

Run:  .bench-venv/bin/python benchmarks/peer_jax_cfd.py [--resolutions 64 256] [--repeats 3]

What is compared. The 2-D vorticity equation on the unit torus,
``w_t + u.grad w = nu Lap w + f``, ``nu = 1e-3``, the FNO forcing
``f = 0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``, from the same initial
vorticity: pdeforge's sampler draws ``w0`` (FNO prior, seed 0) and the very
same nodal array is handed to jax-cfd. Both sides are pseudo-spectral with
the 2/3 rule on the same ``n x n`` grid, in float64:

* pdeforge: ``NavierStokes`` (conservative nonlinearity ``div(u w)``,
  ETDRK4) at a fixed step ``dt`` (``NavierStokesConfig(dt=...)``) and at its
  default adaptive step (``cfl = 0.5``); a batch solved as ``generate``
  solves it (``problem.solve`` on the batch), torch threads as given.
* jax-cfd: ``spectral.equations.NavierStokes2D`` (advective nonlinearity
  ``u.grad w``, brick-wall 2/3 filter) stepped by
  ``spectral.time_stepping.crank_nicolson_rk4``, on
  ``Grid((n, n), domain=((0, 1), (0, 1)))``, so no rescaling is needed. Its
  forcing enters as a body force whose curl is ``f`` (see docs/conventions.md,
  "Peer mappings"). The step is ``jax.vmap``-ed over the batch and
  ``jax.jit``-ed; compile time is excluded (one warm-up call), every timing
  ends with ``block_until_ready``.

Accuracy is the relative L2 error of the trajectory at the stored times
``t_final (i + 1) / n_times``, against a fine reference: pdeforge at
``dt_ref``. jax-cfd at its own ``dt_ref`` is checked against the same
reference (the agreement of the two discretisations, which differ in the
form of the nonlinearity and so agree only to spatial truncation error), and
each solver's sweep is also measured against its own fine run (pure
time-stepping error). The cost is wall time per sample per unit simulated
time; the equal-accuracy ratio interpolates log cost against log error on
each solver's Pareto front at error levels that both sweeps cover. pdeforge's
time spent building its ETDRK4 coefficients (``_phi_coefficients``, timed by
a wrapper) is also reported, and the ratio without it: an estimate of what
reusing the coefficients would give, not a measured solve.

Prints one table per resolution and writes ``benchmarks/results/peer_jax_cfd.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
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

SUBSTEPS = {
    "pdeforge": {64: (1, 2, 3, 4, 6, 8, 16), 256: (2, 3, 4, 6, 8, 12, 16)},
    "jax-cfd": {64: (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64), 256: (4, 6, 8, 12, 16, 24, 32, 48, 64)},
}
"""Swept fixed steps per solver and resolution, as steps per output interval.

The coarsest sit near each scheme's explicit stability limit; jax-cfd's
second-order scheme needs more steps to reach pdeforge's (fourth-order)
errors, so its sweep goes finer, to give the two error ranges an overlap.
"""
DEFAULT_LABEL = "cfl 0.5 (default)"
REFERENCE_SUBSTEPS = {64: 128, 256: 256}
"""Steps per output interval of the fine reference runs."""


def default_dts(solver: str, n: int, interval: float) -> list[float]:
    """The swept steps of ``solver`` at resolution ``n``: ``interval / k`` (other ``n`` scale 64's by ``n / 64``)."""
    table_ = SUBSTEPS[solver]
    substeps = table_.get(n) or tuple(max(1, round(k * n / 64)) for k in table_[64])
    return [interval / k for k in substeps]


def reference_dt(n: int, interval: float) -> float:
    """The fine reference step at resolution ``n``."""
    return interval / REFERENCE_SUBSTEPS.get(n, max(128, 2 * n))


PRINTED_SCALE = 7.0**1.5
"""The FNO paper's printed initial amplitude, with which benchmarks/README.md's first tables were measured
(pdeforge's default became the FNO data code's 686 in issue 12; ``--ic-scale 686`` runs that)."""


def pdeforge_problem(n: int, t_final: float, n_times: int, dt: float | None, cfl: float = 0.5,
                     ic_scale: float = PRINTED_SCALE):
    from pdeforge.problems import NavierStokes, NavierStokesConfig

    config = NavierStokesConfig(resolution=n, nu=1e-3, forcing="fno", forcing_amplitude=0.1, t_final=t_final,
                                n_times=n_times, dt=dt, cfl=cfl, cfl_limit=10.0, ic_scale=ic_scale)
    return NavierStokes(config)


class CoefficientClock:
    """Wall time spent in pdeforge's ETDRK4 coefficient set-up (``_phi_coefficients``), for the cost breakdown.

    Wraps the private function for the benchmark only; the solve is unchanged.
    """

    seconds = 0.0
    _installed = False

    @classmethod
    def install(cls) -> None:
        if cls._installed:
            return
        from pdeforge.solvers.timestepping import _etd

        inner = _etd._phi_coefficients

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                cls.seconds += time.perf_counter() - t0

        _etd._phi_coefficients = timed
        cls._installed = True


def timed_with_coefficients(run, repeats: int) -> tuple[float, float]:
    """Median seconds of ``repeats`` calls of ``run`` and the median of their time outside the coefficient set-up."""
    totals, rest = [], []
    for _ in range(repeats):
        CoefficientClock.seconds = 0.0
        t0 = time.perf_counter()
        run()
        total = time.perf_counter() - t0
        totals.append(total)
        rest.append(total - CoefficientClock.seconds)
    return statistics.median(totals), statistics.median(rest)


def pdeforge_runner(n: int, t_final: float, n_times: int, dt: float | None, w0):
    """A closure solving the batch ``w0`` (torch, [B, n, n]) with pdeforge; returns the trajectory as numpy."""
    from pdeforge.solvers import method_for

    problem = pdeforge_problem(n, t_final, n_times, dt)
    method = method_for(problem)

    def run():
        solution = problem.solve({"w0": w0}, method)
        return solution.outputs["w"].numpy()

    return run


def jax_cfd_runner(n: int, t_final: float, n_times: int, dt: float, w0: np.ndarray, forcing_xy):
    """A jitted jax-cfd trajectory of the batch ``w0`` ([B, n, n]) with step ``dt``; returns the warm closure."""
    import jax
    import jax.numpy as jnp
    import jax_cfd.base as cfd
    import jax_cfd.spectral as spectral

    grid = cfd.grids.Grid((n, n), domain=((0.0, 1.0), (0.0, 1.0)))
    fx_data, fy_data = (jnp.asarray(a) for a in forcing_xy)

    def forcing_fn(grid_):
        def body_force(velocity):
            # jax-cfd takes the curl of what this returns; its data sit on pdeforge's nodes.
            return (cfd.grids.GridArray(fx_data, velocity[0].offset, grid_),
                    cfd.grids.GridArray(fy_data, velocity[1].offset, grid_))
        return body_force

    equation = spectral.equations.NavierStokes2D(viscosity=1e-3, grid=grid, drag=0.0, smooth=True,
                                                 forcing_fn=forcing_fn)
    step = spectral.time_stepping.crank_nicolson_rk4(equation, dt)
    interval = t_final / n_times
    steps = round(interval / dt)
    if not math.isclose(steps * dt, interval, rel_tol=1e-9):
        raise SystemExit(f"dt {dt} does not divide the output interval {interval}")

    def trajectory(w_hat):
        def advance(state, _):
            state = jax.lax.fori_loop(0, steps, lambda _, s: step(s), state)
            return state, jnp.fft.irfftn(state)
        _, frames = jax.lax.scan(advance, w_hat, None, length=n_times)
        return frames

    solve = jax.jit(jax.vmap(lambda w: trajectory(jnp.fft.rfftn(w))))
    w0_jax = jnp.asarray(w0)
    solve(w0_jax).block_until_ready()  # compile and warm up

    def run():
        return np.asarray(solve(w0_jax).block_until_ready())

    return run


def fno_body_force(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A body force ``(fx, fy)`` on pdeforge's nodes ``(i/n, j/n)`` whose curl ``d fy/dx - d fx/dy`` is the FNO forcing.

    With ``s = x + y`` and ``G(s) = 0.1 / (4 pi) (sin 2 pi s - cos 2 pi s)``,
    ``(fx, fy) = (-G, G)`` has curl ``2 G'(s) = 0.1 (sin 2 pi s + cos 2 pi s)``.
    """
    x = np.arange(n) / n
    s = x[:, None] + x[None, :]
    g = 0.1 / (4 * math.pi) * (np.sin(2 * math.pi * s) - np.cos(2 * math.pi * s))
    return -g, g


def equal_error(rows: list[dict], floor: float) -> list[dict]:
    """pdeforge's and jax-cfd's cost at common error levels, for both ways of measuring the error.

    Against the common reference, only levels above 10x the two
    discretisations' disagreement ``floor`` count (there the reference's
    choice does not matter); against each solver's own fine run, any level
    that both sweeps cover.
    """
    equal = []
    for metric, key, lowest in (("reference", "error_vs_reference", 10 * floor), ("own", "error_vs_own_fine", 0.0)):
        def points(solver: str, cost: str = "ms_per_sample_per_unit_time", key=key) -> list[tuple[float, float]]:
            return [(r[key], r[cost]) for r in rows if r["solver"] == solver and r["dt"] != DEFAULT_LABEL]

        for level in equal_error_levels(points("pdeforge"), points("jax-cfd"), count=3, floor=lowest):
            ours, theirs = cost_at_error(points("pdeforge"), level), cost_at_error(points("jax-cfd"), level)
            if ours is not None and theirs is not None:
                entry = dict(metric=metric, error=level, pdeforge_ms=ours, jax_cfd_ms=theirs, speedup=theirs / ours)
                if all("ms_without_coefficient_setup" in r for r in rows):  # absent from older result files
                    entry["pdeforge_ms_without_setup"] = cost_at_error(
                        points("pdeforge", "ms_without_coefficient_setup"), level)
                equal.append(entry)
    return equal


def equal_error_table(equal: list[dict]) -> str:
    """The equal-error costs as a markdown table."""
    names = {"reference": "vs reference", "own": "vs own fine run"}

    def without(e: dict) -> str:
        value = e.get("pdeforge_ms_without_setup")
        return "" if value is None else f"{value:.1f} ({e['jax_cfd_ms'] / value:.1f}x)"

    return table([(names[e["metric"]], f"{e['error']:.1e}", f"{e['pdeforge_ms']:.1f}", f"{e['jax_cfd_ms']:.1f}",
                   f"{e['speedup']:.2f}x", without(e)) for e in equal],
                 ["error measured", "equal error", "pdeforge ms", "jax-cfd ms", "pdeforge speed-up",
                  "pdeforge ms outside coefficient set-up (speed-up)"])


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def sweep(n: int, args) -> dict:
    import torch

    t_final, n_times = args.t_final, args.n_times
    batch = args.batch or max(2, 2**14 // (n * n))  # generate's default batch (2^14 points), at least 2
    interval = t_final / n_times
    ref_dt = args.ref_dt or reference_dt(n, interval)
    problem = pdeforge_problem(n, t_final, n_times, ref_dt, ic_scale=args.ic_scale)
    w0 = problem.sample_inputs(args.seed, range(batch))["w0"].to(torch.float64)
    forcing_xy = fno_body_force(n)
    print(f"\n## n = {n}: batch {batch}, t_final {t_final}, {n_times} snapshots, reference dt {ref_dt}", flush=True)

    reference = pdeforge_runner(n, t_final, n_times, ref_dt, w0)()
    jax_reference = jax_cfd_runner(n, t_final, n_times, ref_dt, w0.numpy(), forcing_xy)()
    floor = relative_l2(jax_reference, reference)
    print(f"jax-cfd at dt_ref vs pdeforge at dt_ref: relative L2 {floor:.2e}", flush=True)

    rows = []
    def dts(solver: str) -> list[float]:
        return args.dts or default_dts(solver, n, interval)

    cases = [("pdeforge", dt) for dt in dts("pdeforge")] + [("pdeforge", None)]
    cases += [("jax-cfd", dt) for dt in dts("jax-cfd")]
    for solver, dt in cases:
        if solver == "pdeforge":
            run = pdeforge_runner(n, t_final, n_times, dt, w0)
            own = reference
        else:
            assert dt is not None
            run = jax_cfd_runner(n, t_final, n_times, dt, w0.numpy(), forcing_xy)
            own = jax_reference
        out = run()
        if solver == "pdeforge":
            seconds, without = timed_with_coefficients(run, args.repeats)
        else:
            seconds, without = median_seconds(run, args.repeats), math.nan
        cost = 1e3 * seconds / (batch * t_final)
        err, err_own = relative_l2(out, reference), relative_l2(out, own)
        label = DEFAULT_LABEL if dt is None else f"{dt:.4g}"
        row = dict(solver=solver, dt=label, error_vs_reference=err, error_vs_own_fine=err_own,
                   ms_per_sample_per_unit_time=cost, seconds_per_batch=seconds,
                   ms_without_coefficient_setup=None if math.isnan(without) else 1e3 * without / (batch * t_final))
        rows.append(row)
        print(f"{solver:9s} dt {label:>18s}: error {err:.2e} (own fine {err_own:.2e}), "
              f"{cost:9.1f} ms/sample/unit time ({_ms(row['ms_without_coefficient_setup'])} outside the ETDRK4 "
              "coefficients)", flush=True)

    equal = equal_error(rows, floor)
    print(table([(r["solver"], r["dt"], f"{r['error_vs_reference']:.2e}", f"{r['error_vs_own_fine']:.2e}",
                  f"{r['ms_per_sample_per_unit_time']:.1f}", _ms(r["ms_without_coefficient_setup"]))
                 for r in rows],
                ["solver", "dt", "rel. L2 vs reference", "vs own fine run", "ms/sample/unit time",
                 "of which outside ETDRK4 coefficient set-up"]))
    if equal:
        print(equal_error_table(equal))
    else:
        print("no error level that both sweeps cover: widen --dts")
    return dict(n=n, batch=batch, t_final=t_final, n_times=n_times, ref_dt=ref_dt,
                reference_agreement=floor, rows=rows, equal_error=equal)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--dts", type=float, nargs="+", default=None,
                        help="fixed steps to sweep (default per resolution; each must divide t_final / n_times)")
    parser.add_argument("--ref-dt", type=float, default=None, help="step of the fine reference runs")
    parser.add_argument("--t-final", type=float, default=1.0, help="simulated time")
    parser.add_argument("--n-times", type=int, default=4, help="stored snapshots, compared at the same times")
    parser.add_argument("--batch", type=int, default=None, help="samples per batch (default: generate's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per point (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for torch and XLA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ic-scale", type=float, default=PRINTED_SCALE,
                        help="initial vorticity covariance multiplier (686: the FNO data code's amplitude)")
    parser.add_argument("--out", default="peer_jax_cfd", help="name of the json under benchmarks/results/")
    parser.add_argument("--summarise", type=Path, default=None,
                        help="recompute and print the equal-error tables of an earlier run's json, then stop")
    args = parser.parse_args(argv)
    if args.summarise is not None:
        for result in json.loads(args.summarise.read_text())["results"]:
            print(f"\n## n = {result['n']} (reference agreement {result['reference_agreement']:.2e})")
            print(equal_error_table(equal_error(result["rows"], result["reference_agreement"])))
        return
    configure_threads(args.threads)
    enable_jax_float64()
    CoefficientClock.install()
    results = [sweep(n, args) for n in args.resolutions]
    path = write_json(args.out, dict(args=vars(args), environment=environment(), results=results))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
