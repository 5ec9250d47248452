"""BLIP (Li et al., 2022): one text transformer, run three ways over an image encoder's tokens.

    image tokens (B, M, vision_width) ─ [0] -> vision_proj ─────────────────┐
    <sot> caption -> text encoder, bidirectional, no cross-attention -> [0] -> text_proj ─ ITC (contrastive)
    <enc> caption -> text encoder + cross-attention to the image tokens -> [0] -> itm_head ─ ITM (match or not)
    <dec> caption -> text decoder: causal, + cross-attention -> lm_head ─ LM (captioning)

The decoder shares every parameter with the encoder except its self-attention (each block's `attn` and the
LayerNorm in front of it, `ln_1`): embeddings, cross-attention, feed-forward and ln_final are one set of weights.
Encoding (bidirectional) and decoding (causal) need different self-attention; everything else can be the same.
The image encoder is not part of this module: it takes the image tokens (B, M, vision_width) — row 0 the image's
[CLS] — so that a frozen encoder's tokens can be computed once. Left out for the CPU: ITC's momentum encoder
and feature queue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.losses import clip_loss, itm_loss, lm_loss, sample_hard_negatives
from mmcourse.nn import GenerateOutput, TextDecoder, Transformer
from mmcourse.utils import check_number, check_tensor, check_token_id

__all__ = ["BLIPConfig", "BLIP", "OBJECTIVES", "SHARED_WITH_DECODER"]

OBJECTIVES = ("itc", "itm", "lm")
SHARED_WITH_DECODER = ("ln_cross", "cross_attn", "ln_2", "mlp")  # each block's sub-modules the two paths share


@dataclass
class BLIPConfig:
    """Sizes and the tokenizer's ids. `enc_id` / `dec_id` replace the first token (<sot>, BLIP's [CLS]) for
    the image-grounded encoder / the decoder; `pad_id` marks padding; `eot_id` ends a generated caption."""

    vocab_size: int
    context_length: int
    enc_id: int
    dec_id: int
    eot_id: int
    pad_id: int
    vision_width: int = 64
    width: int = 64
    layers: int = 2
    heads: int = 4
    embed_dim: int = 64
    mlp_ratio: float = 4.0
    act: str = "gelu"
    label_smoothing: float = 0.1


class BLIP(nn.Module):
    """forward(image_tokens, ids) -> {"itc", "itm", "lm"} losses of a batch of B matching pairs."""

    def __init__(self, config: BLIPConfig):
        super().__init__()
        c = self.config = config
        for name in ("vocab_size", "context_length", "vision_width", "width", "heads", "embed_dim"):
            check_number(getattr(c, name), name, integer=True, low=1)
        check_number(c.label_smoothing, "label_smoothing", low=0, high=1)
        for name in ("enc_id", "dec_id", "eot_id", "pad_id"):
            check_token_id(getattr(c, name), name, c.vocab_size)
        self.decoder = TextDecoder(c.vocab_size, c.context_length, c.width, c.layers, c.heads, eot_id=c.eot_id,
                                   pad_id=c.pad_id, sot_id=c.dec_id, memory_dim=c.vision_width,
                                   mlp_ratio=c.mlp_ratio, act=c.act)
        self.encoder = Transformer(c.width, c.layers, c.heads, c.mlp_ratio, c.act, cross_dim=c.vision_width)
        for enc, dec in zip(self.encoder.resblocks, self.decoder.transformer.resblocks, strict=True):
            for name in SHARED_WITH_DECODER:  # one module, two owners: the encoder keeps only attn and ln_1
                setattr(enc, name, getattr(dec, name))
        self.vision_proj = nn.Linear(c.vision_width, c.embed_dim)
        self.text_proj = nn.Linear(c.width, c.embed_dim)
        self.itm_head = nn.Linear(c.width, 2)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_text(self, ids: Tensor, image_tokens: Tensor | None = None, return_attn: bool = False):
        """ids (B, L), <sot> first, right-padded -> hidden states (B, L, width).

        Without image tokens: the unimodal encoder (ITC). With image tokens (B, M, vision_width): the first token
        becomes <enc> and every block cross-attends to the image. return_attn: also each layer's cross-attention
        weights (B, H, L, M)."""
        d = self.decoder
        x = d.embed(ids)
        if image_tokens is not None:
            _check_pairs(image_tokens, ids, self.config.vision_width)
            x = torch.cat([d.embed(torch.full_like(ids[:, :1], self.config.enc_id)), x[:, 1:]], dim=1)
        if ids.shape[1] > d.context_length:
            raise ValueError(f"ids: {ids.shape[1]} tokens exceed context_length={d.context_length}")
        out = self.encoder(x + d.positional_embedding[:ids.shape[1]], image_tokens,
                           key_padding_mask=ids == self.config.pad_id, return_attn=return_attn)
        h = d.ln_final(out.x if return_attn else out)
        return (h, out.cross_attentions) if return_attn else h

    def image_embed(self, image_tokens: Tensor) -> Tensor:
        """image_tokens (B, M, vision_width) -> normalised ITC features (B, embed_dim) of the [CLS] token."""
        check_tensor(image_tokens, "image_tokens", shape=("B", "M", self.config.vision_width), dtype="float")
        return F.normalize(self.vision_proj(image_tokens[:, 0]), dim=-1)

    def text_embed(self, ids: Tensor) -> Tensor:
        """ids (B, L) -> normalised ITC features (B, embed_dim) of the first token, unimodal encoder."""
        return F.normalize(self.text_proj(self.encode_text(ids)[:, 0]), dim=-1)

    def itm_logits(self, image_tokens: Tensor, ids: Tensor) -> Tensor:
        """B (image, caption) pairs -> ITM logits (B, 2); class 1 = the caption describes the image."""
        _check_pairs(image_tokens, ids, self.config.vision_width)
        return self.itm_head(self.encode_text(ids, image_tokens)[:, 0])

    def itm_prob(self, image_tokens: Tensor, ids: Tensor) -> Tensor:
        """P(match) (B,) of B (image, caption) pairs."""
        return self.itm_logits(image_tokens, ids).softmax(-1)[:, 1]

    def lm_logits(self, image_tokens: Tensor, ids: Tensor) -> Tensor:
        """ids (B, L) with <sot> first -> the decoder's next-token logits (B, L, vocab) after <dec> + ids[:, 1:]."""
        _check_pairs(image_tokens, ids, self.config.vision_width)
        ids = torch.cat([torch.full_like(ids[:, :1], self.config.dec_id), ids[:, 1:]], dim=1)
        return self.decoder(ids, memory=image_tokens)

    def forward(self, image_tokens: Tensor, ids: Tensor, same: Tensor | None = None,
                generator: torch.Generator | None = None, objectives: tuple[str, ...] = OBJECTIVES,
                hard_negatives: bool = True) -> dict[str, Tensor]:
        """The pre-training losses of B matching pairs, {name: loss} for each of `objectives`.

        image_tokens (B, M, vision_width), ids (B, L). ITM negatives are drawn ∝ softmax of this batch's ITC
        logits (`sample_hard_negatives`), or uniformly when not `hard_negatives`; same (B, B) bool marks pairs
        (i, j ≠ i) that match too (equal descriptions), never drawn as negatives."""
        _check_pairs(image_tokens, ids, self.config.vision_width)
        if not isinstance(objectives, (list, tuple)) or not objectives or set(objectives) - set(OBJECTIVES):
            raise ValueError(f"objectives: expected a non-empty subset of {OBJECTIVES}, got {objectives!r}")
        losses = {}
        if "itc" in objectives or "itm" in objectives:
            x, y, s = self.image_embed(image_tokens), self.text_embed(ids), self.logit_scale.exp()
            if "itc" in objectives:
                losses["itc"] = clip_loss(x, y, s)
            if "itm" in objectives:
                sim = s * x @ y.T if hard_negatives else torch.zeros(len(x), len(x), device=x.device)
                neg_text, neg_image = sample_hard_negatives(sim, same, generator)
                losses["itm"] = itm_loss(self.itm_logits, image_tokens, ids, neg_text, neg_image)
        if "lm" in objectives:
            labels = ids.masked_fill(ids == self.config.pad_id, -100)
            losses["lm"] = lm_loss(self.lm_logits(image_tokens, ids), labels,
                                   label_smoothing=self.config.label_smoothing)
        return losses

    def generate(self, image_tokens: Tensor, **kwargs) -> GenerateOutput:
        """Captions of images (B, M, vision_width): `TextDecoder.generate` from <dec> (greedy unless do_sample,
        top_p, num_beams ... say otherwise)."""
        check_tensor(image_tokens, "image_tokens", shape=("B", "M", self.config.vision_width), dtype="float")
        if len(image_tokens) == 0:
            raise ValueError("image_tokens: an empty batch, no image to caption")
        return self.decoder.generate(memory=image_tokens, **kwargs)

    @torch.no_grad()
    def clamp_logit_scale(self) -> None:
        """Keep s = exp(logit_scale) in [1, 100], as CLIP does (call after every optimiser step)."""
        self.logit_scale.clamp_(0, math.log(100))


def _check_pairs(image_tokens: Tensor, ids: Tensor, vision_width: int) -> None:
    check_tensor(image_tokens, "image_tokens", shape=("B", "M", vision_width), dtype="float")
    check_tensor(ids, "ids", ndim=2, dtype="int")
    if len(image_tokens) != len(ids):
        raise ValueError(f"image_tokens and ids must be B pairs: got {len(image_tokens)} images and {len(ids)} "
                         "captions")
    if len(ids) == 0:
        raise ValueError("empty batch: image_tokens and ids have 0 pairs")
