"""One table per method family: a new solver, integrator or problem is named in exactly one place.

Each test adds a throwaway entry to one table only (and removes it again), then
drives it through the whole generation path and the listings, the way a
contributor's new method would be used.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from typer.testing import CliRunner

from pdeforge.cli import app
from pdeforge.data import open_dataset
from pdeforge.errors import PdeforgeError
from pdeforge.problems import PROBLEMS, LinearTraits, Poisson, PoissonConfig
from pdeforge.solvers import INTEGRATORS, LINEAR_SOLVERS, Method, MethodTable, SolveResult
from pdeforge.solvers.timestepping import ARS222, IMEXRungeKutta

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def superlu_all_at_once(operator, b, *, rtol):
    """A throwaway solver: SuperLU on the block-diagonal matrix of the whole batch."""
    import scipy.sparse as sp

    blocks = sp.block_diag([operator.to_scipy(i) for i in range(operator.batch)]).tocsc()
    x = spla.spsolve(blocks, b.detach().cpu().numpy().astype(np.float64).ravel())
    x = torch.as_tensor(x, dtype=b.dtype, device=b.device).reshape(b.shape)
    return SolveResult.one_shot(x, operator.residual_norm(x, b), rtol, iterations=1)


def test_a_new_linear_solver_is_one_table_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(LINEAR_SOLVERS, "superlu-batch",
                        Method("superlu-batch", superlu_all_at_once, "SuperLU on the whole batch"))
    assert "superlu-batch" in invoke("problems")
    for name in ("superlu-batch", "dst"):
        invoke("generate", "poisson", "--n", 3, "--resolution", 17, "--seed", 2, "--out", tmp_path / name,
               "--set", f"solver={name}", "--set", "store_dtype=float64")
    new = open_dataset(tmp_path / "superlu-batch").read(0, 3)[1]["solution"]
    exact = open_dataset(tmp_path / "dst").read(0, 3)[1]["solution"]
    np.testing.assert_allclose(new, exact, rtol=0, atol=1e-12 * np.abs(exact).max())


def test_a_new_time_integrator_is_one_table_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(INTEGRATORS, "ars222-again", Method("ars222-again", IMEXRungeKutta(ARS222), "a copy"))
    assert "ars222-again" in invoke("problems")
    for name in ("ars222-again", "ars222"):
        invoke("generate", "burgers", "--n", 2, "--resolution", 32, "--seed", 1, "--out", tmp_path / name,
               "--set", f"integrator={name}", "--set", "t_final=0.1", "--set", "n_times=2")
    again = open_dataset(tmp_path / "ars222-again").read(0, 2)[1]["u"]
    original = open_dataset(tmp_path / "ars222").read(0, 2)[1]["u"]
    assert np.array_equal(again, original)


class ScaledPoisson(Poisson):
    """A throwaway problem: Poisson with the source scaled by 3 (so the solution scales by 3)."""

    name = "poisson-x3"
    summary = "Poisson with three times the source"

    def draw_inputs(self, rngs):
        return {"source": 3.0 * super().draw_inputs(rngs)["source"]}


def test_a_new_problem_is_one_table_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(PROBLEMS, ScaledPoisson.name, ScaledPoisson)
    assert "poisson-x3" in invoke("problems")
    for name in ("poisson-x3", "poisson"):
        invoke("generate", name, "--n", 2, "--resolution", 17, "--seed", 5, "--out", tmp_path / name,
               "--set", "store_dtype=float64")
    assert "poisson-x3" in invoke("info", tmp_path / "poisson-x3")
    scaled = open_dataset(tmp_path / "poisson-x3").read(0, 2)[1]["solution"]
    plain = open_dataset(tmp_path / "poisson").read(0, 2)[1]["solution"]
    np.testing.assert_allclose(scaled, 3.0 * plain, rtol=1e-12, atol=1e-14)


def test_auto_is_decided_once_by_the_table():
    """The problem states its traits; the same rule serves problems and bare operators."""
    cases = {
        LinearTraits(ndim=2, definite=True, constant_coefficients=True): "dst",
        LinearTraits(ndim=2, definite=False, constant_coefficients=True): "dst",
        LinearTraits(ndim=2, definite=True): "pcg-mg",
        LinearTraits(ndim=2, definite=False): "gmres-mg",
        LinearTraits(ndim=3, definite=True): "pcg-ssor",
        LinearTraits(ndim=3, definite=False): "direct",
    }
    for traits, name in cases.items():
        chosen = LINEAR_SOLVERS.choose("auto", traits)
        assert chosen.name == name
        assert chosen.refuses(traits) is None  # auto never picks a method that refuses the problem
    problem = Poisson(PoissonConfig(resolution=17))
    assert problem.method_traits == LinearTraits(ndim=2, definite=True, constant_coefficients=True)


def test_a_table_refuses_unknown_names_and_bad_entries():
    with pytest.raises(PdeforgeError, match=r"unknown time integrator 'rk99' \(known: etdrk4, "):
        INTEGRATORS.choose("rk99")
    table = MethodTable("thing", [Method("a", print, "A")])
    with pytest.raises(ValueError, match="named 'b'"):
        table["b"] = Method("a", print, "A")
    with pytest.raises(ValueError, match="chosen by the table"):
        table["auto"] = Method("auto", print, "A")
    assert table.names == ("a",) and INTEGRATORS.names[0] == "etdrk4" and LINEAR_SOLVERS.names[0] == "auto"


def test_a_bad_solver_name_leaves_no_output_directory(tmp_path):
    result = runner.invoke(app, ["generate", "darcy", "--n", "2", "--resolution", "9", "--out", str(tmp_path / "d"),
                                 "--set", "solver=dst"])
    assert result.exit_code != 0 and "constant coefficients" in result.output
    assert not (tmp_path / "d").exists()
