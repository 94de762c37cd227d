"""Declarative assertions about neural-operator models, shared by the model tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from pdeforge.models import ChannelMLP, ModelSpec


def neuralop_file_with_bad_value(path: Path, n: int, sample: int, value: float) -> Path:
    """A neuraloperator-style ``{"x", "y"}`` file of ``n`` random 8x8 samples, ``value`` placed in ``y[sample]``."""
    x, y = torch.rand(n, 8, 8), torch.rand(n, 8, 8)
    y[sample, 3, 3] = value
    torch.save({"x": x, "y": y}, path)
    return path


def assert_all_params_get_grad(model: nn.Module, x: torch.Tensor) -> None:
    """Every parameter receives a finite, non-zero gradient from a generic loss."""
    model.zero_grad(set_to_none=True)
    y = model(x)
    (y.square().mean() + y.mean()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def band_limited(shape: tuple[int, ...], channels: int, kmax: int, *, batch: int = 2, seed: int = 0,
                 dtype=torch.float64, nodes: bool = False) -> torch.Tensor:
    """A random trigonometric polynomial with ``|k_i| <= kmax`` sampled on a ``shape`` grid of the unit box.

    The grid is periodic (points ``j / n``) or, with ``nodes``, has both ends (points ``j / (n - 1)``);
    the same ``seed`` gives the same function on every grid.
    """
    gen = torch.Generator().manual_seed(seed)
    axes = [torch.linspace(0, 1, n, dtype=dtype) if nodes else torch.arange(n, dtype=dtype) / n for n in shape]
    mesh = torch.meshgrid(*axes, indexing="ij")
    out = torch.zeros(batch, channels, *shape, dtype=dtype)
    ks = torch.cartesian_prod(*[torch.arange(-kmax, kmax + 1)] * len(shape)).reshape(-1, len(shape))
    for k in ks:
        phase = sum(2 * torch.pi * int(ki) * xi for ki, xi in zip(k, mesh, strict=True))
        a = torch.randn(batch, channels, 1, *[1] * (len(shape) - 1), generator=gen, dtype=dtype) / (1 + k.abs().sum())
        b = torch.randn(batch, channels, 1, *[1] * (len(shape) - 1), generator=gen, dtype=dtype) / (1 + k.abs().sum())
        out += a * torch.cos(phase) + b * torch.sin(phase)
    return out


def throwaway_builder(in_channels: int, out_channels: int, spatial_dims: int, *, hidden: int = 4) -> nn.Module:
    """A channel MLP: the model a test adds to the model table for the time of one test."""
    return ChannelMLP(in_channels, hidden, out_channels)


THROWAWAY = ModelSpec(throwaway_builder, "a pointwise channel MLP that exists only inside a test",
                      "none: a test model (pdeforge tests/model_helpers.py, 2026)", spatial_dims=(1, 2, 3),
                      resolution="periodic", tiny={"hidden": 3})
"""A row for :data:`pdeforge.models.MODELS`, registered by tests with ``monkeypatch.setitem``."""
