"""Image-text matching (BLIP, after ALBEF): a binary "does this caption describe this image?" head trained on
the positives of a batch and on hard negatives — the pairs the contrastive model finds most alike.

Hard negatives are *sampled*, not taken as the argmax: for image i, a text j ≠ i is drawn with probability
softmax_j(sim[i]) after the positive (and any text that also describes image i) is zeroed; for text j likewise
an image, from the columns. The hardest pair is the most likely draw, but not the only one: an argmax would pick
the same, possibly mislabelled, pair every time. The loss then scores 3B pairs: B positives, B (image, negative
text), B (negative image, text).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.utils import check_tensor

__all__ = ["hard_negative_probs", "sample_hard_negatives", "itm_loss"]


def hard_negative_probs(sim: Tensor, same: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """sim (B, B) image-text logits s·cos (row i = image i) -> (p_text (B, B), p_image (B, B)).

    p_text[i] = softmax over texts of sim[i] with the positive i and every j with same[i, j] zeroed, renormalised;
    p_image[j] = the same over images, from column j. `same` (B, B) bool marks pairs that also match (two
    images with the same description); a row with no possible negative raises."""
    check_tensor(sim, "sim", shape=("B", "B"), dtype="float")
    B = len(sim)
    if sim.shape[1] != B:
        raise ValueError(f"sim: expected a square (B, B) matrix of B images x their B captions, got "
                         f"{tuple(sim.shape)}")
    if B < 2:
        raise ValueError(f"sim: hard negatives need a batch of at least 2 pairs, got B={B}")
    if torch.isnan(sim).any() or torch.isposinf(sim).any():
        raise ValueError("sim: contains NaN or +inf, so no probability can be drawn from it (-inf is allowed: "
                         "probability 0)")
    positive = torch.eye(B, dtype=torch.bool, device=sim.device)
    if same is not None:
        check_tensor(same, "same", shape=(B, B), dtype=torch.bool)
        positive = positive | same.to(sim.device)
    if positive.all(dim=1).any():
        raise ValueError("same: some image matches every text of the batch, so it has no negative to sample")
    sim = sim.detach().float()
    p_text = sim.softmax(dim=1).masked_fill(positive, 0.0)
    p_image = sim.T.softmax(dim=1).masked_fill(positive.T, 0.0)
    return p_text / p_text.sum(1, keepdim=True), p_image / p_image.sum(1, keepdim=True)


def sample_hard_negatives(sim: Tensor, same: Tensor | None = None,
                          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """One negative per row, drawn from `hard_negative_probs`: (neg_text (B,), neg_image (B,)) where text
    neg_text[i] does not describe image i, and image neg_image[j] is not described by text j."""
    p_text, p_image = hard_negative_probs(sim, same)
    draw = lambda p: torch.multinomial(p, 1, generator=generator).squeeze(1)  # noqa: E731
    return draw(p_text), draw(p_image)


def itm_loss(score: Callable[[Tensor, Tensor], Tensor], image_tokens: Tensor, ids: Tensor, neg_text: Tensor,
             neg_image: Tensor) -> Tensor:
    """Cross-entropy of the ITM head over 3B pairs: (image i, text i) labelled 1 = match, (image i, text
    neg_text[i]) and (image neg_image[j], text j) labelled 0.

    score(image_tokens (N, M, D), ids (N, L)) -> logits (N, 2), class 1 = match; image_tokens (B, M, D),
    ids (B, L), neg_text, neg_image (B,) indices into the batch.
    """
    check_tensor(image_tokens, "image_tokens", shape=("B", "M", "D"), dtype="float")
    B = len(image_tokens)
    check_tensor(ids, "ids", shape=(B, "L"), dtype="int")
    check_tensor(neg_text, "neg_text", shape=(B,), dtype="int")
    check_tensor(neg_image, "neg_image", shape=(B,), dtype="int")
    for name, neg in (("neg_text", neg_text), ("neg_image", neg_image)):
        if B and (neg.min() < 0 or neg.max() >= B):
            raise IndexError(f"{name}: expected indices into the batch [0, {B}), got {neg.tolist()[:10]}")
    images = torch.cat([image_tokens, image_tokens, image_tokens[neg_image]])
    texts = torch.cat([ids, ids[neg_text], ids])
    labels = torch.cat([torch.ones(B), torch.zeros(2 * B)]).long().to(ids.device)
    return F.cross_entropy(score(images, texts), labels)
