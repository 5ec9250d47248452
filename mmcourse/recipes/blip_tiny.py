"""Chapter 04's tiny BLIP: its data (a frozen CLIP image encoder's tokens, one caption per image), its training,
its evaluations, and CapFilt.

    visual = zoo.load("clip-tiny").visual          # chapter 02's image tower, frozen
    data = web_data(visual, noise_fraction=0.4)   # image tokens computed once; 40 % of the captions wrong
    model = build(); train(model, data.pairs)      # ITC + ITM (hard negatives) + LM, STEPS steps
    evaluate(model, test_data(visual))            # ITM on one-attribute negatives, captions, zero-shot, R@1

Images have 1-2 shapes of the training pairs (`split="train"`); the test images are new scenes. A caption is
"fully correct" when `caption_is_correct` parses from it exactly the scene's objects with colour, shape and size.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.data import (
    ZERO_SHOT_TEMPLATES,
    CaptionDataset,
    Scenes,
    Tokenizer,
    caption,
    caption_is_correct,
    class_phrases,
    corrupt_objects,
    parse_caption,
    render,
    sample_scenes,
)
from mmcourse.data.text import check_strings
from mmcourse.metrics.retrieval import recall_at_k
from mmcourse.models.blip import BLIP, OBJECTIVES, BLIPConfig
from mmcourse.nn import VisionTransformer
from mmcourse.train import History, fit
from mmcourse.utils import check_tensor, describe, get_device, make_generator, python_rng, seed_everything

__all__ = ["VERSION", "TRAIN_IMAGES", "BATCH_SIZE", "STEPS", "CONTEXT_LENGTH", "HYPER", "OBJECTIVES",
           "tokenizer", "encode", "build", "image_tokens", "Pairs", "WebData", "web_data", "same_description", "train",
           "TestData", "test_data", "itm_accuracy", "captions", "caption_accuracy", "zero_shot_accuracy",
           "retrieval_r1", "evaluate", "finetune", "CapFiltResult", "capfilt", "match_probs", "filter_quality"]

VERSION = 1
TRAIN_IMAGES = 10_000
MAX_OBJECTS = 2
BATCH_SIZE = 64
STEPS = 500
CONTEXT_LENGTH = 24
HYPER = dict(lr=2e-3, betas=(0.9, 0.98), weight_decay=0.05, warmup=50, grad_clip=1.0)
HUMAN_IMAGES = 1000  # the small clean set CapFilt's captioner and filter are fine-tuned on (BLIP: COCO)
FINETUNE = dict(steps=150, lr=1e-3, warmup=10)
EXTRA_TOKENS = ("<enc>", "<dec>")  # BLIP's [ENC] and [DEC], after the world's words
CAPTION_KW = dict(p_drop_size=0.0)  # captions always name sizes, so that a generated caption can get them right


def tokenizer() -> Tokenizer:
    """The world's tokenizer with <enc> and <dec> added (every word keeps its id)."""
    return Tokenizer(extra_tokens=EXTRA_TOKENS)


def encode(texts: Sequence[str], tok: Tokenizer | None = None) -> Tensor:
    """Captions -> ids (N, L), padded to the longest and cut at CONTEXT_LENGTH (keeping the final <eot>)."""
    ids = (tok or tokenizer())(check_strings(texts, "texts"))
    return ids if ids.shape[1] <= CONTEXT_LENGTH else (tok or tokenizer())(list(texts), CONTEXT_LENGTH)


def build(seed: int = 0, **overrides) -> BLIP:
    """The course's CPU BLIP: width 64, 2 layers, 4 heads over the 64-wide CLIP tokens, initialised from `seed`."""
    tok = tokenizer()
    seed_everything(seed)
    return BLIP(BLIPConfig(tok.vocab_size, CONTEXT_LENGTH, enc_id=tok.stoi["<enc>"], dec_id=tok.stoi["<dec>"],
                           eot_id=tok.eot_id, pad_id=tok.pad_id, **overrides))


