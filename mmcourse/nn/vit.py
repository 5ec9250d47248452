"""Vision Transformer with CLIP's vision-tower layout and parameter names (open_clip `VisionTransformer`):
conv1 (patch embedding, no bias) -> [class_embedding; patches] + positional_embedding -> ln_pre -> transformer
-> ln_post on the CLS token -> proj (no bias). open_clip ViT weights port by renaming
`attn.in_proj_weight` / `attn.in_proj_bias` to `attn.qkv.weight` / `attn.qkv.bias`; other keys are the same.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from mmcourse.nn.transformer import Transformer, check_heads
from mmcourse.utils import check_number, check_sizes, check_tensor

__all__ = ["patchify", "VisionTransformer", "ViTOutput"]


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """(B, C, H, W) -> (B, N, C·p·p), patches row by row, each flattened as (C, p, p) like conv1.weight.

    So conv1(images) == patchify(images, p) @ conv1.weight.flatten(1).T: a patch embedding is a Linear.
    """
    check_tensor(images, "images", shape=("B", "C", "H", "W"))
    check_sizes(patch_size=patch_size)
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"images: H and W must be multiples of patch_size={patch_size}, got {H}x{W}")
    x = images.reshape(B, C, H // patch_size, patch_size, W // patch_size, patch_size)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(B, (H // patch_size) * (W // patch_size), C * patch_size**2)


class ViTOutput(NamedTuple):
    """What `VisionTransformer.forward` returns when a return_tokens / _attn / _hidden flag is set."""

    pooled: Tensor  # (B, output_dim or width): ln_post(CLS) @ proj
    tokens: Tensor | None  # (B, N, width): ln_post of the last layer's patch tokens (no CLS)
    attentions: tuple[Tensor, ...] | None  # per layer (B, heads, 1 + N, 1 + N); index 0 is CLS
    hidden_states: tuple[Tensor, ...] | None  # layers + 1 tensors (B, 1 + N, width), before ln_post


class VisionTransformer(nn.Module):
    """ViT for square images of side `image_size`; N = (image_size / patch_size)² patch tokens + 1 CLS token.

    conv_stem=True replaces the 4x4 patchify by three 3x3 convs (strides 2, 1, 2; BatchNorm and GELU after the
    first two; patch_size must be 4), an "early convolutions" stem (Xiao et al., 2021): tiny CLIPs learn shape
    from it in far fewer steps. output_dim=n_classes gives a classifier (bias-free head);
    output_dim=None returns ln_post(CLS) of width `width`.
    """

    def __init__(self, image_size: int = 32, patch_size: int = 4, width: int = 64, layers: int = 4,
                 heads: int = 4, mlp_ratio: float = 4.0, output_dim: int | None = None, act: str = "gelu",
                 conv_stem: bool = False, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        check_sizes(image_size=image_size, patch_size=patch_size, in_channels=in_channels)
        if output_dim is not None:
            check_sizes(output_dim=output_dim)
        check_heads(width, heads)
        if image_size % patch_size:
            raise ValueError(f"image_size must be divisible by patch_size: got {image_size} and {patch_size}")
        if conv_stem and patch_size != 4:
            raise ValueError(f"conv_stem downsamples by 4, so patch_size must be 4, got {patch_size}")
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.grid_size = image_size // patch_size
        if conv_stem:
            c = width // 2
            self.conv1 = nn.Sequential(nn.Conv2d(in_channels, c, 3, stride=2, padding=1, bias=False),
                                       nn.BatchNorm2d(c), nn.GELU(),
                                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.GELU(),
                                       nn.Conv2d(c, width, 3, stride=2, padding=1, bias=False))
        else:
            self.conv1 = nn.Conv2d(in_channels, width, patch_size, stride=patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid_size**2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act, dropout=dropout)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim)) if output_dim is not None else None

    def embed(self, images: Tensor) -> Tensor:
        """(B, C, image_size, image_size) -> the transformer's input tokens (B, 1 + N, width)."""
        size = self.image_size
        check_tensor(images, "images", shape=("B", self.in_channels, size, size), dtype="float")
        x = self.conv1(images).flatten(2).transpose(1, 2)  # (B, N, width)
        cls = self.class_embedding.expand(x.shape[0], 1, -1).to(x.dtype)
        return self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype))

    def forward(self, images: Tensor, return_tokens: bool = False, return_attn: bool = False,
                return_hidden: bool = False):
        """images -> pooled (B, output_dim or width), or a `ViTOutput` when any return_* flag is set."""
        extras = return_attn or return_hidden
        out = self.transformer(self.embed(images), return_attn=return_attn, return_hidden=return_hidden)
        x = self.ln_post(out.x if extras else out)
        pooled = x[:, 0] @ self.proj if self.proj is not None else x[:, 0]
        if not (extras or return_tokens):
            return pooled
        return ViTOutput(pooled, x[:, 1:] if return_tokens else None,
                         out.attentions if extras else None, out.hidden_states if extras else None)

    def patch_tokens(self, images: Tensor, layer: int = -2) -> Tensor:
        """Patch tokens (B, N, width) after block `layer`, CLS dropped, no ln_post.

        layer=-2 (penultimate) is what LLaVA feeds its projector; layer=-1 is the last block.
        """
        check_number(layer, "layer", integer=True)
        hidden = self.transformer(self.embed(images), return_hidden=True).hidden_states
        if not -len(hidden) < layer < len(hidden):
            raise IndexError(f"layer must be in [-{len(hidden) - 1}, {len(hidden) - 1}], got {layer}")
        return hidden[layer][:, 1:]
