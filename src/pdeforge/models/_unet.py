"""A 2-D U-Net: the convolutional baseline of the operator-learning benchmarks.

Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical
Image Segmentation", MICCAI 2015; used as a baseline by Li et al. 2021 and
Gupta & Brandstetter 2022 (PDEArena). Each level is two 3x3 convolutions
with group normalisation and GELU; 2x2 max-pooling down, 2x transposed
convolutions up, skip connections by concatenation. Inputs of any size work:
the field is padded (replicate) to a multiple of ``2**depth`` and cropped back.
Unlike the FNO it is tied to the grid spacing it was trained on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pdeforge._typing import InFields, OutFields

__all__ = ["UNet2d"]


def _block(cin: int, cout: int) -> nn.Sequential:
    groups = 8 if cout % 8 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(groups, cout), nn.GELU(),
    )


class UNet2d(nn.Module):
    """U-Net on ``[batch, in_channels, H, W]``.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    width
        Channels of the first level; each level down doubles them.
    depth
        Number of down-sampling steps.

    References
    ----------
    Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical
    Image Segmentation", MICCAI 2015, sec. 2 (architecture); as a PDE
    baseline, Gupta & Brandstetter, "Towards Multi-spatiotemporal-scale
    Generalized PDE Modeling", 2022 (PDEArena).

    Examples
    --------
    >>> net = UNet2d(1, 2, width=8, depth=2)
    >>> net(torch.randn(3, 1, 30, 21)).shape
    torch.Size([3, 2, 30, 21])
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"a U-Net needs depth >= 1 and width >= 1, got {depth} and {width}")
        self.depth = depth
        widths = [width * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([_block(in_channels, widths[0])])
        self.down.extend(_block(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(depth)))
        self.merge = nn.ModuleList(_block(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: InFields) -> OutFields:
        """Map ``[batch, in_channels, H, W]`` to ``[batch, out_channels, H, W]``.

        Parameters
        ----------
        x
            Input fields on a 2-D grid of any size.

        Returns
        -------
        Tensor
            Output fields on the same grid.
        """
        if x.ndim != 4:
            raise ValueError(f"UNet2d expects [batch, channel, H, W], got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        step = 2**self.depth
        ph, pw = -h % step, -w % step
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = []
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)[..., :h, :w]
