"""Per-channel normalisation fitted on the training split only, carried inside the model."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["ChannelNormaliser", "NormalisedModel"]


class ChannelNormaliser(nn.Module):
    """``(x - mean) / std`` per channel.

    One scalar pair per channel, not per grid point: a per-point normaliser
    ties the model to its training resolution, which would defeat zero-shot
    super-resolution. The statistics are buffers, so they travel with the
    weights in the checkpoint.
    """

    def __init__(self, channels: int, spatial_dims: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(1, -1, *([1] * self.spatial_dims))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._view(self.mean)) / self._view(self.std)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return y * self._view(self.std) + self._view(self.mean)

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor]) -> "ChannelNormaliser":
        """Exact mean and standard deviation per channel over all batches (float64 sums)."""
        total = total_sq = None
        count = 0
        for x in batches:
            x64 = x.to(torch.float64).transpose(0, 1).reshape(x.shape[1], -1)
            s, s2 = x64.sum(1), (x64 * x64).sum(1)
            total = s if total is None else total + s
            total_sq = s2 if total_sq is None else total_sq + s2
            count += x64.shape[1]
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0)
        std = var.sqrt()
        std = torch.where(std > 1e-12 * mean.abs().clamp_min(1.0), std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))
        return self


class NormalisedModel(nn.Module):
    """``decode(model(encode(x)))``: the network sees unit-scale data, users see physical units."""

    def __init__(self, model: nn.Module, inputs: ChannelNormaliser, outputs: ChannelNormaliser) -> None:
        super().__init__()
        self.model, self.inputs, self.outputs = model, inputs, outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs.decode(self.model(self.inputs.encode(x)))
