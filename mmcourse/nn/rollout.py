"""Attention rollout (Abnar & Zuidema, 2020): how much each input token flows into each output token."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmcourse.utils import check_tensor, describe

__all__ = ["attention_rollout"]


def attention_rollout(attn_list: Sequence[Tensor]) -> Tensor:
    """Per-layer attention weights, each (B, H, L, L), first layer first -> rollout (B, L, L).

    Each layer: average the heads, add the identity (the residual connection), renormalise the rows;
    then multiply through the layers, R = Â_last ... Â_1. Row 0 of R, columns 1:, is the CLS token's map.
    """
    if not isinstance(attn_list, (list, tuple)):
        raise TypeError(f"attn_list: expected a list of per-layer weights (B, H, L, L), got {describe(attn_list)}")
    if len(attn_list) == 0:
        raise ValueError("attn_list: expected at least one layer of attention weights, got none")
    first = attn_list[0]
    check_tensor(first, "attn_list[0]", dtype="float")
    if first.ndim != 4 or first.shape[-1] != first.shape[-2]:
        raise ValueError(f"attn_list[0]: expected shape (B, H, L, L), got {tuple(first.shape)}")
    eye = torch.eye(first.shape[-1], dtype=first.dtype, device=first.device)
    rollout = eye.expand_as(first[:, 0])
    for i, attn in enumerate(attn_list):
        check_tensor(attn, f"attn_list[{i}]", shape=(first.shape[0], None, *first.shape[2:]), dtype="float")
        a = attn.mean(dim=1) + eye
        rollout = (a / a.sum(dim=-1, keepdim=True)) @ rollout
    return rollout
