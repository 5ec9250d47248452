"""Pre-LN transformer blocks (CLIP / GPT-2 layout) and a stack that can hand back every layer's attention.

Not `nn.TransformerEncoderLayer`: its defaults are post-LN, ReLU, a 2048-wide FFN and dropout 0.1, and without
`batch_first=True` it reads (B, L, D) input as (L, B, D) and attends across the batch. Here every tensor is
batch-first and a block is x + attn(ln_1(x)) [+ cross_attn(ln_cross(x), context)], then x + mlp(ln_2(x)).
`norm_first=False` gives the post-LN layout of the original Transformer (x = ln_1(x + attn(x)), ...), for
comparison only: every model in the course is pre-LN.
Parameter names follow open_clip (ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj, transformer.resblocks.i).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from mmcourse.nn.attention import KVCache, MultiheadAttention
from mmcourse.utils import check_number, check_sizes, check_tensor

__all__ = ["QuickGELU", "MLP", "ResidualAttentionBlock", "Transformer", "TransformerOutput"]


class QuickGELU(nn.Module):
    """x·sigmoid(1.702x): the GELU approximation OpenAI's CLIP was trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = {"gelu": nn.GELU, "quick_gelu": QuickGELU}


class MLP(nn.Module):
    """c_fc -> activation -> c_proj, hidden width = mlp_ratio · width."""

    def __init__(self, width: int, mlp_ratio: float = 4.0, act: str = "gelu"):
        super().__init__()
        check_sizes(width=width)
        check_number(mlp_ratio, "mlp_ratio", low=0, low_open=True)
        if act not in ACTIVATIONS:
            raise ValueError(f"act: expected one of {sorted(ACTIVATIONS)}, got {act!r}")
        self.width = width
        hidden = int(width * mlp_ratio)
        self.c_fc = nn.Linear(width, hidden)
        self.act = ACTIVATIONS[act]()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        check_tensor(x, "x", dtype="float")
        if x.ndim == 0 or x.shape[-1] != self.width:
            raise ValueError(f"x: expected shape (..., {self.width}), got {tuple(x.shape)}")
        return self.c_proj(self.act(self.c_fc(x)))


def check_heads(width: int, heads: int) -> None:
    """A clear error unless width and heads are sizes and heads divide width."""
    check_sizes(width=width, heads=heads)
    if width % heads:
        raise ValueError(f"width must be divisible by heads: got width={width}, heads={heads}")


class ResidualAttentionBlock(nn.Module):
    """Pre-LN block: self-attention, optional cross-attention to a context (B, Lc, cross_dim), MLP.

    norm_first=False: post-LN, each LayerNorm applied after its residual sum (same parameters and names).
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, act: str = "gelu",
                 cross_dim: int | None = None, dropout: float = 0.0, norm_first: bool = True):
        super().__init__()
        check_heads(width, heads)
        if cross_dim is not None:
            check_sizes(cross_dim=cross_dim)
        self.norm_first, self.width = norm_first, width
        self.ln_1 = nn.LayerNorm(width)
        self.attn = MultiheadAttention(width, heads, dropout=dropout)
        if cross_dim is not None:
            self.ln_cross = nn.LayerNorm(width)
            self.cross_attn = MultiheadAttention(width, heads, kv_dim=cross_dim, dropout=dropout)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio, act)
        self.drop = nn.Dropout(dropout)
        self.has_cross = cross_dim is not None

    def forward(self, x: Tensor, context: Tensor | None = None, attn_mask: Tensor | None = None,
                key_padding_mask: Tensor | None = None, is_causal: bool = False,
                context_padding_mask: Tensor | None = None, return_weights: bool = False,
                cache: KVCache | None = None):
        """x (B, L, width) -> x, or (x, attn weights (B, H, L, L), cross weights (B, H, L, Lc) or None).

        context=None skips the cross-attention sub-layer (BLIP runs its text encoder both ways).
        With a `cache` (generation) x holds only the new positions; see `MultiheadAttention.forward`.
        """
        check_tensor(x, "x", shape=("B", "L", self.width), dtype="float")
        if context is not None and not self.has_cross:
            raise ValueError("context given to a block without cross-attention; build it with cross_dim=...")
        a, attn_w = self.attn(self._pre(self.ln_1, x), attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                              is_causal=is_causal, return_weights=return_weights, cache=cache)
        x = self._add(self.ln_1, x, a)
        cross_w = None
        if context is not None:
            c, cross_w = self.cross_attn(self._pre(self.ln_cross, x), context, key_padding_mask=context_padding_mask,
                                         return_weights=return_weights, cache=cache)
            x = self._add(self.ln_cross, x, c)
        x = self._add(self.ln_2, x, self.mlp(self._pre(self.ln_2, x)))
        return (x, attn_w, cross_w) if return_weights else x

    def _pre(self, ln: nn.LayerNorm, x: Tensor) -> Tensor:
        """A sub-layer's input: ln(x) (pre-LN) or x itself (post-LN)."""
        return ln(x) if self.norm_first else x

    def _add(self, ln: nn.LayerNorm, x: Tensor, out: Tensor) -> Tensor:
        """The residual sum: x + out (pre-LN) or ln(x + out) (post-LN)."""
        return x + self.drop(out) if self.norm_first else ln(x + self.drop(out))


class TransformerOutput(NamedTuple):
    """What `Transformer(..., return_attn=True / return_hidden=True)` returns; unrequested fields None."""

    x: Tensor  # (B, L, width), output of the last block
    hidden_states: tuple[Tensor, ...] | None  # layers + 1: the input, then each block's output
    attentions: tuple[Tensor, ...] | None  # per layer (B, H, L, L)
    cross_attentions: tuple[Tensor | None, ...] | None  # per layer (B, H, L, Lc), None without context


class Transformer(nn.Module):
    """A stack of `layers` pre-LN blocks of width `width` with `heads` heads (open_clip's argument names).

    norm_first=False stacks post-LN blocks instead (for comparison).
    """

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, act: str = "gelu",
                 cross_dim: int | None = None, dropout: float = 0.0, norm_first: bool = True):
        super().__init__()
        check_number(layers, "layers", integer=True, low=0, high=1000)  # more than any model has: a typo
        check_heads(width, heads)
        self.width, self.layers, self.heads = width, layers, heads
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, mlp_ratio, act, cross_dim, dropout, norm_first)
            for _ in range(layers)
        )

    def forward(self, x: Tensor, context: Tensor | None = None, *, attn_mask: Tensor | None = None,
                key_padding_mask: Tensor | None = None, is_causal: bool = False,
                context_padding_mask: Tensor | None = None, return_attn: bool = False,
                return_hidden: bool = False, cache: KVCache | None = None):
        """x (B, L, width) -> x (B, L, width), or a `TransformerOutput` when return_attn / return_hidden.

        `cache`: one `KVCache` shared by every block; x is then the L new positions after the cached ones.
        """
        check_tensor(x, "x", shape=("B", "L", self.width), dtype="float")
        masks = dict(attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                     context_padding_mask=context_padding_mask, cache=cache)
        hidden, attns, cross = [x], [], []
        for block in self.resblocks:
            if return_attn:
                x, a, c = block(x, context, **masks, return_weights=True)
                attns.append(a)
                cross.append(c)
            else:
                x = block(x, context, **masks)
            hidden.append(x)
        if not (return_attn or return_hidden):
            return x
        return TransformerOutput(x, tuple(hidden) if return_hidden else None,
                                 tuple(attns) if return_attn else None, tuple(cross) if return_attn else None)