@torch.no_grad()
def image_tokens(visual: VisionTransformer, images: Tensor, batch_size: int = 500) -> Tensor:
    """images (N, 3, H, W) -> the frozen image encoder's output tokens (N, 1 + patches, width): ln_post of
    [CLS; patches] after the last block, on the CPU."""
    check_tensor(images, "images", shape=("N", 3, "H", "W"), dtype="float")
    visual.eval()
    device = next(visual.parameters()).device
    chunks = [visual.ln_post(visual.transformer(visual.embed(x.to(device)))).cpu() for x in images.split(batch_size)]
    return torch.cat(chunks)


@dataclass
class Pairs:
    """Training pairs: pair p is image `image[p]` (a row of `tokens`) with caption `texts[p]`. An image may
    appear in several pairs (CapFilt keeps its web caption and its synthetic one)."""

    tokens: Tensor  # (N_images, M, width) frozen image tokens
    image: Tensor  # (P,) long
    texts: list[str]

    def __post_init__(self):
        check_tensor(self.image, "image", shape=(len(self.texts),), dtype="int")
        if len(self.texts) and not 0 <= int(self.image.min()) <= int(self.image.max()) < len(self.tokens):
            raise ValueError(f"image: indices must be in [0, {len(self.tokens)}), got {self.image.min()}"
                             f"..{self.image.max()}")

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, keep: Tensor) -> Pairs:
        """The pairs where `keep` (P,) bool is True."""
        check_tensor(keep, "keep", shape=(len(self),), dtype=torch.bool)
        return Pairs(self.tokens, self.image[keep], [t for t, k in zip(self.texts, keep.tolist(), strict=True) if k])

    def __add__(self, other: Pairs) -> Pairs:
        if other.tokens is not self.tokens:
            raise ValueError("only pairs over the same image tokens can be joined")
        return Pairs(self.tokens, torch.cat([self.image, other.image]), self.texts + other.texts)

    def batches(self, batch_size: int = BATCH_SIZE, seed: int = 0, tok: Tokenizer | None = None):
        """step -> batch {"image_tokens", "ids", "same"}: epochs of shuffled pairs, the last partial one dropped."""
        if not 2 <= batch_size <= len(self):
            raise ValueError(f"batch_size must be in [2, {len(self)}] (the number of pairs), got {batch_size}")
        tok = tok or tokenizer()
        per_epoch = len(self) // batch_size

        def batch(step: int) -> dict:
            epoch, i = divmod(step, per_epoch)
            order = torch.randperm(len(self), generator=make_generator(seed, f"blip-batches/{epoch}"))
            chosen = order[i * batch_size:(i + 1) * batch_size]
            texts = [self.texts[p] for p in chosen.tolist()]
            return {"image_tokens": self.tokens[self.image[chosen]], "ids": encode(texts, tok),
                    "same": same_description(texts)}

        return batch


def same_description(texts: Sequence[str]) -> Tensor:
    """(B, B) bool: captions i and j name the same objects (colours and shapes, and sizes where both give them).

    Caption j is then as good a description of image i as caption i is: not a negative. It is read from the
    captions alone, as BLIP reads duplicates from image ids, never from the images' true content."""
    if not check_strings(texts, "texts"):
        raise ValueError("texts: an empty list, no caption to compare")
    parsed = [parse_caption(t) for t in texts]
    loose = [sorted((o["colour"], o["shape"]) for o in p) for p in parsed]
    full = [sorted((o["colour"], o["shape"], o["size"] or "") for o in p) for p in parsed]
    sized = [all(o["size"] for o in p) for p in parsed]
    B = len(texts)
    return torch.tensor([[loose[i] == loose[j] and (not (sized[i] and sized[j]) or full[i] == full[j])
                          for j in range(B)] for i in range(B)])


