"""Chapter 11's batch-size experiment: how the global batch -- the set of negatives -- changes what a contrastive
model learns from a fixed number of examples.

LiT-style (Zhai et al., 2022, "locked-image tuning"): chapter 02's CLIP image tower stays frozen and a fresh text
tower learns to meet its embeddings under the CLIP loss. Every run sees the same number of (image, caption) pairs;
a batch of B pairs gives each caption B - 1 negatives and the run examples / B optimiser steps.

    data = lit_data(zoo.load("clip-tiny"))           # frozen image embeddings, captions, test sets (about 8 s)
    text, history = train(data, batch_size=128)      # EXAMPLES pairs seen: EXAMPLES / 128 steps
    evaluate(data, text)                             # zero-shot (24 classes) and text -> image R@1 on 1 000 pairs
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.data import ZERO_SHOT_TEMPLATES, CaptionDataset, Tokenizer, class_phrases
from mmcourse.losses import clip_loss
from mmcourse.models.clip import CLIP, TextTransformer
from mmcourse.recipes import clip_tiny
from mmcourse.train import History, fit
from mmcourse.utils import check_number, make_generator, seed_everything

__all__ = ["EXAMPLES", "TRAIN_PAIRS", "TEST_PAIRS", "HYPER", "LiTData", "lit_data", "train", "evaluate"]

EXAMPLES = 16_384  # (image, caption) pairs every run sees, whatever its batch size
TRAIN_PAIRS, TEST_PAIRS = 8192, 1000
HYPER = dict(lr=3e-3, betas=(0.9, 0.98), weight_decay=0.0)


@dataclass
class LiTData:
    """Frozen, normalised image embeddings of the training images (N, D) and their caption ids (N, L); a test set of
    TEST_PAIRS new scenes with one caption each; the zero-shot images' embeddings and labels; the class prompts."""

    image_embeddings: Tensor
    ids: Tensor
    test_embeddings: Tensor
    test_ids: Tensor
    zero_shot: dict[str, tuple[Tensor, Tensor]]
    prompts: Tensor  # (24, templates, L)
    clip: CLIP


@torch.no_grad()
def lit_data(clip: CLIP, seed: int = 5) -> LiTData:
    """The experiment's data: training scenes of 1-3 shapes with one caption each, encoded once by `clip`'s image
    tower; test pairs from other scenes; chapter 02's zero-shot sets."""
    clip.eval()
    tok = Tokenizer()
    encode = lambda images: torch.cat([clip.encode_image(x, normalize=True) for x in images.split(1024)])  # noqa: E731
    train, test = CaptionDataset(TRAIN_PAIRS, seed=seed, max_objects=3), CaptionDataset(TEST_PAIRS, seed=seed + 1,
                                                                                         max_objects=3)
    captions = lambda ds: tok([ds[i]["caption"] for i in range(len(ds))], clip_tiny.CONTEXT_LENGTH)  # noqa: E731
    zero_shot = {k: (encode(images), labels) for k, (images, labels) in clip_tiny.zero_shot_sets(1000).items()}
    prompts = torch.stack([tok([t.format(p) for t in ZERO_SHOT_TEMPLATES], clip_tiny.CONTEXT_LENGTH)
                           for p in class_phrases()])
    return LiTData(encode(train.images), captions(train), encode(test.images), captions(test), zero_shot, prompts, clip)


class _LiT(torch.nn.Module):
    """A fresh text tower and its learned temperature, trained against frozen image embeddings."""

    def __init__(self, text: TextTransformer):
        super().__init__()
        self.text = text
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))


def train(data: LiTData, batch_size: int, examples: int = EXAMPLES, seed: int = 0, temperature: float | None = None,
          progress: bool = True) -> tuple[TextTransformer, History]:
    """A text tower initialised from `seed`, trained for examples // batch_size steps of batch_size random pairs.

    temperature: None learns s = exp(logit_scale) (clamped at 100, from 1/0.07); a number fixes s = 1 / temperature."""
    check_number(batch_size, "batch_size", integer=True, low=2, high=len(data.ids))
    check_number(examples, "examples", integer=True, low=batch_size)
    if temperature is not None:
        check_number(temperature, "temperature", low=0, low_open=True)
    seed_everything(seed)
    model = _LiT(CLIP(data.clip.config).text)
    g = make_generator(seed, "lit-batches")
    steps = examples // batch_size

    def loss_fn(model, step):
        idx = torch.randint(len(data.ids), (batch_size,), generator=g)
        scale = model.logit_scale.exp().clamp(max=100) if temperature is None else 1 / temperature
        return clip_loss(data.image_embeddings[idx], model.text(data.ids[idx]), scale)

    history = fit(model, loss_fn, lambda step: step, steps, **HYPER, device="cpu", progress=progress,
                  desc=f"batch {batch_size}")
    return model.text.eval(), history


@torch.no_grad()
def evaluate(data: LiTData, text: TextTransformer) -> dict[str, float]:
    """Zero-shot accuracy over the 24 classes ("seen", "held-out", prompt ensembles) and text -> image R@1 among the
    TEST_PAIRS test images ("R@1")."""
    text.eval()
    weights = F.normalize(torch.stack([F.normalize(text(p), dim=-1).mean(0) for p in data.prompts]), dim=-1)
    out = {k: (x @ weights.T).argmax(1).eq(y).float().mean().item() for k, (x, y) in data.zero_shot.items()}
    sim = F.normalize(text(data.test_ids), dim=-1) @ data.test_embeddings.T
    out["R@1"] = sim.argmax(1).eq(torch.arange(len(sim))).float().mean().item()
    return out
