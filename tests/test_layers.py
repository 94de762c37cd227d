"""Imports point down the layers only (DESIGN.md): a lower layer never imports a higher one."""

import re
from pathlib import Path

import pytest

import pdeforge

LAYERS = {
    "grids": 0, "spectral": 0, "errors": 0, "_random": 0, "_device": 0, "_threads": 0, "_typing": 0,
    "problems": 1,
    "solvers": 2,
    "data": 3,
    "models": 4,
    "training": 5,
    "learned_solvers": 5.5,  # research solvers beside solvers: they reuse training's loop and checkpoints
    "evaluation": 6,
    "distributed": 6.5,  # scale-out engines (Dask generation, torchrun teams) wrap the layers below
    "cli": 7,
}
ROOT = Path(pdeforge.__file__).parent
IMPORT = re.compile(r"^\s*(?:from|import)\s+pdeforge\.(\w+)", re.M)


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        top = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if top in LAYERS:
            yield pytest.param(path, top, id=str(path.relative_to(ROOT)))


@pytest.mark.parametrize("path, layer", list(modules()))
def test_imports_point_down(path, layer):
    for target in IMPORT.findall(path.read_text()):
        assert LAYERS.get(target, 0) <= LAYERS[layer], f"{path.name} ({layer}) imports pdeforge.{target}"


def test_every_package_has_a_layer():
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_the_pipeline_never_imports_the_learned_solvers():
    """generate/train/evaluate use ``pdeforge.solvers`` only; the learned solvers are research code beside it."""
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] != "learned_solvers":
            assert "learned_solvers" not in IMPORT.findall(path.read_text()), path.relative_to(ROOT)
