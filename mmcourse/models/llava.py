"""LLaVA (Liu et al., 2023): a language model that reads an image as a few dozen extra token embeddings.

    images (B, 3, H, W) -> vision_tower.patch_tokens(layer=-2): the frozen CLIP tower's penultimate block,
        CLS dropped -> features (B, N, vision_width)
    -> projector: "linear" (LLaVA) or "mlp2x_gelu", Linear-GELU-Linear (LLaVA-1.5) -> (B, N, width);
       or "merge2x2" (Qwen2-VL's merger: 2 x 2 neighbours concatenated, then the MLP) -> (B, N / 4, width)
    ids (B, L), right-padded, with image_token_index (-200) where each image goes
    -> `splice`: every placeholder replaced by its image's n projected features, labels ignored there
    -> language_model (`nn.TextDecoder`) -> logits (B, T, vocab_size), T = L + (n - 1) · images per row

Training stage 1 (feature alignment) trains the projector alone on captions; stage 2 (instruction tuning) trains
projector and language model on conversations. Generation uses the decoder's KV cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from mmcourse.losses.lm import lm_loss
from mmcourse.nn import GenerateOutput, TextDecoder, VisionTransformer
from mmcourse.utils import check_number, check_sizes, check_tensor

__all__ = ["PROJECTORS", "PatchMerger", "build_projector", "Spliced", "splice", "LLaVAOutput", "LLaVA"]

PROJECTORS = ("linear", "mlp2x_gelu", "merge2x2")


class PatchMerger(nn.Module):
    """Qwen2-VL's merger: each 2 x 2 block of neighbouring patches, concatenated, through Linear-GELU-Linear.
    features (I, N, vision_width) on a square grid of even side -> (I, N / 4, width): a quarter of the tokens,
    each seeing a region twice as wide."""

    def __init__(self, vision_width: int, width: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * vision_width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, features: Tensor) -> Tensor:
        n_images, N, C = features.shape
        side = round(N ** 0.5)
        if side * side != N or side % 2:
            raise ValueError(f"merge2x2 needs the patches on a square grid of even side, got {N} patches")
        x = features.reshape(n_images, side // 2, 2, side // 2, 2, C).transpose(2, 3)  # (I, row, col, 2, 2, C)
        return self.mlp(x.reshape(n_images, N // 4, 4 * C))


def build_projector(kind: str, vision_width: int, width: int) -> nn.Module:
    """LLaVA's projector ("linear"), LLaVA-1.5's ("mlp2x_gelu": Linear, GELU, Linear), or "merge2x2"
    (`PatchMerger`, a quarter of the tokens): vision_width -> width."""
    check_sizes(vision_width=vision_width, width=width)
    if kind == "linear":
        return nn.Linear(vision_width, width)
    if kind == "mlp2x_gelu":
        return nn.Sequential(nn.Linear(vision_width, width), nn.GELU(), nn.Linear(width, width))
    if kind == "merge2x2":
        return PatchMerger(vision_width, width)
    raise ValueError(f"projector: expected one of {PROJECTORS}, got kind={kind!r}")


class Spliced(NamedTuple):
    """The language model's input after `splice`: right-padded like the ids it came from."""

    embeds: Tensor  # (B, T, width), zeros at padding
    labels: Tensor | None  # (B, T): the ids' labels moved along, ignore_index at image positions and padding
    padding_mask: Tensor  # (B, T) bool, True = padding
    image_mask: Tensor  # (B, T) bool, True = an image feature


def splice(ids: Tensor, image_embeds: Tensor, embed: Callable[[Tensor], Tensor], labels: Tensor | None = None, *,
           image_token_index: int, pad_id: int, ignore_index: int = -100) -> Spliced:
    """Replace each image placeholder of ids (B, L) by the N rows of its image in image_embeds (I, N, width).

    Images are taken in reading order: row 0's placeholders left to right, then row 1's ... (I = the number of
    placeholders). ids are right-padded with pad_id; embed maps token ids (B, L) to embeddings (B, L, width).
    A token at position j of a row moves to j + (N - 1) · (placeholders before it in that row).
    """
    check_tensor(ids, "ids", shape=("B", "L"), dtype="int")
    check_tensor(image_embeds, "image_embeds", shape=("I", "N", None), dtype="float")
    if labels is not None:
        check_tensor(labels, "labels", shape=tuple(ids.shape), dtype="int")
    check_number(image_token_index, "image_token_index", integer=True)
    check_number(pad_id, "pad_id", integer=True, low=0)
    B, L = ids.shape
    n_images, N, D = image_embeds.shape
    is_image = ids == image_token_index
    real = ids != pad_id
    if (real[:, 1:] & ~real[:, :-1]).any():
        raise ValueError(f"ids must be right-padded: a token follows pad_id={pad_id} in some row")
    n = int(is_image.sum())
    if n != n_images:
        raise ValueError(f"ids hold {n} image placeholders ({image_token_index}) but {n_images} images were given in "
                         f"image_embeds (per row: {is_image.sum(1).tolist()}): give one image per placeholder")
    width = torch.where(is_image, N, 1)
    start = width.cumsum(1) - width  # (B, L) first output position of each token
    length = (width * real).sum(1)  # (B,) real positions per row after the splice
    T = int(length.max())
    text = real & ~is_image
    b, j = text.nonzero(as_tuple=True)
    tokens = embed(ids.masked_fill(~text, pad_id))
    embeds = tokens.new_zeros(B, T, D)
    embeds[b, start[b, j]] = tokens[b, j]
    bi, ji = is_image.nonzero(as_tuple=True)  # row-major: the k-th placeholder takes image k
    rows, cols = bi[:, None].expand(n_images, N), start[bi, ji][:, None] + torch.arange(N, device=ids.device)
    embeds[rows, cols] = image_embeds.to(embeds.dtype)
    image_mask = torch.zeros(B, T, dtype=torch.bool, device=ids.device)
    image_mask[rows, cols] = True
    out_labels = None
    if labels is not None:
        out_labels = torch.full((B, T), ignore_index, dtype=labels.dtype, device=ids.device)
        out_labels[b, start[b, j]] = labels[b, j]
    padding_mask = torch.arange(T, device=ids.device)[None] >= length[:, None]
    return Spliced(embeds, out_labels, padding_mask, image_mask)