@dataclass
class WebData:
    """The training images and their 'web' captions: `pairs` (one caption each), the dataset they come from
    (`dataset.objects[i]` the truth, `dataset.clean[i]` whether caption i is right)."""

    pairs: Pairs
    dataset: CaptionDataset


def web_data(visual: VisionTransformer, n: int = TRAIN_IMAGES, noise_fraction: float = 0.0,
             seed: int = 0) -> WebData:
    """n training images and one fixed caption each; `noise_fraction` of them wrong (`corrupt_objects`: one
    attribute swapped, or unrelated objects). Clean captions are worded identically at every noise_fraction."""
    ds = CaptionDataset(n, 32, seed, split="train", max_objects=MAX_OBJECTS, captions_per_image=1,
                        noise_fraction=noise_fraction, caption_kw=CAPTION_KW, context_length=CONTEXT_LENGTH)
    pairs = Pairs(image_tokens(visual, ds.images), torch.arange(n), [ds.caption(i) for i in range(n)])
    return WebData(pairs, ds)


def train(model: BLIP, pairs: Pairs, steps: int = STEPS, batch_size: int = BATCH_SIZE, seed: int = 0,
          objectives: Sequence[str] = OBJECTIVES, hard_negatives: bool = True,
          device: torch.device | str | None = None, **fit_kw) -> History:
    """Train in place on `pairs` with the sum of `objectives` (of "itc", "itm", "lm") and `HYPER` (AdamW,
    warm-up + cosine, clipping), the logit scale clamped after every step; hard_negatives=False draws ITM
    negatives uniformly instead; fit_kw go to `mmcourse.train.fit`."""
    objectives = tuple(objectives)
    seed_everything(seed)
    generator = make_generator(seed, "itm-negatives")

    def step(model: BLIP, batch: dict) -> tuple[Tensor, dict]:
        losses = model(batch["image_tokens"], batch["ids"], batch["same"], generator, objectives, hard_negatives)
        return sum(losses.values()), {k: v.item() for k, v in losses.items()}

    fit_kw = {"desc": "blip-tiny", **HYPER, **fit_kw}
    return fit(model, step, pairs.batches(batch_size, seed), steps, after_step=BLIP.clamp_logit_scale,
               device=device or get_device(), **fit_kw)


@dataclass
class TestData:
    """New scenes for evaluation: their tokens, objects, a caption each, the same caption with one attribute of
    one object changed (a hard negative), and another scene's caption (a random negative); single-shape images
    with their class for zero-shot."""

    scenes: Scenes
    images: Tensor
    tokens: Tensor
    objects: list[list[dict]]
    texts: list[str]
    hard_negatives: list[str]
    random_negatives: list[str]
    zero_shot_tokens: Tensor
    zero_shot_labels: Tensor


def test_data(visual: VisionTransformer, n: int = 1000, seed: int = 1000) -> TestData:
    """n test scenes of 1-2 shapes (training pairs, new scenes) and n single shapes for zero-shot."""
    scenes = sample_scenes(n, seed, max_objects=MAX_OBJECTS, split="train")
    objects = [scenes.objects(i) for i in range(n)]
    texts, hard = [], []
    for i, objs in enumerate(objects):  # the negative is worded with the same random choices as the positive
        texts.append(caption(objs, python_rng(seed, f"test-caption/{i}"), **CAPTION_KW))
        wrong = corrupt_objects(objs, python_rng(seed, f"test-negative/{i}"), "swap")
        hard.append(caption(wrong, python_rng(seed, f"test-caption/{i}"), **CAPTION_KW))
    shift = torch.randint(1, n, (n,), generator=make_generator(seed, "random-negatives"))
    rand = [texts[(i + s) % n] for i, s in enumerate(shift.tolist())]
    singles = sample_scenes(n, seed + 1, max_objects=1, split="train")
    images = render(scenes, 32, seed)
    return TestData(scenes, images, image_tokens(visual, images), objects, texts, hard, rand,
                    image_tokens(visual, render(singles, 32, seed + 1)), singles.label[:, 0])


