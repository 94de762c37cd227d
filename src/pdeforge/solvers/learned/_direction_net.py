"""The small CNN that maps a residual to a search direction for DCDM, and its safetensors I/O.

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

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from pdeforge.errors import PdeforgeError

__all__ = ["DirectionCNN", "learned_direction", "load_direction_net", "save_direction_net"]


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
        for level, skip in zip(self.up, reversed(skips)):
            x = level(F.interpolate(x, scale_factor=2, mode="nearest") + skip)
        return self.project(x)


def learned_direction(net: nn.Module, fluid: torch.Tensor | None = None):
    """The DCDM direction map ``r -> net(r)`` on fields ``[batch, n1, n2]``, cast to the net's dtype and back.

    ``fluid`` (``[batch, n1, n2]``, bool) zeroes the direction in solid cells.
    """
    param = next(net.parameters())

    def direction(r: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            d = net(r[:, None].to(param.dtype))[:, 0].to(r.dtype)
        return d if fluid is None else d * fluid.to(r.dtype)

    return direction


def save_direction_net(net: DirectionCNN, path: str | Path) -> None:
    """Write the weights with safetensors (no pickle); the architecture goes in the metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(state, str(tmp), metadata={"architecture": "DirectionCNN", "config": json.dumps(net.config)})
    tmp.replace(path)


def load_direction_net(path: str | Path, *, device=None) -> DirectionCNN:
    """Rebuild a :class:`DirectionCNN` from a file written by :func:`save_direction_net`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise PdeforgeError(f"no direction network at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("architecture") != "DirectionCNN":
        raise PdeforgeError(f"{path} does not hold a DirectionCNN")
    net = DirectionCNN(**json.loads(meta["config"]))
    net.load_state_dict(load_file(str(path)))
    return net.to(device) if device is not None else net
