"""A small UNet for diffusion (Ho et al. 2020; the layout of Dhariwal & Nichol's ADM, scaled down to CPU size).

    x (B, C, S, S), t (B,)  ->  ε̂ (B, C, S, S)

    t -> sinusoidal features -> MLP -> emb (B, emb_dim)   (+ `cond` (B, emb_dim): unCLIP adds its CLIP projection here)
    conv_in -> [ResBlock × blocks, down] per level -> middle: ResBlock, self-attention, ResBlock
            -> [ResBlock × (blocks + 1) on the skip concatenated, up] per level -> GroupNorm, SiLU, conv_out

Every ResBlock reads `emb` through FiLM: its second normalisation is scaled by (1 + γ) and shifted by β, with
(γ, β) = Linear(SiLU(emb)). The output convolution starts at zero, so an untrained UNet predicts ε̂ = 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.nn.attention import MultiheadAttention
from mmcourse.utils import check_sizes, check_tensor

__all__ = ["UNet", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer-style sinusoids of the timesteps t (B,) -> (B, dim): [cos(t·f_i), sin(t·f_i)],
    f_i = max_period^(−i / (dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv; FiLM from emb; GroupNorm, SiLU, conv; plus the (1×1-projected) input."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        gamma, beta = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + gamma) + beta))
        return self.skip(x) + h


class SpatialAttention(nn.Module):
    """Pre-norm self-attention over the H·W positions of a feature map, with a residual."""

    def __init__(self, channels: int, heads: int, groups: int = 8):
        super().__init__()
        self.norm, self.attn = nn.GroupNorm(groups, channels), MultiheadAttention(channels, heads)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H·W, C)
        out, _ = self.attn(tokens)
        return x + out.transpose(1, 2).reshape(B, C, H, W)


class UNet(nn.Module):
    """ε-prediction network for images (B, in_channels, image_size, image_size).

    width: channels of the first level; level i has width · mults[i] channels and half the previous side.
    emb_dim (default 4 · width): the time embedding's size, and the size of the `cond` vector that forward adds.
    """

    def __init__(self, image_size: int = 16, in_channels: int = 3, width: int = 32, mults: tuple[int, ...] = (1, 2, 2),
                 blocks: int = 1, heads: int = 4, emb_dim: int | None = None):
        super().__init__()
        check_sizes(image_size=image_size, in_channels=in_channels, width=width, blocks=blocks)
        if image_size % 2 ** (len(mults) - 1):
            raise ValueError(f"image_size must be divisible by 2^(levels - 1) = {2 ** (len(mults) - 1)} for "
                             f"{len(mults)} levels, got {image_size}")
        self.image_size, self.in_channels, self.width = image_size, in_channels, width
        self.emb_dim = emb_dim = emb_dim or 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(in_channels, width, 3, padding=1)
        channels = [width * m for m in mults]
        self.down, skips, c = nn.ModuleList(), [width], width
        for i, c_level in enumerate(channels):
            for _ in range(blocks):
                self.down.append(ResBlock(c, c_level, emb_dim))
                c = c_level
                skips.append(c)
            if i < len(channels) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim), SpatialAttention(c, heads), ResBlock(c, c, emb_dim)])
        self.up = nn.ModuleList()
        for i, c_level in reversed(list(enumerate(channels))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), c_level, emb_dim))
                c = c_level
            if i > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.norm_out = nn.GroupNorm(8, c)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """x (B, C, S, S), t (B,) integer timesteps, cond (B, emb_dim) added to the time embedding -> (B, C, S, S)."""
        S = self.image_size
        check_tensor(x, "x", shape=("B", self.in_channels, S, S), dtype="float")
        check_tensor(t, "t", shape=(len(x),))
        emb = self.time_mlp(timestep_embedding(t, self.width))
        if cond is not None:
            check_tensor(cond, "cond", shape=(len(x), self.emb_dim), dtype="float")
            emb = emb + cond
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        for layer in self.up:
            h = layer(torch.cat([h, hs.pop()], dim=1), emb) if isinstance(layer, ResBlock) else layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))
