"""Latent Spectral Models: a U-Net whose skips pass through neural spectral blocks.

Wu, Hu, Luo, Wang, Long, "Solving High-Dimensional PDEs with Latent Spectral
Models", ICML 2023, sec. 3. A hierarchical projection network (a U-Net: 2x2
max-pooling down, bilinear up-sampling, skips by concatenation) carries the
field to ``depth + 1`` scales. At every scale a :class:`NeuralSpectralBlock`
works on the feature map before it is used by the up path:

1. *patchify*: cut the map into ``p1 x p2`` patches;
2. *coordinate -> latent*: ``tokens`` learned queries attend, per head, to the
   pixels of each patch (keys and values are a 1x1 map of the pixels),
   giving a few latent tokens per patch;
3. *solve in latent space*: each token channel ``z`` moves by a learned
   trigonometric series, ``z + sum_k a_k cos(pi k z / K) + b_k sin(pi k z / K)``
   (:class:`LatentSpectralTransition`, the paper's basis operators);
4. *latent -> coordinate*: every pixel (query, a 1x1 map of the pixel)
   attends to its patch's updated tokens; the result is added to the pixel.

The patches must tile every scale, so the lifted field is zero-padded at the
far end of each axis to the next multiple of ``2**depth * patch`` and cropped
back at the end: at ``s = 85`` with ``depth = 4`` and 6x6 patches that is 96,
the paper's padding of 11. The default options are the paper's Darcy setting
(the authors' ``scripts/darcy_lsm.sh``). Like the U-Net, the model is tied to
the grid it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from pdeforge._typing import Fields, InFields, OutFields
from pdeforge.models._layers import ChannelMLP, GridCoordinates, Pointwise

__all__ = ["LSM", "LatentSpectralTransition", "NeuralSpectralBlock", "patchify", "spectral_basis", "unpatchify"]

Tokens = Float[Tensor, "batch channels tokens"]
"""Latent tokens, one column of ``channels`` values per token."""

Patches = Float[Tensor, "patches channels p1 p2"]
"""The patches of a batch of 2-D fields, ``batch * n1 * n2`` of them, batch-major."""


def spectral_basis(z: Tensor, num_basis: int) -> Tensor:
    """The trigonometric basis of the latent transition, evaluated at every entry of ``z``.

    ``cos(pi k z / K)`` for ``k = 0 .. K - 1`` followed by ``sin(pi k z / K)``
    for ``k = 1 .. K - 1``, ``K = num_basis``: the ``2 K - 1`` functions that
    the paper's ``K`` frequencies ``k / K`` span (``sin 0`` is left out, it is
    identically zero).

    Parameters
    ----------
    z
        Any tensor.
    num_basis
        ``K``, the number of frequencies.

    Returns
    -------
    Tensor
        ``[*z.shape, 2 K - 1]``.

    Examples
    --------
    >>> spectral_basis(torch.tensor([0.0, 2 / 3]), 2)  # cos 0, cos(pi z / 2), sin(pi z / 2)
    tensor([[1.0000, 1.0000, 0.0000],
            [1.0000, 0.5000, 0.8660]])
    """
    k = torch.arange(num_basis, dtype=z.dtype, device=z.device) * (math.pi / num_basis)
    phase = z[..., None] * k
    return torch.cat([torch.cos(phase), torch.sin(phase[..., 1:])], dim=-1)


def patchify(x: Fields, patch: tuple[int, int]) -> Patches:
    """Cut ``[batch, C, H, W]`` into ``p1 x p2`` patches, ``[batch * (H / p1) * (W / p2), C, p1, p2]``.

    Patch ``(b, i, j)`` (row-major over ``b, i, j``) is ``x[b, :, i p1:(i + 1) p1, j p2:(j + 1) p2]``.

    Parameters
    ----------
    x
        Fields whose height and width are multiples of the patch's.
    patch
        ``(p1, p2)``.

    Returns
    -------
    Tensor
        The patches.
    """
    b, c, h, w = x.shape
    p1, p2 = patch
    if h % p1 or w % p2:
        raise ValueError(f"a {h}x{w} field does not split into {p1}x{p2} patches")
    x = x.reshape(b, c, h // p1, p1, w // p2, p2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(-1, c, p1, p2)


def unpatchify(patches: Patches, shape: tuple[int, int]) -> Fields:
    """The inverse of :func:`patchify`: patches back to ``[batch, C, H, W]`` with ``shape = (H, W)``.

    Parameters
    ----------
    patches
        ``[batch * (H / p1) * (W / p2), C, p1, p2]``.
    shape
        ``(H, W)``.

    Returns
    -------
    Tensor
        The fields.
    """
    n, c, p1, p2 = patches.shape
    n1, n2 = shape[0] // p1, shape[1] // p2
    x = patches.reshape(n // (n1 * n2), n1, n2, c, p1, p2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(-1, c, shape[0], shape[1])


def attention_weights(queries: Tensor, keys: Tensor) -> Tensor:
    """``softmax(q k^T)`` over the keys, ``[..., Lq, d] x [..., Lk, d] -> [..., Lq, Lk]``.

    Unscaled dot products, as in the authors' code; each row is a probability vector.

    Parameters
    ----------
    queries, keys
        ``[..., Lq, d]`` and ``[..., Lk, d]``.

    Returns
    -------
    Tensor
        ``[..., Lq, Lk]``, rows summing to 1.
    """
    return torch.softmax(queries @ keys.transpose(-1, -2), dim=-1)


class LatentSpectralTransition(nn.Module):
    """``z -> z + sum_m w_cm phi_m(z)`` on each channel ``c`` of the latent tokens.

    ``phi`` is :func:`spectral_basis` (``2 K - 1`` cosines and sines of
    frequencies ``pi k / K``); the coefficients ``w`` are learned, one set per
    channel, the same for every token: the paper's basis operators, a
    truncated trigonometric series applied in latent space.

    Parameters
    ----------
    channels
        Channels of a token.
    num_basis
        ``K``, the number of frequencies.

    References
    ----------
    Wu, Hu, Luo, Wang, Long, "Solving High-Dimensional PDEs with Latent
    Spectral Models", ICML 2023, sec. 3 (neural spectral block).
    """

    def __init__(self, channels: int, num_basis: int) -> None:
        super().__init__()
        if num_basis < 1:
            raise ValueError(f"num_basis must be >= 1, got {num_basis}")
        self.num_basis = num_basis
        self.weight = nn.Parameter(torch.rand(channels, 2 * num_basis - 1) / channels)

    def forward(self, z: Tokens) -> Tokens:
        """Apply the transition to ``[batch, channels, tokens]``.

        Parameters
        ----------
        z
            Latent tokens.

        Returns
        -------
        Tensor
            The updated tokens, same shape.
        """
        return z + torch.einsum("bctm,cm->bct", spectral_basis(z, self.num_basis), self.weight)


class NeuralSpectralBlock(nn.Module):
    """Patchify, project to latent tokens, apply the spectral transition, project back (2-D).

    Parameters
    ----------
    channels
        Channels of the feature map (a multiple of ``heads``).
    num_basis
        Frequencies of the :class:`LatentSpectralTransition`.
    num_tokens
        Latent tokens per patch (learned queries).
    patch
        ``(p1, p2)``, the patch size.
    heads
        Attention heads; each sees ``channels / heads`` channels.

    References
    ----------
    Wu, Hu, Luo, Wang, Long, "Solving High-Dimensional PDEs with Latent
    Spectral Models", ICML 2023, sec. 3 (neural spectral block).
    """

    def __init__(self, channels: int, num_basis: int, num_tokens: int, patch: tuple[int, int],
                 heads: int = 8) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.patch: tuple[int, int] = (int(patch[0]), int(patch[1]))
        self.heads = heads
        self.latent = nn.Parameter(torch.rand(heads, num_tokens, channels // heads) / channels)
        self.keys_values = Pointwise(channels, 2 * channels)
        self.queries = Pointwise(channels, channels)
        self.transition = LatentSpectralTransition(channels, num_basis)

    def _split(self, x: Tensor) -> Tensor:
        """``[n, heads * d, L] -> [n, heads, L, d]``."""
        n, c, length = x.shape
        return x.reshape(n, self.heads, c // self.heads, length).transpose(-1, -2)

    def encode(self, patches: Patches) -> Tokens:
        """Coordinate -> latent: the learned queries attend to each patch's pixels (plus a residual).

        Parameters
        ----------
        patches
            ``[n, channels, p1, p2]``.

        Returns
        -------
        Tensor
            ``[n, channels, tokens]``.
        """
        keys, values = (self._split(part) for part in self.keys_values(patches).flatten(2).chunk(2, dim=1))
        tokens = attention_weights(self.latent, keys) @ values + self.latent  # [n, heads, tokens, d]
        return tokens.transpose(-1, -2).flatten(1, 2)

    def decode(self, patches: Patches, tokens: Tokens) -> Patches:
        """Latent -> coordinate: each pixel attends to its patch's tokens (keys = values), plus the pixel.

        Parameters
        ----------
        patches
            ``[n, channels, p1, p2]``.
        tokens
            ``[n, channels, tokens]``.

        Returns
        -------
        Tensor
            ``[n, channels, p1, p2]``.
        """
        queries = self._split(self.queries(patches).flatten(2))
        tokens = self._split(tokens)
        out = attention_weights(queries, tokens) @ tokens  # [n, heads, p1 p2, d]
        return out.transpose(-1, -2).reshape(patches.shape) + patches

    def forward(self, x: Fields) -> Fields:
        """Map ``[batch, channels, H, W]`` (multiples of the patch) to the same shape.

        Parameters
        ----------
        x
            Feature map.

        Returns
        -------
        Tensor
            The updated feature map.
        """
        patches = patchify(x, self.patch)
        tokens = self.transition(self.encode(patches))
        return unpatchify(self.decode(patches, tokens), (x.shape[-2], x.shape[-1]))


def _double_conv(cin: int, cout: int, mid: int | None = None) -> nn.Sequential:
    mid = mid or cout
    return nn.Sequential(
        nn.Conv2d(cin, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
        nn.Conv2d(mid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
    )


class _Hierarchy(nn.Module):
    """The U-Net with a neural spectral block on every scale's skip, on padded fields."""

    def __init__(self, width: int, depth: int, block) -> None:
        super().__init__()
        # Level widths w, 2w, ..., 2^(depth-1) w and, at the bottom, 2^(depth-1) w again: the authors'
        # bilinear U-Net halves the bottom so that up-sampled and skip maps have equal channels.
        self.widths = [width * 2**min(level, depth - 1) for level in range(depth + 1)]
        self.inc = _double_conv(width, width)
        self.down = nn.ModuleList(_double_conv(a, b) for a, b in zip(self.widths[:-1], self.widths[1:], strict=True))
        self.blocks = nn.ModuleList(block(c) for c in self.widths)
        self.up = nn.ModuleList(_double_conv(2 * self.widths[level], self.widths[max(level - 1, 0)], self.widths[level])
                                for level in reversed(range(depth)))

    def levels(self, x: Fields) -> list[Fields]:
        """The encoder's feature maps, finest first, after their neural spectral blocks."""
        maps = [self.inc(x)]
        for down in self.down:
            maps.append(down(F.max_pool2d(maps[-1], 2)))
        return [block(m) for block, m in zip(self.blocks, maps, strict=True)]

    def forward(self, x: Fields) -> Fields:
        maps = self.levels(x)
        y = maps.pop()
        for up in self.up:
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
            y = up(torch.cat([maps.pop(), y], dim=1))
        return y


