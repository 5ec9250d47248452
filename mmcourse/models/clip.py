"""CLIP (Radford et al., 2021): an image tower and a text tower trained so that an image and its caption land
close together in one embedding space. Layout and parameter names follow open_clip's model.py, so OpenAI /
open_clip weights port with a small key map (`mmcourse.models.clip_port`).

    images (B, 3, H, W) -> visual: ViT -> (B, embed_dim) -> normalise ─┐
                                                                        ├─> s · x̂ ŷᵀ (+ b) = logits (B, B)
    ids (B, L) -> text: causal transformer, pool at EOT -> (B, embed_dim) -> normalise ─┘

s = exp(logit_scale) is learned (init 1/0.07, clamped at 100); the SigLIP variant adds a learned bias b.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.losses import clip_loss, siglip_loss
from mmcourse.nn import Transformer, VisionTransformer, pool_eot
from mmcourse.utils import check_number, check_sizes, check_tensor, check_token_id

__all__ = ["CLIPConfig", "CLIP", "TextTransformer", "encode_images", "encode_texts", "zero_shot_classifier",
           "zero_shot_predict"]


class TextTransformer(nn.Module):
    """ids (B, L ≤ context_length) -> (B, output_dim): token + positional embedding -> pre-LN blocks under a
    causal mask -> ln_final -> hidden state at the EOT token -> text_projection (no bias)."""

    def __init__(self, vocab_size: int, context_length: int, width: int, layers: int, heads: int,
                 output_dim: int, eot_id: int, mlp_ratio: float = 4.0, act: str = "gelu"):
        super().__init__()
        check_sizes(vocab_size=vocab_size, context_length=context_length, width=width, output_dim=output_dim)
        check_token_id(eot_id, "eot_id", vocab_size)
        self.vocab_size, self.context_length, self.eot_id = vocab_size, context_length, eot_id
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(width**-0.5 * torch.randn(width, output_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def hidden(self, ids: Tensor) -> Tensor:
        """ids (B, L) -> ln_final of every position (B, L, width)."""
        check_tensor(ids, "ids", shape=("B", "L"), dtype="int")
        if ids.shape[1] > self.context_length:
            raise ValueError(f"ids: expected at most context_length={self.context_length} tokens, "
                             f"got {ids.shape[1]}")
        lo, hi = (ids.min().item(), ids.max().item()) if ids.numel() else (0, 0)
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(f"ids: token ids must be in [0, {self.vocab_size}), got min {lo}, max {hi}: "
                             "was the tokenizer built for this model?")
        x = self.token_embedding(ids) + self.positional_embedding[: ids.shape[1]]
        return self.ln_final(self.transformer(x, is_causal=True))

    def forward(self, ids: Tensor) -> Tensor:
        return pool_eot(self.hidden(ids), ids, self.eot_id) @ self.text_projection


@dataclass
class CLIPConfig:
    """Every size of a CLIP. The defaults are OpenAI's ViT-B/32; `tiny()` is the course's CPU model."""

    vocab_size: int = 49408
    eot_id: int = 49407  # the tokenizer's end-of-text id
    context_length: int = 77
    embed_dim: int = 512
    image_size: int = 224
    patch_size: int = 32
    conv_stem: bool = False  # three 3x3 convs with BatchNorm instead of patchify (patch_size 4)
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    mlp_ratio: float = 4.0
    act: str = "quick_gelu"  # OpenAI's weights need "quick_gelu"; "gelu" is torch's exact GELU
    loss: str = "clip"  # "clip" (softmax InfoNCE) or "siglip" (pairwise sigmoid, adds logit_bias)

    @classmethod
    def tiny(cls, vocab_size: int, eot_id: int, context_length: int = 20, **overrides) -> CLIPConfig:
        """Width 64, 2 + 2 layers, 4 heads, conv stem on 32x32 images (64 tokens): trains on a CPU in minutes.

        vocab_size and eot_id come from the tokenizer; overrides replace any other field."""
        sizes = dict(embed_dim=64, image_size=32, patch_size=4, conv_stem=True, vision_width=64,
                     vision_layers=2, vision_heads=4, text_width=64, text_layers=2, text_heads=4, act="gelu")
        return cls(vocab_size=vocab_size, eot_id=eot_id, context_length=context_length,
                   **{**sizes, **overrides})


class CLIP(nn.Module):
    """Two towers and a learned temperature. forward(images, ids) -> (logits_per_image, logits_per_text)."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        if config.loss not in ("clip", "siglip"):
            raise ValueError(f"config.loss: expected 'clip' or 'siglip', got {config.loss!r}")
        for name in ("vocab_size", "context_length", "embed_dim", "image_size", "patch_size", "vision_width",
                     "vision_heads", "text_width", "text_heads"):
            check_number(getattr(config, name), f"config.{name}", integer=True, low=1)
        for name in ("vision_layers", "text_layers"):
            check_number(getattr(config, name), f"config.{name}", integer=True, low=0, high=1000)
        for tower in ("vision", "text"):
            if getattr(config, f"{tower}_width") % getattr(config, f"{tower}_heads"):
                raise ValueError(f"config.{tower}_width must be divisible by config.{tower}_heads, got "
                                 f"{getattr(config, f'{tower}_width')} and {getattr(config, f'{tower}_heads')}")
        c = self.config = config
        self.visual = VisionTransformer(c.image_size, c.patch_size, c.vision_width, c.vision_layers,
                                        c.vision_heads, c.mlp_ratio, output_dim=c.embed_dim, act=c.act,
                                        conv_stem=c.conv_stem)
        self.text = TextTransformer(c.vocab_size, c.context_length, c.text_width, c.text_layers, c.text_heads,
                                    c.embed_dim, c.eot_id, c.mlp_ratio, c.act)
        siglip = c.loss == "siglip"
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10) if siglip else math.log(1 / 0.07)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0)) if siglip else None

    def encode_image(self, images: Tensor, normalize: bool = False) -> Tensor:
        """images (B, 3, image_size, image_size) -> (B, embed_dim)."""
        features = self.visual(images)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, ids: Tensor, normalize: bool = False) -> Tensor:
        """ids (B, L) -> (B, embed_dim)."""
        features = self.text(ids)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, images: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
        """B images and their B captions -> logits_per_image (B, B) = s · x̂ ŷᵀ (+ b), and its transpose."""
        _check_pairs(images, ids)
        logits = self.logit_scale.exp() * self.encode_image(images, True) @ self.encode_text(ids, True).T
        if self.logit_bias is not None:
            logits = logits + self.logit_bias
        return logits, logits.T

    def contrastive_loss(self, images: Tensor, ids: Tensor) -> Tensor:
        """The training loss of this model's kind (`clip_loss` or `siglip_loss`) on B matching pairs."""
        _check_pairs(images, ids)
        x, y, s = self.encode_image(images), self.encode_text(ids), self.logit_scale.exp()
        return clip_loss(x, y, s) if self.logit_bias is None else siglip_loss(x, y, s, self.logit_bias)

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep s = exp(logit_scale) in [1, 100] as open_clip's training loop does; call after every optimiser
        step (`fit(..., after_step=CLIP.clamp_logit_scale)`)."""
        self.logit_scale.clamp_(0, math.log(100))


def _check_pairs(images: Tensor, ids: Tensor) -> None:
    check_tensor(images, "images", ndim=4)
    check_tensor(ids, "ids", ndim=2)
    if len(images) != len(ids):
        raise ValueError(f"images and ids must be B matching pairs: got {len(images)} images and {len(ids)} "
                         "captions (to score images against other texts, use encode_image / encode_text)")


@torch.no_grad()
def zero_shot_classifier(model: CLIP, tokenize: Callable[[list[str]], Tensor], classnames: Sequence[str],
                         templates: Sequence[str | Callable[[str], str]]) -> Tensor:
    """Class weights (embed_dim, n_classes): per class, encode every template filled with the class name
    ("a photo of a {}." or a function name -> prompt), normalise, average the prompts, re-normalise."""
    if isinstance(classnames, str) or not classnames or not all(isinstance(c, str) for c in classnames):
        raise ValueError(f"classnames: expected a non-empty list of names, got {classnames!r}")
    if isinstance(templates, str) or not templates:
        raise ValueError(f"templates: expected a non-empty list of templates, got {templates!r}")
    for t in templates:
        if not (callable(t) or (isinstance(t, str) and "{}" in t)):
            raise ValueError(f"templates: each must be a function or a string with '{{}}', got {t!r}")
    device = model.logit_scale.device
    weights = []
    for name in classnames:
        ids = tokenize([t(name) if callable(t) else t.format(name) for t in templates])
        prompts = model.encode_text(ids.to(device), normalize=True)  # (n_templates, embed_dim)
        weights.append(F.normalize(prompts.mean(dim=0), dim=-1))
    return torch.stack(weights, dim=1)


@torch.no_grad()
def encode_images(model: CLIP, images: Tensor, batch_size: int = 500) -> Tensor:
    """images (N, 3, H, W) on any device -> normalised features (N, embed_dim) on the images' device, computed on
    the model's device `batch_size` images at a time (a collection too big for one forward pass)."""
    check_tensor(images, "images", shape=("N", 3, "H", "W"), dtype="float")
    check_sizes(batch_size=batch_size)
    device = model.logit_scale.device
    chunks = [model.encode_image(x.to(device), normalize=True) for x in images.split(batch_size)]
    return torch.cat(chunks).to(images.device)


@torch.no_grad()
def encode_texts(model: CLIP, ids: Tensor, batch_size: int = 500) -> Tensor:
    """ids (N, L) -> normalised features (N, embed_dim) on the ids' device, `batch_size` captions at a time."""
    check_tensor(ids, "ids", shape=("N", "L"), dtype="int")
    check_sizes(batch_size=batch_size)
    device = model.logit_scale.device
    chunks = [model.encode_text(x.to(device), normalize=True) for x in ids.split(batch_size)]
    return torch.cat(chunks).to(ids.device)


@torch.no_grad()
def zero_shot_predict(model: CLIP, images: Tensor, weights: Tensor, batch_size: int = 500) -> Tensor:
    """images (N, 3, H, W), weights (embed_dim, n_classes) -> predicted class (N,) by cosine similarity, on the
    images' device. The scores themselves are `encode_images(model, images) @ weights`."""
    check_tensor(weights, "weights", shape=(model.config.embed_dim, "n_classes"), dtype="float")
    if not torch.isfinite(weights).all():
        raise ValueError("weights: the class weights hold NaN or inf (every image would get the same class)")
    features = encode_images(model, images, batch_size)
    return (features @ weights.to(features.device)).argmax(dim=-1)
