"""The small CNN that maps a residual to a search direction for DCDM, and its loading from a checkpoint.

After Kaneda et al. (ICML 2023, sec. 4 and their released model): a linear
3x3 lifting convolution, residual blocks ``x <- relu(conv(relu(conv(x)))) + x``
at full resolution, average pooling to coarser levels with more blocks,
nearest-neighbour upsampling with additive skip connections on the way
back, and a linear 1x1 projection to one channel. The input is scaled to
unit RMS per sample (a direction is defined only up to scale). Pooling gives the
network the long reach an approximate inverse of an elliptic operator
needs; the paper's 3-D network has one coarse level, this 2-D one several
(they are cheap). Zero padding matches the homogeneous Dirichlet wall.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from pdeforge.errors import PdeforgeError
from pdeforge.training import load_checkpoint

__all__ = ["DirectionCNN", "learned_direction", "load_direction_net"]


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1)
        self.b = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b(F.relu(self.a(x)))) + x


class DirectionCNN(nn.Module):
    """Residual field ``[batch, 1, n1, n2]`` to direction ``[batch, 1, n1, n2]``.

    Parameters
    ----------
    channels
        Feature channels at every level.
    levels
        Number of 2x coarsenings (``n1`` and ``n2`` must be divisible by ``2**levels``).
    blocks
        Residual blocks per level and side (the coarsest level gets twice as many).

    Examples
    --------
    >>> net = DirectionCNN(channels=4, levels=2)
    >>> tuple(net(torch.zeros(2, 1, 16, 16)).shape)
    (2, 1, 16, 16)
    """

    def __init__(self, channels: int = 16, levels: int = 3, blocks: int = 1) -> None:
        super().__init__()
        self.config = {"channels": channels, "levels": levels, "blocks": blocks}
        self.lift = nn.Conv2d(1, channels, 3, padding=1)
        self.down = nn.ModuleList(nn.Sequential(*[_Block(channels) for _ in range(blocks)]) for _ in range(levels))
        self.bottom = nn.Sequential(*[_Block(channels) for _ in range(2 * blocks)])
        self.up = nn.ModuleList(nn.Sequential(*[_Block(channels) for _ in range(blocks)]) for _ in range(levels))
        self.project = nn.Conv2d(channels, 1, 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """The search direction predicted from the residual ``r``.

        The residual is rescaled to unit RMS per sample first, so the output
        does not depend on the scale of ``r`` (a direction is defined up to
        scale); it passes a U-Net of ``levels`` average-pooling coarsenings
        with additive skip connections.

        Parameters
        ----------
        r
            Residual fields ``[batch, 1, n1, n2]``, ``n1`` and ``n2`` divisible by ``2**levels``.

        Returns
        -------
        torch.Tensor
            Directions ``[batch, 1, n1, n2]`` (unnormalised).
        """
        factor = 2 ** self.config["levels"]
        if r.shape[-1] % factor or r.shape[-2] % factor:
            raise PdeforgeError(f"the direction CNN needs grid sizes divisible by {factor}, got {tuple(r.shape[-2:])}")
        # A direction is only defined up to scale: feed the residual at unit RMS per sample.
        rms = r.flatten(1).square().mean(1).sqrt().clamp_min(torch.finfo(r.dtype).tiny)
        x = self.lift(r / rms.reshape(-1, 1, 1, 1))
        skips = []
        for level in self.down:
            x = level(x)
            skips.append(x)
            x = F.avg_pool2d(x, 2)
        x = self.bottom(x)
        for level, skip in zip(self.up, reversed(skips), strict=True):
            x = level(F.interpolate(x, scale_factor=2, mode="nearest") + skip)
        return self.project(x)


def learned_direction(net: nn.Module, fluid: torch.Tensor | None = None):
    """The DCDM direction map ``r -> net(r)`` on fields ``[batch, n1, n2]``, cast to the net's dtype and back.

    Parameters
    ----------
    net
        A trained direction network on ``[batch, 1, n1, n2]``.
    fluid
        Fluid masks ``[batch, n1, n2]`` (bool); the direction is zeroed in solid cells.

    Returns
    -------
    callable
        ``M(r)`` for the ``M`` argument of :func:`dcdm` (evaluated without gradients).
    """
    param = next(net.parameters())

    def direction(r: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            d = net(r[:, None].to(param.dtype))[:, 0].to(r.dtype)
        return d if fluid is None else d * fluid.to(r.dtype)

    return direction


def load_direction_net(run: str | Path, *, which: str = "latest", device=None) -> DirectionCNN:
    """Rebuild the :class:`DirectionCNN` that :func:`train_direction_net` checkpointed in ``run``.

    The checkpoint is :mod:`pdeforge.training`'s: every file is checked
    against the sha256 of its pointer and the weights are safetensors, so
    loading never executes code.

    Parameters
    ----------
    run
        The directory passed as ``run`` to :func:`train_direction_net`.
    which
        ``"latest"`` (the network at the end of training, default) or
        ``"best"`` (the epoch of lowest mean training loss).
    device
        Where to put the network (CPU by default).
    """
    ckpt = load_checkpoint(Path(run), which)
    if ckpt.state.get("architecture") != "DirectionCNN" or not isinstance(ckpt.state.get("config"), dict):
        raise PdeforgeError(f"the {which} checkpoint of {run} does not hold a DirectionCNN")
    net = DirectionCNN(**ckpt.state["config"])
    try:
        net.load_state_dict(ckpt.model)
    except RuntimeError:
        raise PdeforgeError(f"the weights in {run} do not fit a DirectionCNN with {ckpt.state['config']}") from None
    return net.to(device) if device is not None else net
