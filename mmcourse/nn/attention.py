"""Multi-head attention: the one implementation every model of the course uses.

Mask conventions (the same as torch's, which itself uses two):
- `attn_mask` as in `F.scaled_dot_product_attention`: bool True = may attend (keep), False = masked out;
  a float mask is added to the scores (0 = keep, -inf = masked out). Shape broadcastable to (B, H, Lq, Lk).
  Careful: `nn.MultiheadAttention`'s bool attn_mask is the opposite (True = masked out).
- `key_padding_mask` as in `nn.MultiheadAttention`: bool (B, Lk), True = padding, ignored as a key.
- `is_causal`: query i attends keys 0..i (top-left aligned, like torch, also when Lq != Lk). With a `KVCache`
  holding P earlier positions, `MultiheadAttention` aligns it bottom-right instead: the Lq new queries are
  positions P..P+Lq-1, and query i attends keys 0..P+i.
A query row whose keys are all masked gets zero weights and a zero output (as recent torch does), never NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.utils import check_number, check_sizes, check_tensor

__all__ = ["scaled_dot_product_attention", "fast_attention", "merge_masks", "MultiheadAttention", "KVCache"]


def merge_masks(attn_mask: Tensor | None, key_padding_mask: Tensor | None, is_causal: bool,
                q: Tensor, k: Tensor) -> Tensor | None:
    """All masks as one additive float mask (0 = keep, -inf = masked out), broadcastable to (B, H, Lq, Lk)."""
    (B, H, Lq, _), Lk = q.shape, k.shape[-2]
    parts = []
    if attn_mask is not None:
        _check_broadcastable(attn_mask, "attn_mask", (B, H, Lq, Lk))
        float_mask = attn_mask.is_floating_point()
        parts.append(attn_mask.to(q.dtype) if float_mask else _additive(attn_mask, q.dtype))
    if is_causal:
        parts.append(_additive(torch.ones(Lq, Lk, dtype=torch.bool, device=q.device).tril(), q.dtype))
    if key_padding_mask is not None:
        check_tensor(key_padding_mask, "key_padding_mask", shape=(B, Lk), dtype=torch.bool)
        parts.append(_additive(~key_padding_mask[:, None, None, :], q.dtype))
    return sum(parts[1:], parts[0]) if parts else None


def scaled_dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None,
                                 is_causal: bool = False, key_padding_mask: Tensor | None = None,
                                 return_weights: bool = False, dropout_p: float = 0.0):
    """softmax(q kᵀ / √d + mask) v, written out. q (B, H, Lq, d), k (B, H, Lk, d), v (B, H, Lk, dv).

    Returns out (B, H, Lq, dv), or (out, weights (B, H, Lq, Lk)) when `return_weights`.
    The weights are returned before attention dropout (what you want to look at).
    """
    _check_qkv(q, k, v, dropout_p)
    mask, empty = _prepare_mask(attn_mask, key_padding_mask, is_causal, q, k)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores + mask
    weights = scores.softmax(dim=-1)
    if empty is not None:
        weights = weights.masked_fill(empty, 0.0)
    out = (F.dropout(weights, dropout_p) if dropout_p > 0 else weights) @ v
    return (out, weights) if return_weights else out


def fast_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
                   key_padding_mask: Tensor | None = None, dropout_p: float = 0.0) -> Tensor:
    """The same result as `scaled_dot_product_attention` through torch's fused kernel (no weights)."""
    _check_qkv(q, k, v, dropout_p)
    if attn_mask is None and key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=is_causal)
    mask, empty = _prepare_mask(attn_mask, key_padding_mask, is_causal, q, k)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    return out.masked_fill(empty, 0.0)