def _device(model: BLIP) -> torch.device:
    return model.logit_scale.device


@torch.no_grad()
def itm_accuracy(model: BLIP, tokens: Tensor, positives: Sequence[str], negatives: Sequence[str]) -> float:
    """Accuracy of P(match) > 0.5 over the 2N pairs: each image with its caption (a match) and with its negative."""
    images = torch.arange(len(tokens))
    p_pos, p_neg = (match_probs(model, Pairs(tokens, images, list(texts))) for texts in (positives, negatives))
    return ((p_pos > 0.5).sum() + (p_neg <= 0.5).sum()).item() / (2 * len(tokens))


@torch.no_grad()
def captions(model: BLIP, tokens: Tensor, batch_size: int = 500, **generate_kw) -> list[str]:
    """A generated caption per image (greedy unless generate_kw say otherwise: do_sample, top_p, num_beams ...)."""
    tok, dev = tokenizer(), _device(model)
    out = []
    for x in tokens.split(batch_size):
        out += tok.decode_batch(model.generate(x.to(dev), max_new_tokens=CONTEXT_LENGTH - 1, **generate_kw).ids)
    return out


def caption_accuracy(texts: Sequence[str], objects: Sequence[list[dict]]) -> float:
    """Fraction of captions that are fully correct: every object named once, colour, shape and size right."""
    check_strings(texts, "texts")
    if not isinstance(objects, (list, tuple)) or len(texts) != len(objects) or not texts:
        raise ValueError(f"texts and objects: expected one caption per scene, got {len(texts)} captions for "
                         f"{describe(objects)}")
    return sum(caption_is_correct(t, o) for t, o in zip(texts, objects, strict=True)) / len(texts)


@torch.no_grad()
def zero_shot_accuracy(model: BLIP, tokens: Tensor, labels: Tensor,
                       templates: Sequence[str] = ZERO_SHOT_TEMPLATES) -> float:
    """ITC zero-shot over the 24 colour-shape classes: prompt ensemble per class, nearest class per image."""
    tok, dev = tokenizer(), _device(model)
    weights = torch.stack([torch.nn.functional.normalize(
        model.text_embed(encode([t.format(p) for t in templates], tok).to(dev)).mean(0), dim=-1)
        for p in class_phrases()], dim=1)
    predicted = (model.image_embed(tokens.to(dev)) @ weights).argmax(-1).cpu()
    return (predicted == labels).float().mean().item()


@torch.no_grad()
def retrieval_r1(model: BLIP, tokens: Tensor, texts: Sequence[str], rerank: int = 16) -> float:
    """Image -> text R@1 over the test set, retrieved as BLIP does: the ITC similarity picks each image's
    `rerank` best captions, which are then ordered by the ITM's match logit (log-odds) + the ITC similarity
    (rerank=0: ITC alone). A caption naming the same objects as the image's own caption counts as a hit."""
    tok, dev = tokenizer(), _device(model)
    ids = encode(texts, tok).to(dev)
    sim = (model.image_embed(tokens.to(dev)) @ model.text_embed(ids).T).cpu()
    rerank = min(rerank, len(texts))
    if rerank:
        top = sim.topk(rerank, dim=1).indices  # (N, k)
        score = torch.full_like(sim, float("-inf"))
        for i in range(len(tokens)):
            logits = model.itm_logits(tokens[i:i + 1].expand(rerank, -1, -1).to(dev), ids[top[i]]).cpu()
            score[i, top[i]] = logits[:, 1] - logits[:, 0] + sim[i, top[i]]  # BLIP: ITM score + ITC similarity
        sim = score
    return recall_at_k(sim, same_description(texts), 1)


