"""Language modelling: next-token cross-entropy, the objective of every decoder in the course, and BERT's masking
for masked modelling (VideoBERT), whose loss is a plain cross-entropy on the masked positions.

`labels` are NOT shifted: pass the token ids themselves (usually `labels = ids` with ignore_index at padding and
at positions that are not to be learned, e.g. the prompt). The function shifts, as Hugging Face does: the logits
at position t are scored on the label at t + 1, so the last position predicts nothing and the first label is
never a target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.utils import check_number, check_tensor, describe

__all__ = ["lm_loss", "bert_mask"]


def lm_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100, label_smoothing: float = 0.0) -> Tensor:
    """Mean next-token cross-entropy. logits (B, L, V), labels (B, L) unshifted token ids.

    loss = −Σ_{b, t < L−1, labels[b, t+1] ≠ ignore_index} log softmax(logits[b, t])[labels[b, t+1]] / #counted
    label_smoothing ε (BLIP uses 0.1) scores against (1 − ε)·one-hot + ε/V instead of the one-hot target.
    """
    check_tensor(logits, "logits", shape=("B", "L", "V"), dtype="float")
    check_tensor(labels, "labels", shape=logits.shape[:2], dtype="int")
    check_number(ignore_index, "ignore_index", integer=True)
    check_number(label_smoothing, "label_smoothing", low=0, high=1)
    targets = labels[:, 1:]
    outside = (targets != ignore_index) & ((targets < 0) | (targets >= logits.shape[-1]))
    if outside.any():
        raise ValueError(f"labels: targets must be token ids in [0, {logits.shape[-1]}) or ignore_index="
                         f"{ignore_index}, got {targets[outside][:5].tolist()}")
    if not (targets != ignore_index).any():
        raise ValueError(f"labels: every target (labels[:, 1:], after the shift) is ignore_index={ignore_index}: "
                         "there is no token to learn from (is the mask inverted, or are the sequences length 1?)")
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=ignore_index,
                           label_smoothing=label_smoothing)


def bert_mask(ids: Tensor, mask_id: int, vocab_size: int, p: float | Tensor = 0.15, *,
              maskable: Tensor | None = None, generator: torch.Generator | None = None,
              ignore_index: int = -100) -> tuple[Tensor, Tensor]:
    """BERT's masking (Devlin et al. 2019): choose each maskable position with probability p (a number, or one
    per row (B,)); of the chosen, 80 % become mask_id, 10 % a random token of [0, vocab_size), 10 % stay. ids (B, L) ->
    (inputs (B, L), labels (B, L)): labels are the original ids at the chosen positions, ignore_index elsewhere.
    ids (B, L, G), G ids per position (a product quantizer's codes): a position's G ids are chosen, masked or
    replaced together; maskable is (B, L) either way.
    """
    check_tensor(ids, "ids", dtype="int")
    if ids.ndim not in (2, 3):
        raise ValueError(f"ids: expected token ids (B, L), or (B, L, G) with G ids per position, "
                         f"got shape {tuple(ids.shape)}")
    check_number(mask_id, "mask_id", integer=True, low=0)
    check_number(vocab_size, "vocab_size", integer=True, low=1)
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids: token ids must be in [0, {vocab_size}), got min {ids.min().item()}, "
                         f"max {ids.max().item()}")
    if isinstance(p, bool) or not isinstance(p, (Tensor, float, int)):
        raise TypeError(f"p: expected a probability, or one per row ({len(ids)},), got {describe(p)}")
    p = torch.as_tensor(p, dtype=torch.float32, device=ids.device)
    if p.ndim > 1 or (p.ndim == 1 and len(p) != len(ids)) or not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"p: expected a probability, or one per row ({len(ids)},), got {p.tolist()}")
    p = p.expand(len(ids))[:, None] if p.ndim else p
    positions = ids.shape[:2]
    if maskable is not None:
        check_tensor(maskable, "maskable", shape=positions, dtype=torch.bool)
    u = torch.rand(3, *positions, generator=generator, device=ids.device)
    chosen = u[0] < p
    if maskable is not None:
        chosen &= maskable
    masked, replaced = chosen & (u[1] < 0.8), chosen & (u[1] >= 0.8) & (u[2] < 0.5)
    if ids.ndim == 3:  # one decision per position, for all its ids
        chosen, masked, replaced = chosen[..., None], masked[..., None], replaced[..., None]
    labels = ids.masked_fill(~chosen, ignore_index)
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator, device=ids.device)
    inputs = torch.where(masked, mask_id, ids)
    inputs = torch.where(replaced, random_ids, inputs)
    return inputs, labels
