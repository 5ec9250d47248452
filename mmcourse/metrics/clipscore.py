"""CLIPScore and RefCLIPScore (Hessel et al. 2021) from CLIP features.

    CLIP-S(c, v)       = w * max(cos(E_c, E_v), 0),  w = 2.5   (stretches typical cosines ~0.3 towards [0, 1])
    RefCLIP-S(c, R, v) = harmonic mean of CLIP-S(c, v) and max(max over r in R of cos(E_c, E_r), 0)

Both are averaged over the image-caption pairs. The features come from a trained CLIP (image encoder for
v, text encoder for the caption c and the references R); any scale is fine, they are L2-normalised here.

torchmetrics' CLIPScore differs: it uses w = 100 and clamps at 0 *after* averaging over the pairs,
max(mean(100 * cos), 0), so one pair's negative cosine pulls its average down; per pair, and with no
negative cosines, it is our score with w = 100. The official RefCLIPScore code also skips the clamp on the
reference side; it matters only when every reference is anti-correlated with the caption.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.utils import check_number, check_tensor

__all__ = ["clip_score", "ref_clip_score"]


def clip_score(
    image_features: torch.Tensor, text_features: torch.Tensor, w: float = 2.5, reduction: str = "mean"
) -> torch.Tensor:
    """CLIP-S = w * max(cos, 0) of each (image, caption) pair; image/text_features (N, D).

    reduction "mean" returns a scalar tensor, "none" the (N,) per-pair scores.
    """
    check_number(w, "w", low=0, low_open=True)
    cosine = _pair_cosine(image_features, text_features, "image_features", "text_features")
    return _reduce(w * cosine.clamp(min=0), reduction)


def ref_clip_score(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    reference_features: torch.Tensor,
    w: float = 2.5,
    reduction: str = "mean",
) -> torch.Tensor:
    """RefCLIP-S: harmonic mean of CLIP-S and the best caption-reference cosine (clamped at 0).

    image_features, text_features: (N, D); reference_features: (N, R, D), R references per caption
    (for unequal counts, pad by repeating one of an image's references: the max is unchanged).
    """
    clip_s = clip_score(image_features, text_features, w, reduction="none")
    n, d = text_features.shape
    check_tensor(reference_features, "reference_features", shape=(n, "R", d), dtype="float")
    if reference_features.shape[1] == 0:
        raise ValueError(
            f"reference_features: expected at least one reference per caption, "
            f"got shape {tuple(reference_features.shape)}"
        )
    _check_finite(reference_features, "reference_features")
    captions = F.normalize(text_features, dim=-1)
    reference_cosine = torch.einsum("nd,nrd->nr", captions, F.normalize(reference_features, dim=-1))
    ref_s = reference_cosine.amax(dim=1).clamp(min=0)
    harmonic = 2 * clip_s * ref_s / (clip_s + ref_s)
    return _reduce(torch.where(clip_s + ref_s > 0, harmonic, torch.zeros_like(harmonic)), reduction)


def _pair_cosine(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> torch.Tensor:
    check_tensor(a, name_a, shape=("N", "D"), dtype="float")
    check_tensor(b, name_b, shape=tuple(a.shape), dtype="float")
    if a.shape[0] == 0:
        raise ValueError(f"{name_a}: expected at least one pair, got {tuple(a.shape)}")
    _check_finite(a, name_a)
    _check_finite(b, name_b)
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(dim=-1)


def _check_finite(x: torch.Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


def _reduce(scores: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return scores.mean()
    if reduction == "none":
        return scores
    raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")
