"""scOT: a small scalable operator transformer in the manner of Poseidon (Herde et al., NeurIPS 2024).

A Swin-style U-Net transformer on 2-D fields: patches are embedded as
tokens, encoder stages of windowed self-attention blocks alternate plain and
shifted windows and halve the token grid by patch merging, decoder stages
double it by patch expansion and take the encoder's tokens of the same
scale as a skip connection, and a last expansion returns to the pixels.
Every layer norm is conditioned on the lead time ``t``: ``LN(z) * (1 +
gamma(t)) + beta(t)`` with ``gamma`` and ``beta`` linear in ``t`` (Poseidon's
time-conditioned layer norm), so one network is queried at any lead time,
which is what all2all training (:mod:`pdeforge.training._tasks`) teaches it.

With ``conditioned=True`` the last input channel is the lead time (a constant
field, as the ``all2all`` task stacks it) and is read as its spatial mean;
without it the network is an unconditioned map. Shifted windows wrap around
the grid (a cyclic shift with no mask): on the periodic domains of the
time-dependent problems that is the domain's own geometry. Grid coordinates
appended to the input (as the FNO's) replace Swin's position bias, so the
network takes any grid (padded periodically to whole windows when it must be).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from pdeforge._typing import InFields, OutFields
from pdeforge.models._layers import GridCoordinates

__all__ = ["ScOT"]


class TimeConditionedNorm(nn.Module):
    """``LN(z) (1 + gamma(t)) + beta(t)`` over the last axis; ``gamma``, ``beta`` linear in ``t``, zero at first."""

    def __init__(self, dim: int, conditioned: bool = True) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.film = nn.Linear(1, 2 * dim) if conditioned else None  # unconditioned: a plain layer norm
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``z [B, ..., dim]``, ``t [B]``."""
        if self.film is None:
            return self.norm(z) * self.weight + self.bias
        gamma, beta = self.film(t.reshape(-1, 1)).chunk(2, dim=-1)
        shape = (z.shape[0],) + (1,) * (z.ndim - 2) + (z.shape[-1],)
        return self.norm(z) * (self.weight * (1 + gamma.reshape(shape))) + self.bias + beta.reshape(shape)


class WindowBlock(nn.Module):
    """Windowed multi-head self-attention and an MLP, each after a time-conditioned norm, both residual."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, conditioned: bool) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding width {dim} is not divisible by {heads} heads")
        self.heads, self.window, self.shift = heads, window, shift
        self.norm1, self.norm2 = TimeConditionedNorm(dim, conditioned), TimeConditionedNorm(dim, conditioned)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        hidden = max(1, round(mlp_ratio * dim))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _attend(self, z: torch.Tensor) -> torch.Tensor:
        b, h, w, d = z.shape
        s, win = self.shift, self.window
        if s:
            z = torch.roll(z, (-s, -s), (1, 2))
        z = z.reshape(b, h // win, win, w // win, win, d).permute(0, 1, 3, 2, 4, 5).reshape(-1, win * win, d)
        q, k, v = self.qkv(z).reshape(z.shape[0], win * win, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(-1, win * win, d)
        a = self.out(a).reshape(b, h // win, w // win, win, win, d).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, d)
        return torch.roll(a, (s, s), (1, 2)) if s else a

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``z [B, h, w, dim]`` tokens, ``t [B]`` lead times."""
        z = z + self._attend(self.norm1(z, t))
        return z + self.mlp(self.norm2(z, t))


class Stage(nn.Module):
    """``depth`` window blocks, alternately unshifted and shifted by half a window."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float, conditioned: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(WindowBlock(dim, heads, window, (i % 2) * (window // 2), mlp_ratio, conditioned)
                                    for i in range(depth))

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Apply the blocks in turn."""
        for block in self.blocks:
            z = block(z, t)
        return z


