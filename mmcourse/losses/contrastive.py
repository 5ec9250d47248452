"""Contrastive image-text losses: CLIP's symmetric InfoNCE and SigLIP's pairwise sigmoid loss.

Both take per-sample features and L2-normalise them inside (a no-op for features that already are), so
`image_features @ text_features.T` is a matrix of cosine similarities. `logit_scale` is the multiplier s
itself — `model.logit_scale.exp()`, not the learnable log — exactly as open_clip's `ClipLoss` / `SigLipLoss`
take it. Row i of the image batch matches row i of the text batch.

The distributed (all-gather) version reuses `symmetric_cross_entropy`: local image rows against the gathered
text columns, with the targets offset by rank × local batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.utils import check_number, check_tensor

__all__ = ["clip_loss", "siglip_loss", "symmetric_cross_entropy"]


def symmetric_cross_entropy(logits_per_image: Tensor, logits_per_text: Tensor, targets: Tensor) -> Tensor:
    """Mean of cross-entropy over the image rows and over the text rows; targets (B,) index the positives.
    logits_per_image (B, B'), logits_per_text (B, B'') with rows of scores."""
    check_tensor(logits_per_image, "logits_per_image", shape=("B", None), dtype="float")
    B = len(logits_per_image)
    check_tensor(logits_per_text, "logits_per_text", shape=(B, None), dtype="float")
    check_tensor(targets, "targets", shape=(B,), dtype="int")
    columns = min(logits_per_image.shape[1], logits_per_text.shape[1])
    if B and (targets.min() < 0 or targets.max() >= columns):
        raise IndexError(f"targets: expected column indices in [0, {columns}), got min {targets.min().item()}, "
                         f"max {targets.max().item()}")
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)) / 2


def clip_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor | float) -> Tensor:
    """Symmetric InfoNCE. image_features, text_features (B, D); logit_scale s > 0 (a scalar).

    logits = s · x̂ ŷᵀ (B, B); each image must pick its own caption among the B captions (rows) and each
    caption its own image (columns): loss = (CE(logits, arange B) + CE(logitsᵀ, arange B)) / 2.
    """
    x, y = _normalized_pair(image_features, text_features, logit_scale)
    logits = logit_scale * x @ y.T
    targets = torch.arange(len(x), device=x.device)
    return symmetric_cross_entropy(logits, logits.T, targets)


def siglip_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor | float,
                logit_bias: Tensor | float) -> Tensor:
    """SigLIP: every (image, text) pair is its own binary problem. Shapes as `clip_loss`; b a scalar.

    labels = 2I − 1 (+1 on the diagonal, −1 elsewhere); loss = −Σ logsigmoid(labels · (s x̂ ŷᵀ + b)) / B.
    No softmax over the batch, so no all-to-all normalisation; b = −10 at init offsets the B² − B negatives.
    """
    x, y = _normalized_pair(image_features, text_features, logit_scale)
    _check_scalar(logit_bias, "logit_bias")
    logits = logit_scale * x @ y.T + logit_bias
    labels = 2 * torch.eye(len(x), device=x.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / len(x)


def _normalized_pair(image_features: Tensor, text_features: Tensor, logit_scale) -> tuple[Tensor, Tensor]:
    check_tensor(image_features, "image_features", shape=("B", "D"), dtype="float")
    B, D = image_features.shape
    check_tensor(text_features, "text_features", shape=(B, D), dtype="float")
    if B == 0:
        raise ValueError("image_features: the batch is empty (B = 0); a contrastive loss needs at least one pair")
    _check_scalar(logit_scale, "logit_scale", positive=True)
    return F.normalize(image_features, dim=-1), F.normalize(text_features, dim=-1)


def _check_scalar(value, name: str, positive: bool = False) -> None:
    if isinstance(value, Tensor) and value.numel() != 1:
        raise ValueError(f"{name}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
    v = float(value.detach()) if isinstance(value, Tensor) else value
    check_number(v, name, low=0 if positive else None, low_open=positive)  # s <= 0 would reward wrong pairs
