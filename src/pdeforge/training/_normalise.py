"""Per-channel normalisation fitted on the training split only, carried inside the model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from pdeforge._typing import Fields, InFields, OutFields

__all__ = ["ChannelNormaliser", "FrequencyOutput", "NormalisedModel", "frequency_output"]


class ChannelNormaliser(nn.Module):
    """``(x - mean) / std`` per channel.

    One scalar pair per channel, not per grid point: a per-point normaliser
    ties the model to its training resolution, which would defeat zero-shot
    super-resolution. The statistics are buffers, so they travel with the
    weights in the checkpoint.

    Parameters
    ----------
    channels
        Number of channels (one mean and one standard deviation each).
    spatial_dims
        Spatial axes of the fields ``[batch, channels, *space]`` it acts on.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int, spatial_dims: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def _view(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(1, -1, *([1] * self.spatial_dims))

    def encode(self, x: Fields) -> Fields:
        """Normalise: ``(x - mean) / std`` per channel.

        Parameters
        ----------
        x
            Fields in physical units, ``[batch, channels, *space]``.

        Returns
        -------
        Tensor
            The normalised fields, same shape.
        """
        return (x - self._view(self.mean)) / self._view(self.std)

    def decode(self, y: Fields) -> Fields:
        """Undo :meth:`encode`: ``y * std + mean`` per channel.

        Parameters
        ----------
        y
            Normalised fields, ``[batch, channels, *space]``.

        Returns
        -------
        Tensor
            The fields in physical units, same shape.
        """
        return y * self._view(self.std) + self._view(self.mean)

    @torch.no_grad()
    def fit(self, batches: Iterable[Fields]) -> ChannelNormaliser:
        """Exact mean and standard deviation per channel over all batches (float64 sums).

        A channel whose standard deviation vanishes (relative to its mean) keeps
        ``std = 1``, so a constant channel is shifted but not blown up.

        Parameters
        ----------
        batches
            Fields ``[batch, channels, *space]``; at least one batch.

        Returns
        -------
        ChannelNormaliser
            ``self``, its ``mean`` and ``std`` buffers set.
        """
        total: torch.Tensor | None = None
        total_sq: torch.Tensor | None = None
        count = 0
        for x in batches:
            x64 = x.to(torch.float64).transpose(0, 1).reshape(x.shape[1], -1)
            s, s2 = x64.sum(1), (x64 * x64).sum(1)
            total = s if total is None else total + s
            total_sq = s2 if total_sq is None else total_sq + s2
            count += x64.shape[1]
        if total is None or total_sq is None:
            raise ValueError("ChannelNormaliser.fit needs at least one batch")
        mean = total / count
        var = (total_sq / count - mean * mean).clamp_min(0)
        std = var.sqrt()
        std = torch.where(std > 1e-12 * mean.abs().clamp_min(1.0), std, torch.ones_like(std))
        self.mean.copy_(mean.to(self.mean.dtype))
        self.std.copy_(std.to(self.std.dtype))
        return self


class NormalisedModel(nn.Module):
    """``decode(model(encode(x)))``: the network sees unit-scale data, users see physical units.

    Parameters
    ----------
    model
        The network, ``forward(x) -> y`` on ``[batch, channel, *space]``.
    inputs, outputs
        The normalisers of the input and output channels.
    """

    def __init__(self, model: nn.Module, inputs: ChannelNormaliser, outputs: ChannelNormaliser) -> None:
        super().__init__()
        self.model, self.inputs, self.outputs = model, inputs, outputs

    def forward(self, x: InFields) -> OutFields:
        """The network's prediction in physical units.

        Parameters
        ----------
        x
            Input fields in physical units, ``[batch, in_channels, *space]``.

        Returns
        -------
        Tensor
            Output fields in physical units, ``[batch, out_channels, *space]``.
        """
        return self.outputs.decode(self.model(self.inputs.encode(x)))


@runtime_checkable
class FrequencyOutput(Protocol):
    """A model whose prediction lives on a block of an orthonormal transform (such as :class:`~pdeforge.models.T1`).

    ``predict_coefficients(x)`` returns the block ``[batch, channels, *kept]``
    of the prediction's orthonormal coefficients (the prediction has none
    outside it); ``transform_target(y)`` the same block of a target and the
    target's energy off the block ``[batch, channels]``. By Parseval the
    relative L2 error follows from these alone
    (:func:`~pdeforge.training.losses.parseval_relative_l2`), and the
    training loop uses them when the loss is the relative L2 error.
    """

    def predict_coefficients(self, x: InFields) -> torch.Tensor:
        """The prediction's coefficients on the kept block."""
        ...

    def transform_target(self, y: OutFields) -> tuple[torch.Tensor, torch.Tensor]:
        """A target's coefficients on the kept block, and its energy outside the block."""
        ...


class _DecodedFrequencyOutput:
    """A :class:`NormalisedModel`'s coefficients in physical units, from those of its network.

    The transform ``B`` is linear, so ``B(y std + mean) = std B(y) + mean B(1)``:
    the decoded block is the network's times ``std`` plus the block of a
    constant field ``mean``, transformed by the network's own transform.
    """

    def __init__(self, model: NormalisedModel, net: FrequencyOutput) -> None:
        self.model, self.net = model, net

    def predict_coefficients(self, x: InFields) -> torch.Tensor:
        outputs, net = self.model.outputs, self.net
        block = net.predict_coefficients(self.model.inputs.encode(x))
        mean = outputs.mean.to(x.dtype).reshape(1, -1, *([1] * outputs.spatial_dims))
        constant, _ = net.transform_target(mean.expand(1, -1, *x.shape[2:]))
        return block * outputs.std.to(x.dtype).reshape(1, -1, *([1] * outputs.spatial_dims)) + constant

    def transform_target(self, y: OutFields) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.transform_target(y)


def frequency_output(model: nn.Module) -> FrequencyOutput | None:
    """``model`` as a :class:`FrequencyOutput` in physical units, or ``None`` if its network is not one.

    Parameters
    ----------
    model
        A network, or a :class:`NormalisedModel` wrapping one.

    Returns
    -------
    FrequencyOutput or None
        The model itself, an adapter that decodes a normalised model's
        coefficients, or ``None``.
    """
    if isinstance(model, NormalisedModel):
        net = model.model
        return _DecodedFrequencyOutput(model, net) if isinstance(net, FrequencyOutput) else None
    return model if isinstance(model, FrequencyOutput) else None