class KVCache:
    """Keys and values (B, H, T, d) that attention modules computed on earlier calls, one entry per module.

    Pass the same cache to every call while generating token by token: a self-attention module appends the new
    positions' keys / values to its entry and attends to past + new; a cross-attention module projects its
    context once and reuses the result (the memory does not change while generating).
    """

    def __init__(self):
        self.kv: dict[MultiheadAttention, tuple[Tensor, Tensor]] = {}

    @property
    def length(self) -> int:
        """P, the number of positions the self-attention entries hold (0 before the first call)."""
        return next((k.shape[2] for m, (k, _) in self.kv.items() if m.kv_dim is None), 0)

    def append(self, module: MultiheadAttention, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Store and return past + new keys and values (B, H, P + L, d) of a self-attention module."""
        if module in self.kv:
            past_k, past_v = self.kv[module]
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        self.kv[module] = k, v
        return k, v

    def reorder(self, index: Tensor) -> None:
        """Keep rows `index` (B',) of every entry, e.g. the surviving hypotheses of a beam-search step."""
        self.kv = {m: (k.index_select(0, index), v.index_select(0, index)) for m, (k, v) in self.kv.items()}


class MultiheadAttention(nn.Module):
    """Multi-head self-attention (fused `qkv` Linear) or, with `kv_dim`, cross-attention (`q` and `kv`).

    The fused layout ports `nn.MultiheadAttention` / CLIP weights with a key map:
    in_proj_weight -> qkv.weight (self) or q.weight = rows [:dim], kv.weight = rows [dim:] (cross);
    out_proj -> out_proj. `forward` returns (out (B, Lq, dim), weights (B, H, Lq, Lk) or None).
    """

    def __init__(self, dim: int, n_heads: int, kv_dim: int | None = None, bias: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        check_sizes(dim=dim, n_heads=n_heads)
        if kv_dim is not None:
            check_sizes(kv_dim=kv_dim)
        check_number(dropout, "dropout", low=0, high=1)
        if dim % n_heads:
            raise ValueError(f"dim must be divisible by n_heads: got dim={dim}, n_heads={n_heads}")
        self.dim, self.n_heads, self.kv_dim, self.dropout = dim, n_heads, kv_dim, dropout
        if kv_dim is None:
            self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        else:
            self.q = nn.Linear(dim, dim, bias=bias)
            self.kv = nn.Linear(kv_dim, 2 * dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor, context: Tensor | None = None, attn_mask: Tensor | None = None,
                key_padding_mask: Tensor | None = None, is_causal: bool = False,
                return_weights: bool = False, cache: KVCache | None = None) -> tuple[Tensor, Tensor | None]:
        """x (B, Lq, dim) attends to itself, or to `context` (B, Lk, kv_dim) for cross-attention.

        With a `cache` holding P positions, self-attention keys are past + new (Lk = P + Lq): key_padding_mask
        is then (B, P + Lq) and is_causal is bottom-right aligned (query i is position P + i).
        """
        check_tensor(x, "x", shape=("B", "Lq", self.dim), dtype="float")
        if self.kv_dim is None:
            if context is not None:
                raise ValueError("context given to a self-attention module; build it with kv_dim=...")
            q, k, v = map(self._heads, self.qkv(x).chunk(3, dim=-1))
            if cache is not None:
                k, v = cache.append(self, k, v)
                if is_causal and k.shape[2] > q.shape[2]:
                    attn_mask, is_causal = _bottom_right_causal(attn_mask, q, k), False
        else:
            if context is None:
                raise ValueError(f"cross-attention needs context (B, Lk, {self.kv_dim}), got None")
            check_tensor(context, "context", shape=(x.shape[0], "Lk", self.kv_dim), dtype="float")
            q = self._heads(self.q(x))
            if cache is not None and self in cache.kv:
                k, v = cache.kv[self]
            else:
                k, v = map(self._heads, self.kv(context).chunk(2, dim=-1))
                if cache is not None:
                    cache.kv[self] = k, v
        kw = dict(attn_mask=attn_mask, is_causal=is_causal, key_padding_mask=key_padding_mask,
                  dropout_p=self.dropout if self.training else 0.0)
        if return_weights:
            out, weights = scaled_dot_product_attention(q, k, v, **kw, return_weights=True)
        else:
            out, weights = fast_attention(q, k, v, **kw), None
        return self.out_proj(out.transpose(1, 2).flatten(2)), weights

    def _heads(self, t: Tensor) -> Tensor:
        """(B, L, dim) -> (B, H, L, dim / H)."""
        return t.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)


def _additive(keep: Tensor, dtype: torch.dtype) -> Tensor:
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, float("-inf"))


def _bottom_right_causal(attn_mask: Tensor | None, q: Tensor, k: Tensor) -> Tensor | None:
    """attn_mask with causality for queries that are the last Lq of Lk positions: query i keeps keys 0..Lk-Lq+i."""
    Lq, Lk = q.shape[2], k.shape[2]
    if Lq == 1:  # the newest position sees every key
        return attn_mask
    keep = torch.ones(Lq, Lk, dtype=torch.bool, device=q.device).tril(Lk - Lq)
    return keep if attn_mask is None else merge_masks(attn_mask, None, False, q, k) + _additive(keep, q.dtype)


def _prepare_mask(attn_mask, key_padding_mask, is_causal, q, k):
    """The merged mask with fully-masked rows opened up (no NaN), and those rows (zeroed afterwards)."""
    mask = merge_masks(attn_mask, key_padding_mask, is_causal, q, k)
    if mask is None:
        return None, None
    empty = mask.isneginf().all(dim=-1, keepdim=True)
    return mask.masked_fill(empty, 0.0), empty


def _check_qkv(q: Tensor, k: Tensor, v: Tensor, dropout_p: float) -> None:
    check_tensor(q, "q", shape=("B", "H", "Lq", "d"), dtype="float")
    B, H, _, d = q.shape
    check_tensor(k, "k", shape=(B, H, "Lk", d), dtype=q.dtype)
    check_tensor(v, "v", shape=(B, H, k.shape[2], "dv"), dtype=q.dtype)
    check_number(dropout_p, "dropout_p", low=0, high=1)


def _check_broadcastable(mask: Tensor, name: str, target: tuple[int, ...]) -> None:
    check_tensor(mask, name)
    if mask.is_complex() or not (mask.dtype == torch.bool or mask.is_floating_point()):
        raise TypeError(f"{name}: expected a bool or float tensor, got dtype {mask.dtype}")
    trailing = target[len(target) - mask.ndim:]
    if not 2 <= mask.ndim <= len(target) or any(m not in (1, t) for m, t in zip(mask.shape, trailing, strict=True)):
        raise ValueError(f"{name}: expected a shape broadcastable to (B, H, Lq, Lk) = {target}, "
                         f"got {tuple(mask.shape)}")
