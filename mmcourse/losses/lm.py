"""Language-modelling loss: next-token cross-entropy, the objective of every decoder in the course.

`labels` are NOT shifted: pass the token ids themselves (usually `labels = ids` with ignore_index at padding and
at positions that are not to be learned, e.g. the prompt). The function shifts, as Hugging Face does: the logits
at position t are scored on the label at t + 1, so the last position predicts nothing and the first label is
never a target.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from mmcourse.utils import check_tensor

__all__ = ["lm_loss"]


def lm_loss(logits: Tensor, labels: Tensor, ignore_index: int = -100, label_smoothing: float = 0.0) -> Tensor:
    """Mean next-token cross-entropy. logits (B, L, V), labels (B, L) unshifted token ids.

    loss = −Σ_{b, t < L−1, labels[b, t+1] ≠ ignore_index} log softmax(logits[b, t])[labels[b, t+1]] / #counted
    label_smoothing ε (BLIP uses 0.1) scores against (1 − ε)·one-hot + ε/V instead of the one-hot target.
    """
    check_tensor(logits, "logits", shape=("B", "L", "V"), dtype="float")
    check_tensor(labels, "labels", shape=logits.shape[:2], dtype="int")
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