def _merge(z: torch.Tensor) -> torch.Tensor:
    """``[B, h, w, d] -> [B, h/2, w/2, 4d]``: each 2 x 2 group of tokens side by side."""
    b, h, w, d = z.shape
    return z.reshape(b, h // 2, 2, w // 2, 2, d).permute(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * d)


def _expand(z: torch.Tensor, factor: int) -> torch.Tensor:
    """``[B, h, w, f^2 d] -> [B, f h, f w, d]``: the inverse of a merge by ``factor``."""
    b, h, w, c = z.shape
    d = c // factor**2
    return z.reshape(b, h, w, factor, factor, d).permute(0, 1, 3, 2, 4, 5).reshape(b, h * factor, w * factor, d)


class ScOT(nn.Module):
    """A Swin U-Net transformer with lead-time-conditioned layer norms, on ``[B, C, H, W]``.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input (the lead time last, with ``conditioned``) and output.
    patch_size
        Pixels per side of a token. A grid whose sides are not multiples of
        ``patch_size * window * 2^(len(depths) - 1)`` is continued
        periodically at its far ends up to one, and the output cropped.
    embed_dim
        Token width of the first stage (doubled at every merge).
    depths, heads
        Blocks and attention heads of each encoder stage (the decoder mirrors them).
    window
        Tokens per side of an attention window.
    mlp_ratio
        Hidden width of the blocks' MLPs over the token width.
    conditioned
        Read the last input channel as the lead time and condition every norm on it.

    References
    ----------
    Herde, Raonic, Rohner, Kappeli, Molinaro, de Bezenac, Mishra, "Poseidon:
    Efficient Foundation Models for PDEs", NeurIPS 2024, sec. 3 (scOT);
    Liu et al., "Swin Transformer V2", CVPR 2022 (windows, merging).

    Examples
    --------
    >>> net = ScOT(2, 1, patch_size=2, embed_dim=8, depths=(2, 2), heads=(2, 2), window=2,
    ...            conditioned=True)
    >>> net(torch.randn(3, 2, 16, 16)).shape
    torch.Size([3, 1, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, *, patch_size: int = 4,
                 embed_dim: int = 48, depths: Sequence[int] = (2, 2, 2), heads: Sequence[int] = (3, 6, 12),
                 window: int = 4, mlp_ratio: float = 4.0, conditioned: bool = False) -> None:
        super().__init__()
        if len(depths) != len(heads) or not depths:
            raise ValueError(f"depths {tuple(depths)} and heads {tuple(heads)} need one entry per stage")
        self.conditioned, self.patch_size = conditioned, patch_size
        self.step = patch_size * window * 2 ** (len(depths) - 1)
        fields = in_channels - (1 if conditioned else 0) + 2  # and the two grid coordinates
        dims = [embed_dim * 2**i for i in range(len(depths))]
        self.coordinates = GridCoordinates("periodic")
        self.embed = nn.Linear(fields * patch_size**2, embed_dim)
        self.encoder = nn.ModuleList(Stage(d, n, h, window, mlp_ratio, conditioned)
                                     for d, n, h in zip(dims, depths, heads, strict=True))
        self.merges = nn.ModuleList(nn.Linear(4 * d, 2 * d) for d in dims[:-1])
        self.expands = nn.ModuleList(nn.Linear(2 * d, 4 * d) for d in dims[:-1])  # 2d tokens -> 4 tokens of d
        self.fuse = nn.ModuleList(nn.Linear(2 * d, d) for d in dims[:-1])
        self.decoder = nn.ModuleList(Stage(d, n, h, window, mlp_ratio, conditioned)
                                     for d, n, h in zip(dims[:-1], depths[:-1], heads[:-1], strict=True))
        self.norm = TimeConditionedNorm(embed_dim, conditioned)
        self.head = nn.Linear(embed_dim, out_channels * patch_size**2)

    def forward(self, x: InFields) -> OutFields:
        """``[B, in_channels, H, W] -> [B, out_channels, H, W]``."""
        if x.ndim != 4:
            raise ValueError(f"scOT takes [batch, channel, H, W], got {tuple(x.shape)}")
        size = tuple(x.shape[-2:])
        extra = [-n % self.step for n in size]
        if self.conditioned:
            t, x = x[:, -1].mean((-2, -1)), x[:, :-1]
        else:
            t = x.new_zeros(x.shape[0])
        x = self.coordinates(x, 2)
        if any(extra):  # periodic continuation up to whole windows at every stage, cropped at the end
            x = nn.functional.pad(x, (0, extra[1], 0, extra[0]), mode="circular")
        p = self.patch_size
        b, c, h, w = x.shape
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, h // p, w // p, -1)
        z = self.embed(patches)
        skips = []
        for i, stage in enumerate(self.encoder):
            z = stage(z, t)
            if i < len(self.merges):
                skips.append(z)
                z = self.merges[i](_merge(z))
        for i in reversed(range(len(self.decoder))):
            z = _expand(self.expands[i](z), 2)
            z = self.decoder[i](self.fuse[i](torch.cat([z, skips[i]], dim=-1)), t)
        out = _expand(self.head(self.norm(z, t)), p)  # [B, H, W, out]
        return out.permute(0, 3, 1, 2)[..., : size[0], : size[1]]