def evaluate(model: BLIP, data: TestData) -> dict[str, float]:
    """ITM accuracy (one-attribute and random negatives), greedy caption accuracy, zero-shot, R@1."""
    model.eval()
    return {"itm_hard": itm_accuracy(model, data.tokens, data.texts, data.hard_negatives),
            "itm_random": itm_accuracy(model, data.tokens, data.texts, data.random_negatives),
            "captions": caption_accuracy(captions(model, data.tokens), data.objects),
            "zero_shot": zero_shot_accuracy(model, data.zero_shot_tokens, data.zero_shot_labels),
            "R@1 ITC": retrieval_r1(model, data.tokens, data.texts, rerank=0),
            "R@1": retrieval_r1(model, data.tokens, data.texts)}


@dataclass
class CapFiltResult:
    """What CapFilt did to the web pairs: which web captions the filter kept, the synthetic captions and which
    of them it kept, and the bootstrapped pairs (kept web + kept synthetic)."""

    web_kept: Tensor  # (P,) bool
    synthetic: list[str]
    synthetic_kept: Tensor  # (P,) bool
    pairs: Pairs


def finetune(model: BLIP, pairs: Pairs, objectives: Sequence[str], seed: int = 0, **fit_kw) -> BLIP:
    """A fine-tuned copy of `model` (`FINETUNE`: 150 steps at lr 1e-3): CapFilt's captioner is the pre-trained
    model fine-tuned with ("lm",), its filter the same model fine-tuned with ("itc", "itm")."""
    tuned = copy.deepcopy(model)
    train(tuned, pairs, seed=seed, objectives=objectives, **{"desc": "+".join(objectives), **FINETUNE, **fit_kw})
    return tuned.eval()


@torch.no_grad()
def capfilt(captioner: BLIP, filter: BLIP, web: Pairs, threshold: float = 0.5, top_p: float = 0.9,
            seed: int = 0, batch_size: int = 500) -> CapFiltResult:
    """Caption every web image with nucleus sampling, then let the filter's ITM judge the web caption and the
    synthetic caption of each image, each on its own: every caption with P(match) > threshold stays (both
    may), and the kept texts stay paired with their own images."""
    images = web.image.unique()
    generator = make_generator(seed, "capfilt-nucleus")
    synthetic = captions(captioner, web.tokens[images], batch_size, do_sample=True, top_p=top_p,
                         generator=generator)
    synthetic_pairs = Pairs(web.tokens, images, synthetic)
    written = torch.tensor([bool(t.strip()) for t in synthetic])  # a caption that ended at once is no caption
    keep_web = match_probs(filter, web, batch_size) > threshold
    keep_synthetic = torch.zeros(len(synthetic), dtype=torch.bool)
    if written.any():
        keep_synthetic[written] = match_probs(filter, synthetic_pairs.select(written), batch_size) > threshold
    return CapFiltResult(keep_web, synthetic, keep_synthetic,
                         web.select(keep_web) + synthetic_pairs.select(keep_synthetic))


def filter_quality(kept: Tensor, correct: Tensor) -> dict[str, float]:
    """Precision (of the kept captions, the fraction that is correct) and recall (of the correct captions, the
    fraction kept) of a filter's decisions kept (P,) against the truth correct (P,)."""
    check_tensor(kept, "kept", shape=("P",), dtype=torch.bool)
    check_tensor(correct, "correct", shape=kept.shape, dtype=torch.bool)
    hits = (kept & correct).sum().item()
    return {"precision": hits / max(1, kept.sum().item()), "recall": hits / max(1, correct.sum().item())}


@torch.no_grad()
def match_probs(model: BLIP, pairs: Pairs, batch_size: int = 500) -> Tensor:
    """The ITM's P(match) (P,) of every pair, on the CPU."""
    tok, dev = tokenizer(), _device(model)
    model.eval()
    return torch.cat([model.itm_prob(pairs.tokens[pairs.image[s:s + batch_size]].to(dev),
                                     encode(pairs.texts[s:s + batch_size], tok).to(dev)).cpu()
                      for s in range(0, len(pairs), batch_size)])