class LSM(nn.Module):
    """Latent Spectral Model on ``[batch, in_channels, H, W]``, any ``H, W``.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input and output fields.
    width
        Channels of the finest scale (the paper's ``d_model``); they double
        per scale down to ``2**(depth - 1) * width``. A multiple of ``heads``.
    num_basis
        Frequencies of each latent spectral transition.
    num_tokens
        Latent tokens per patch.
    patch_size
        Patch size, one int for both axes or ``(p1, p2)``; the same on every scale.
    depth
        Down-sampling steps of the U-Net (the authors' code: 4).
    heads
        Attention heads of the latent projections.
    projection_channels
        Hidden channels of the pointwise output MLP.
    coordinates
        Appends the grid coordinates to the input (the authors' code: nodes
        ``j / (n - 1)``), or ``None``.

    References
    ----------
    Wu, Hu, Luo, Wang, Long, "Solving High-Dimensional PDEs with Latent
    Spectral Models", ICML 2023, sec. 3; settings from the authors' code,
    github.com/thuml/Latent-Spectral-Models (``scripts/darcy_lsm.sh``).

    Examples
    --------
    >>> net = LSM(1, 2, width=8, num_basis=3, num_tokens=2, patch_size=3, depth=2, heads=2)
    >>> net.padded_shape((33, 20))
    (36, 24)
    >>> net(torch.randn(2, 1, 33, 20)).shape
    torch.Size([2, 2, 33, 20])
    """

    def __init__(self, in_channels: int, out_channels: int, *, width: int = 64, num_basis: int = 12,
                 num_tokens: int = 4, patch_size: int | Sequence[int] = 6, depth: int = 4, heads: int = 8,
                 projection_channels: int = 128, coordinates: GridCoordinates | None = None) -> None:
        super().__init__()
        patch = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        if len(patch) != 2 or min(patch) < 1:
            raise ValueError(f"patch_size must be a positive int or two of them, got {patch_size!r}")
        if depth < 1 or width < 1 or num_tokens < 1:
            raise ValueError(f"an LSM needs depth, width and num_tokens >= 1, got {depth}, {width}, {num_tokens}")
        self.patch = patch
        self.depth = depth
        self.coordinates = coordinates
        self.lifting = Pointwise(in_channels + (2 if coordinates is not None else 0), width)
        self.body = _Hierarchy(width, depth,
                               lambda c: NeuralSpectralBlock(c, num_basis, num_tokens, patch, heads))
        self.head = Pointwise(width, width)
        self.projection = ChannelMLP(width, projection_channels, out_channels)

    def padded_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The grid the U-Net works on: each axis rounded up to a multiple of ``2**depth * patch``.

        Parameters
        ----------
        shape
            ``(H, W)`` of the input.

        Returns
        -------
        tuple of int
            The smallest ``(H', W') >= (H, W)`` that every scale's patches tile.
        """
        steps = [2**self.depth * p for p in self.patch]
        return tuple(-(-n // step) * step for n, step in zip(shape, steps, strict=True))

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
            raise ValueError(f"LSM expects [batch, channel, H, W], got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if self.coordinates is not None:
            x = self.coordinates(x, 2)
        x = self.lifting(x)
        ph, pw = self.padded_shape((h, w))
        x = F.pad(x, (0, pw - w, 0, ph - h))  # zeros at the far end, as the authors pad the lifted field
        x = self.head(self.body(x))[..., :h, :w]
        return self.projection(x)