class LLaVAOutput(NamedTuple):
    logits: Tensor  # (B, T, vocab_size)
    loss: Tensor | None  # next-token loss on the spliced labels (when labels were given)
    spliced: Spliced


class LLaVA(nn.Module):
    """vision_tower (frozen) -> projector -> splice -> language_model. Give images, or their `image_features`
    computed once (the tower is frozen, so training on stored features is the same and much cheaper)."""

    def __init__(self, vision_tower: VisionTransformer, language_model: TextDecoder, *, image_token_index: int,
                 projector: str = "mlp2x_gelu", feature_layer: int = -2):
        super().__init__()
        check_number(image_token_index, "image_token_index", integer=True)
        check_number(feature_layer, "feature_layer", integer=True, low=-len(vision_tower.transformer.resblocks),
                     high=len(vision_tower.transformer.resblocks))
        if 0 <= image_token_index < language_model.vocab_size:
            raise ValueError(f"image_token_index must be outside the vocabulary [0, {language_model.vocab_size}), "
                             f"got {image_token_index}")
        self.vision_tower = vision_tower.requires_grad_(False).eval()
        self.language_model = language_model
        self.vision_width = vision_tower.transformer.width
        self.projector = build_projector(projector, self.vision_width, language_model.width)
        self.projector_kind, self.feature_layer, self.image_token_index = projector, feature_layer, image_token_index

    def train(self, mode: bool = True) -> LLaVA:
        super().train(mode)
        self.vision_tower.eval()  # frozen, BatchNorm statistics included
        return self

    @torch.no_grad()
    def image_features(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) -> the frozen tower's patch features (B, N, vision_width) at feature_layer."""
        return self.vision_tower.patch_tokens(images, self.feature_layer)

    def prepare(self, ids: Tensor, labels: Tensor | None = None, *, images: Tensor | None = None,
                features: Tensor | None = None) -> Spliced:
        """Project the images' features and splice them into the ids' embeddings (see `splice`)."""
        if (images is None) == (features is None):
            raise ValueError("give exactly one of images (I, 3, H, W) or features (I, N, vision_width)")
        if features is None:
            features = self.image_features(images)
        check_tensor(features, "features", shape=("I", "N", self.vision_width), dtype="float")
        lm = self.language_model
        out = splice(ids, self.projector(features), lm.embed, labels, image_token_index=self.image_token_index,
                     pad_id=lm.pad_id)
        if out.embeds.shape[1] > lm.context_length:
            raise ValueError(f"the conversation takes {out.embeds.shape[1]} positions with its image features "
                             f"({features.shape[1]} per image), more than context_length={lm.context_length}")
        return out

    def forward(self, ids: Tensor, labels: Tensor | None = None, *, images: Tensor | None = None,
                features: Tensor | None = None) -> LLaVAOutput:
        """ids (B, L) with placeholders, labels (B, L) or None -> logits (B, T, vocab), loss, the splice.

        The ids are right-padded and attention is causal, so no real token ever sees the padding: the
        language model runs without a padding mask (positions 0, 1, ... are right for every real token)."""
        s = self.prepare(ids, labels, images=images, features=features)
        logits = self.language_model(embeds=s.embeds)
        return LLaVAOutput(logits, None if labels is None else lm_loss(logits, s.labels), s)

    @torch.no_grad()
    def generate(self, ids: Tensor, *, images: Tensor | None = None, features: Tensor | None = None,
                 **generate_kw) -> GenerateOutput:
        """Answer prompts ids (B, L) (each ending with the assistant's role token) about their images, with the
        decoder's `generate` (KV cache, greedy unless generate_kw say otherwise)."""
        s = self.prepare(ids, images=images, features=features)
        return self.language_model.generate(embeds=s.embeds, lengths=(~s.padding_mask).sum(1), **generate_kw)
