"""scOT: windowed attention against a direct computation, and conditioning on the lead time."""

import math

import pytest
import torch

from pdeforge.models import ScOT
from pdeforge.models._scot import WindowBlock


def _direct_window_attention(block: WindowBlock, z: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_head)) v inside every (cyclically shifted) window, one window at a time."""
    b, h, w, d = z.shape
    win, s, heads = block.window, block.shift, block.heads
    rolled = torch.roll(z, (-s, -s), (1, 2))
    out = torch.zeros_like(rolled)
    for i in range(0, h, win):
        for j in range(0, w, win):
            tokens = rolled[:, i:i + win, j:j + win].reshape(b, win * win, d)
            q, k, v = block.qkv(tokens).split(d, dim=-1)
            per_head = []
            for head in range(heads):
                part = slice(head * d // heads, (head + 1) * d // heads)
                scores = q[..., part] @ k[..., part].transpose(1, 2) / math.sqrt(d // heads)
                per_head.append(scores.softmax(-1) @ v[..., part])
            out[:, i:i + win, j:j + win] = block.out(torch.cat(per_head, -1)).reshape(b, win, win, d)
    return torch.roll(out, (s, s), (1, 2))


@pytest.mark.parametrize("shift", [0, 1])
def test_windowed_attention_equals_a_direct_per_window_computation(shift):
    torch.manual_seed(0)
    block = WindowBlock(8, 2, window=2, shift=shift, mlp_ratio=2.0, conditioned=False).double()
    z = torch.randn(3, 4, 6, 8, dtype=torch.float64)
    torch.testing.assert_close(block._attend(z), _direct_window_attention(block, z), rtol=1e-12, atol=1e-12)


def test_the_output_depends_on_the_lead_time_only_through_its_value():
    torch.manual_seed(1)
    net = ScOT(2, 1, patch_size=2, embed_dim=8, depths=(2, 2), heads=(2, 2), window=2, conditioned=True).double()
    state = torch.randn(2, 1, 16, 16, dtype=torch.float64)

    def at(t: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([state, t.expand(2, 1, 16, 16)], 1))

    one = torch.ones(1, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(at(0.3 * one), at(2.0 * one))  # the conditioning starts at zero
    with torch.no_grad():
        for module in net.modules():
            if getattr(module, "film", None) is not None:
                module.film.weight.normal_(0, 0.5)
    assert float((at(0.3 * one) - at(2.0 * one)).detach().abs().max()) > 1e-3
    wavy = 0.3 * one + 0.1 * torch.sin(2 * math.pi * torch.arange(16.0, dtype=torch.float64) / 16)
    torch.testing.assert_close(at(wavy), at(0.3 * one))  # the lead time is the channel's mean
