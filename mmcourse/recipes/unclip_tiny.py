"""Chapter 06's unCLIP on clip-tiny: its close-up images, the prior and the decoder, and the judged text -> image
evaluation. The zoo entry "unclip-tiny" is this recipe (it needs "clip-tiny"); "judge-tiny" reads its samples.

    clip = zoo.load("clip-tiny")
    data = close_ups(TRAIN_IMAGES)                # one large shape near the centre: 32 x 32 and its 16 x 16 middle
    model = build()                               # UnCLIP: a residual-MLP prior and a 1.1 M-parameter UNet decoder
    train(model, clip, data)                      # train_prior (PRIOR_STEPS), then train_decoder (STEPS)
    text_to_image(model, clip, judge, guidance=3) # {"colour", "shape", "both"}: the judge's reading of the samples

The decoder draws the 16 x 16 middle of the 32 x 32 image that CLIP encodes: a close-up, four times cheaper to
denoise than the whole picture, in which the object fills half the side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.data import ZERO_SHOT_TEMPLATES, Scenes, Tokenizer, class_phrases, render, sample_scenes
from mmcourse.data.world import BACKGROUND, SHAPES, allowed_pairs
from mmcourse.models.clip import CLIP, encode_images, encode_texts
from mmcourse.models.unclip import Judge, Prior, UnCLIP, UnCLIPDecoder
from mmcourse.recipes.clip_tiny import CONTEXT_LENGTH
from mmcourse.train import History, fit
from mmcourse.utils import check_number, get_device, make_generator, python_rng, seed_everything

__all__ = ["VERSION", "NEEDS", "IMAGE_SIZE", "TRAIN_IMAGES", "STEPS", "BATCH_SIZE", "HYPER", "PRIOR_STEPS", "T",
           "SEEN_LABELS", "CloseUps", "close_ups", "crop", "embed", "build", "train_prior", "train_decoder", "train",
           "prompts", "text_embeddings", "text_to_image", "judge_accuracy", "object_colour", "diversity"]

VERSION = 1
NEEDS = ("clip-tiny",)
IMAGE_SIZE = 16  # the decoder's side: the middle of the 32 x 32 image
TRAIN_IMAGES = 20_000
STEPS = 700
BATCH_SIZE = 64
HYPER = dict(lr=2e-3, betas=(0.9, 0.99), weight_decay=0.0, warmup=50, grad_clip=1.0)
PRIOR_STEPS = 400
T = 200
CENTRE_SPREAD = 0.12  # object centres lie within +-6 % of the image side around the middle
SEEN_LABELS = tuple(c * len(SHAPES) + s for c, s in allowed_pairs("train"))  # the 20 pairs training images show


@dataclass
class CloseUps:
    """scenes (N single large objects), full (N, 3, 32, 32) images, crops (N, 3, 16, 16) their middles, and after
    `embed`: image_embeds and text_embeds (N, D), CLIP's normalised embeddings of the image and of a prompt."""
    scenes: Scenes
    full: Tensor
    crops: Tensor
    image_embeds: Tensor | None = None
    text_embeds: Tensor | None = None

    @property
    def label(self) -> Tensor:
        return self.scenes.label[:, 0]


def crop(full: Tensor) -> Tensor:
    """The middle IMAGE_SIZE x IMAGE_SIZE of images (N, 3, 32, 32)."""
    lo = (full.shape[-1] - IMAGE_SIZE) // 2
    return full[..., lo:lo + IMAGE_SIZE, lo:lo + IMAGE_SIZE].contiguous()


def close_ups(n: int, seed: int = 0, split: str = "train") -> CloseUps:
    """n images of one large object (no held-out colour-shape pair unless split="test") near the centre."""
    scenes = sample_scenes(n, seed, max_objects=1, split=split, sizes=["large"])
    g = make_generator(seed, "close-ups")
    scenes.center = 0.5 + (torch.rand(scenes.center.shape, generator=g) - 0.5) * CENTRE_SPREAD
    full = render(scenes, 32, seed)
    return CloseUps(scenes, full, crop(full))


def prompts(labels: Sequence[int], seed: int = 0) -> list[str]:
    """One prompt per class label (colour * 3 + shape): a zero-shot template around its phrase ("a photo of a red
    circle"), the template drawn at random."""
    phrases, rng = class_phrases(), python_rng(seed, "unclip-prompts")
    return [rng.choice(ZERO_SHOT_TEMPLATES).format(phrases[k]) for k in labels]


def text_embeddings(clip: CLIP, texts: Sequence[str]) -> Tensor:
    """CLIP's normalised text embeddings (N, D) of texts."""
    return encode_texts(clip, Tokenizer()(list(texts), CONTEXT_LENGTH))


def embed(data: CloseUps, clip: CLIP, seed: int = 0) -> CloseUps:
    """Fill in the image embeddings of the full images and the text embeddings of one prompt per image."""
    data.image_embeds = encode_images(clip, data.full)
    data.text_embeds = text_embeddings(clip, prompts(data.label.tolist(), seed))
    return data


def build(seed: int = 0, **decoder_kw) -> UnCLIP:
    """The untrained prior and decoder for clip-tiny's 64-d embeddings."""
    seed_everything(seed)
    return UnCLIP(Prior(64), UnCLIPDecoder(64, IMAGE_SIZE, T=T, **decoder_kw))


