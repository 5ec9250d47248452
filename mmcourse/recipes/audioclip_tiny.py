"""Chapter 07's tri-modal part: an audio encoder of object sounds bound to clip-tiny's frozen image tower, then asked
to find text it never heard paired with a sound.

    clip = zoo.load("clip-tiny")
    data = sounding_objects(TRAIN_SOUNDS, clip=clip)  # one object each: image, sound, CLIP's image embedding
    model = build(); train(model, data)              # STEPS of InfoNCE, audio against images only
    evaluate(model, clip)                            # audio -> image and audio -> text (zero-shot) accuracy
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.data import Scenes, render, sample_scenes
from mmcourse.data.audio import log_mel_spectrogram, object_sounds
from mmcourse.data.world import COLOUR_NAMES, SHAPES
from mmcourse.models.audioclip import AudioCLIP
from mmcourse.models.clip import CLIP, encode_images
from mmcourse.recipes.clip_tiny import class_weights
from mmcourse.train import History, fit
from mmcourse.utils import get_device, make_generator, seed_everything

__all__ = ["TRAIN_SOUNDS", "STEPS", "BATCH_SIZE", "SoundingObjects", "sounding_objects", "build", "train",
           "audio_embeddings", "evaluate"]

TRAIN_SOUNDS = 6000
STEPS = 300
BATCH_SIZE = 128


@dataclass
class SoundingObjects:
    """scenes (N, one object each), images (N, 3, 32, 32), mel (N, 40, F) log-mel of each object's sound, and
    image_embeds (N, D): clip-tiny's normalised embeddings of the images (None until embedded)."""
    scenes: Scenes
    images: Tensor
    mel: Tensor
    image_embeds: Tensor | None = None

    @property
    def label(self) -> Tensor:
        return self.scenes.label[:, 0]


def sounding_objects(n: int, seed: int = 0, split: str = "train", clip: CLIP | None = None) -> SoundingObjects:
    """n single objects (split "train": the 20 seen colour-shape pairs; "test": the 4 held-out; "all") with their
    images and sounds; with `clip`, their image embeddings too."""
    scenes = sample_scenes(n, seed, max_objects=1, split=split)
    sounds = object_sounds(scenes.colour[:, 0], scenes.shape[:, 0], seed)
    data = SoundingObjects(scenes, render(scenes, 32, seed), log_mel_spectrogram(sounds))
    if clip is not None:
        data.image_embeds = encode_images(clip, data.images)
    return data


def build(seed: int = 0) -> AudioCLIP:
    seed_everything(seed)
    return AudioCLIP(embed_dim=64)


def train(model: AudioCLIP, data: SoundingObjects, steps: int = STEPS, seed: int = 0, device=None,
          **fit_kw) -> History:
    """InfoNCE of the audio embeddings against the frozen image embeddings, batches of BATCH_SIZE."""
    if data.image_embeds is None:
        raise ValueError("train: data has no image embeddings; build it with sounding_objects(..., clip=clip)")
    device = device or get_device()
    g = make_generator(seed, "audioclip-batches")

    def step(m, _):
        i = torch.randint(len(data.mel), (BATCH_SIZE,), generator=g)
        return m.loss(data.mel[i].to(device), data.image_embeds[i].to(device))

    seed_everything(seed)
    return fit(model, step, lambda s: s, steps, **{"lr": 2e-3, "warmup": 20, "device": device,
                                                   "desc": "audio -> CLIP image space", **fit_kw})


@torch.no_grad()
def audio_embeddings(model: AudioCLIP, mel: Tensor) -> Tensor:
    model.eval()
    return model(mel.to(next(model.parameters()).device)).cpu()


def evaluate(model: AudioCLIP, clip: CLIP, data: SoundingObjects) -> dict[str, float]:
    """On embedded `data`: "audio->image", the share of sounds whose nearest image among the 24 class means is
    their own class; "audio->text", the share whose nearest of the 24 class prompts (clip-tiny's zero-shot
    ensemble) is their class -- a pairing never trained; "chance" = 1/24."""
    audio = audio_embeddings(model, data.mel)
    labels = data.label
    classes = len(COLOUR_NAMES) * len(SHAPES)
    text = class_weights(clip).cpu()  # (D, 24)
    image_means = torch.zeros(classes, audio.shape[1]).index_add_(0, labels, data.image_embeds.cpu())
    image_means = torch.nn.functional.normalize(image_means, dim=-1)  # classes absent from data stay 0
    return {"audio->image": ((audio @ image_means.T).argmax(1) == labels).float().mean().item(),
            "audio->text": ((audio @ text).argmax(1) == labels).float().mean().item(),
            "chance": 1 / classes}
