"""Pooling a sequence of hidden states to one vector per row.

A causal text encoder (CLIP's) summarises a caption at its end-of-text token: under the causal mask that is the
first position that has read the whole caption. Where the caption ends is a fact about the token ids, so the
position comes from `ids == eot_id`, never from the hidden states. (OpenAI's CLIP writes `ids.argmax(-1)`: the
same position only because its end-of-text id, 49407, is the largest id of its vocabulary.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmcourse.utils import check_number, check_tensor

__all__ = ["eot_positions", "pool_eot"]


def eot_positions(ids: Tensor, eot_id: int) -> Tensor:
    """ids (B, L) -> (B,) index of the first `eot_id` in each row. A row without one is a ValueError."""
    check_tensor(ids, "ids", ndim=2, dtype="int")
    check_number(eot_id, "eot_id", integer=True, low=0)
    is_eot = ids == eot_id
    missing = (~is_eot.any(1)).nonzero()[:, 0].tolist()
    if missing:
        raise ValueError(f"ids: no end-of-text token (id {eot_id}) in row(s) {missing[:10]}: tokenize with an EOT "
                         "token (a caption cut at the context length must still end with it)")
    return is_eot.int().argmax(1)  # argmax returns the first maximal index


def pool_eot(hidden: Tensor, ids: Tensor, eot_id: int) -> Tensor:
    """hidden (B, L, D), ids (B, L) -> (B, D): each row's hidden state at its first end-of-text token."""
    check_tensor(hidden, "hidden", shape=("B", "L", "D"), dtype="float")
    check_tensor(ids, "ids", shape=hidden.shape[:2], dtype="int")
    return hidden[torch.arange(len(ids), device=ids.device), eot_positions(ids, eot_id)]