def train_prior(prior: Prior, data: CloseUps, generator: torch.Generator | None = None,
                device: torch.device | str | None = None, **fit_kw) -> History:
    """PRIOR_STEPS steps of the prior on embedded `data`: batches of 256 (text, image) embedding pairs, the cosine
    loss to the true image embedding."""
    g, device = generator or make_generator(0, "unclip-batches"), device or get_device()

    def step(prior, _):
        i = torch.randint(0, len(data.crops), (256,), generator=g)
        return prior.loss(data.text_embeds[i].to(device), data.image_embeds[i].to(device))

    return fit(prior, step, lambda s: s, PRIOR_STEPS, **{"lr": 1e-3, "warmup": 20, "device": device,
                                                         "desc": "unclip prior", **fit_kw})


def train_decoder(decoder: UnCLIPDecoder, data: CloseUps, steps: int = STEPS, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None, **fit_kw) -> History:
    """`steps` of the decoder on embedded `data`: batches of BATCH_SIZE close-ups with their CLIP image embeddings,
    the ε-prediction loss (conditioning dropped 10 % of the time); fit_kw override `HYPER`."""
    g, device = generator or make_generator(0, "unclip-batches"), device or get_device()

    def step(decoder, _):
        i = torch.randint(0, len(data.crops), (BATCH_SIZE,), generator=g)
        return decoder.loss(data.crops[i].to(device), data.image_embeds[i].to(device))

    return fit(decoder, step, lambda s: s, steps, **{"device": device, "desc": "unclip decoder", **HYPER, **fit_kw})


def train(model: UnCLIP, clip: CLIP, data: CloseUps | None = None, steps: int = STEPS, seed: int = 0,
          device: torch.device | str | None = None, **fit_kw) -> History:
    """The recipe: `train_prior`, then `train_decoder` for `steps`, on `data` (default: `close_ups(TRAIN_IMAGES)`,
    embedded by `clip`), one batch stream from `seed`. Returns the decoder's History; fit_kw go to the decoder's
    fit (progress, desc ...), `progress` to the prior's too."""
    data = close_ups(TRAIN_IMAGES) if data is None else data
    if data.image_embeds is None:
        embed(data, clip)
    device = device or get_device()
    g = make_generator(seed, "unclip-batches")
    seed_everything(seed)
    train_prior(model.prior, data, g, device, progress=fit_kw.get("progress", True))
    return train_decoder(model.decoder, data, steps, g, device, **fit_kw)


def judge_accuracy(judge: Judge, images: Tensor, labels: Tensor) -> dict[str, float]:
    """The judge's reading of images (N, 3, 16, 16) against class labels (N,): the share with the asked colour,
    the asked shape, and both."""
    with torch.no_grad():
        c, s = judge(images.to(next(judge.parameters()).device))
    labels = labels.to(c.device)
    colour, shape = c.argmax(1) == labels // len(SHAPES), s.argmax(1) == labels % len(SHAPES)
    return {"colour": colour.float().mean().item(), "shape": shape.float().mean().item(),
            "both": (colour & shape).float().mean().item()}


def object_colour(images: Tensor) -> Tensor:
    """The mean colour (N, 3) of each image's object: its pixels that differ from the world's background by more
    than 0.25 in some channel."""
    background = torch.tensor(BACKGROUND, device=images.device)[:, None, None]
    fg = ((images - background).abs().amax(1, keepdim=True) > 0.25).float()
    return (images * fg).sum((2, 3)) / fg.sum((2, 3)).clamp(min=1)


def diversity(images: Tensor, groups: int) -> float:
    """Colour diversity: the standard deviation, across the samples of one prompt, of the object's mean colour
    (`object_colour`), averaged over RGB and prompts. images (G·k, 3, S, S) hold `groups` prompts' samples
    interleaved (image i belongs to prompt i % groups)."""
    check_number(groups, "groups", integer=True, low=1)
    if len(images) % groups or len(images) // groups < 2:
        raise ValueError(f"diversity needs at least 2 samples of each of {groups} prompts, got {len(images)} images")
    return object_colour(images).reshape(-1, groups, 3).std(dim=0).mean().item()


def text_to_image(model: UnCLIP, clip: CLIP, judge: Judge, per_pair: int = 4, split: str = "train",
                  use_prior: bool = True, seed: int = 0, **sample_kw) -> dict[str, float]:
    """Sample `per_pair` images for the prompt "a {colour} {shape}" of every colour-shape pair of `split` (20 seen
    pairs, or the 4 held-out ones with split="test") and judge them: {"colour", "shape", "both", "diversity",
    "n"}. sample_kw go to the decoder's sampler (guidance, steps)."""
    check_number(per_pair, "per_pair", integer=True, low=2)
    labels = torch.tensor([c * len(SHAPES) + s for c, s in allowed_pairs(split)])
    phrases = class_phrases()
    z = text_embeddings(clip, [phrases[k] for k in labels.tolist()])
    device = next(model.parameters()).device
    images = model.generate(z.repeat(per_pair, 1).to(device), use_prior=use_prior, seed=seed, **sample_kw)
    return {**judge_accuracy(judge, images, labels.repeat(per_pair)), "diversity": diversity(images, len(labels)),
            "n": len(images)}

