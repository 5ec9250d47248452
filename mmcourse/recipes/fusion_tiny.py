"""Chapter 09's two tasks, frozen encoders and fusion trainings: which fusion can answer a question that needs both
modalities at once, and which survives losing one.

    visual = zoo.load("clip-tiny").visual                    # the image encoder: CLIP's tower, frozen
    sound_encoder, _ = train_sound_encoder()                 # names the object it hears (24 classes), then frozen
    train_set = features(task_data("interaction", N_TRAIN, seed=0), visual, sound_encoder)
    model, history = train("cross", train_set)              # a FusionClassifier on the frozen token features
    accuracy(model, test_set)                                # and accuracy(model, test_set, missing="sound")

The tasks, each an image and the sound of one object in it (colour -> pitch, shape -> timbre):
- "interaction": two objects of different sizes; is the object you hear small or large? The image alone cannot
  say which object sounds, the sound carries no size: the answer needs both at once (chance 50 %).
- "control": one object; which of the 24 colour-shape classes is it? Either modality alone suffices.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.data import (
    CLASS_NAMES,
    SIZES,
    Scenes,
    log_mel_spectrogram,
    object_sounds,
    render,
    sample_scenes,
)
from mmcourse.data.world import check_scenes
from mmcourse.models.fusion import FusionClassifier, SoundEncoder
from mmcourse.nn import VisionTransformer
from mmcourse.recipes.llava_tiny import patch_features
from mmcourse.train import History, fit
from mmcourse.utils import check_number, check_tensor, get_device, make_generator, seed_everything

__all__ = ["TASKS", "N_TRAIN", "N_TEST", "STEPS", "BATCH_SIZE", "HYPER", "SOUND_STEPS", "TaskData", "task_data",
           "from_scenes", "Features", "features", "train_sound_encoder", "train", "accuracy", "attention_on_objects"]

TASKS = {"interaction": "is the object you hear small or large?", "control": "which object is it?"}
N_TRAIN, N_TEST = 4000, 2000
STEPS, BATCH_SIZE = 400, 128
HYPER = dict(lr=2e-3, weight_decay=0.01, warmup=40, grad_clip=1.0)
SOUND_STEPS = 300


@dataclass
class TaskData:
    """N examples of a task: scenes, images (N, 3, 32, 32), the sounding object's slot (N,), its log-mel
    (N, 40, 41) standardised per example, and the labels (N,) (SIZES index or class colour * 3 + shape)."""

    task: str
    scenes: Scenes
    images: Tensor
    sounding: Tensor
    mels: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def class_names(self) -> tuple[str, ...]:
        return SIZES if self.task == "interaction" else CLASS_NAMES


def standardise(mel: Tensor) -> Tensor:
    """Per-example mean 0, std 1 over the whole spectrogram (N, n_mels, frames)."""
    return (mel - mel.mean((1, 2), keepdim=True)) / mel.std((1, 2), keepdim=True).clamp(min=1e-6)


def task_data(task: str, n: int, seed: int = 0) -> TaskData:
    """n examples of `task` ("interaction" or "control"), deterministic in seed."""
    check_task(task)
    check_number(n, "n", integer=True, low=1)
    if task == "control":
        return from_scenes(task, sample_scenes(n, seed, min_objects=1, max_objects=1), torch.zeros(n, dtype=torch.long),
                           seed)
    scenes = sample_scenes(3 * n, seed, min_objects=2, max_objects=2)  # about 1.5n have two sizes
    scenes = scenes[torch.nonzero(scenes.size[:, 0] != scenes.size[:, 1])[:n, 0]]
    if len(scenes) < n:
        raise RuntimeError(f"task_data: only {len(scenes)} of {3 * n} scenes had two sizes, need {n}")
    return from_scenes(task, scenes, torch.randint(2, (n,), generator=make_generator(seed, "sounding")), seed)


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task: expected one of {tuple(TASKS)}, got {task!r}")


def from_scenes(task: str, scenes: Scenes, sounding: Tensor, seed: int = 0) -> TaskData:
    """The examples of `task` for given scenes, object `sounding[i]` of scene i making the sound."""
    check_task(task)
    check_scenes(scenes)
    check_tensor(sounding, "sounding", shape=(len(scenes),), dtype="int")
    rows = torch.arange(len(scenes))
    K = scenes.shape.shape[1]
    if ((sounding < 0) | (sounding >= K)).any() or not scenes.present[rows, sounding.clamp(0, K - 1)].all():
        raise ValueError(f"sounding: every index must point at an object of its scene (slots 0..{K - 1} that hold "
                         f"one), got {sounding.tolist()[:10]}")
    colour, shape = scenes.colour[rows, sounding], scenes.shape[rows, sounding]
    mels = standardise(log_mel_spectrogram(object_sounds(colour, shape, seed)))
    labels = scenes.size[rows, sounding] if task == "interaction" else colour * 3 + shape
    return TaskData(task, scenes, render(scenes, 32, seed), sounding, mels, labels)


@dataclass
class Features:
    """A task's examples as the frozen encoders see them: image (N, 64, 64) CLIP patch tokens (penultimate
    block), sound (N, 11, 64) sound-encoder tokens, raw images and mels (for early fusion), labels (N,)."""

    image: Tensor
    sound: Tensor
    images: Tensor
    mels: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self, method: str) -> tuple[Tensor, Tensor]:
        """What `method` reads: raw image and log-mel for "early", token features for the rest."""
        return (self.images, self.mels) if method == "early" else (self.image, self.sound)


@torch.no_grad()
def features(data: TaskData, visual: VisionTransformer, sound_encoder: SoundEncoder) -> Features:
    sound_encoder.eval()
    device = next(sound_encoder.parameters()).device
    sound = torch.cat([sound_encoder(m.to(device)).cpu() for m in data.mels.split(1000)])
    return Features(patch_features(visual, data.images), sound, data.images, data.mels, data.labels)


def _batches(n: int, seed: int):
    """step -> a batch of BATCH_SIZE indices: epochs of shuffled examples, deterministic in seed and step."""
    per_epoch = n // BATCH_SIZE
    if per_epoch < 1:
        raise ValueError(f"need at least BATCH_SIZE={BATCH_SIZE} training examples, got {n}")

    def batch(step: int) -> Tensor:
        epoch, i = divmod(step, per_epoch)
        order = torch.randperm(n, generator=make_generator(seed, f"fusion/{epoch}"))
        return order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]

    return batch


def train_sound_encoder(seed: int = 0, steps: int = SOUND_STEPS, progress: bool = True) -> tuple[SoundEncoder, History]:
    """A SoundEncoder trained to name single objects' sounds (24 classes) on N_TRAIN new scenes, then frozen;
    its History has the accuracy on N_TEST others."""
    train_set, test_set = task_data("control", N_TRAIN, 1000 + seed), task_data("control", N_TEST, 2000 + seed)
    seed_everything(seed)
    encoder = SoundEncoder(*train_set.mels.shape[1:], num_classes=len(CLASS_NAMES))
    index = _batches(len(train_set), seed)

    def loss_fn(model, idx):
        return torch.nn.functional.cross_entropy(model.classify(train_set.mels[idx]), train_set.labels[idx])

    def eval_fn(model):
        return {"accuracy": (model.classify(test_set.mels).argmax(1) == test_set.labels).float().mean()}

    history = fit(encoder, loss_fn, index, steps, **HYPER, eval_fn=eval_fn, device="cpu", progress=progress,
                  desc="sound encoder")
    return encoder.requires_grad_(False).eval(), history


def train(method: str, data: Features, seed: int = 0, steps: int = STEPS, modality_dropout: float = 0.0,
          modalities: tuple[str, ...] = ("image", "sound"), device=None,
          progress: bool = True) -> tuple[FusionClassifier, History]:
    """A FusionClassifier(method) trained for `steps` steps of BATCH_SIZE on `data`.

    modalities: the streams it is given; a single-modality model is ("image",) or ("sound",) with "late"
    (its one head). modality_dropout: see `FusionClassifier`. device: default `get_device()`."""
    if not modalities or set(modalities) - {"image", "sound"}:
        raise ValueError(f"modalities: expected a non-empty subset of ('image', 'sound'), got {modalities!r}")
    device = torch.device(device) if device is not None else get_device()
    image, sound, labels = (t.to(device) for t in (*data.inputs(method), data.labels))
    seed_everything(seed)
    model = FusionClassifier(method, image.shape[1:], sound.shape[1:], int(data.labels.max()) + 1,
                             modality_dropout=modality_dropout)
    use_image, use_sound = "image" in modalities, "sound" in modalities

    def loss_fn(model, idx):
        logits = model(image[idx] if use_image else None, sound[idx] if use_sound else None)
        return torch.nn.functional.cross_entropy(logits, labels[idx])

    name = method if len(modalities) == 2 else f"{modalities[0]} only"
    history = fit(model, loss_fn, _batches(len(data), seed), steps, **HYPER, device=device, progress=progress,
                  desc=name + (f", modality dropout {modality_dropout:g}" if modality_dropout else ""))
    return model, history


@torch.no_grad()
def accuracy(model: FusionClassifier, data: Features, missing: str | None = None) -> float:
    """Accuracy on `data`, optionally with one modality ("image" or "sound") missing (passed as None)."""
    if missing not in (None, "image", "sound"):
        raise ValueError(f"missing: expected None, 'image' or 'sound', got {missing!r}")
    model.eval()
    device = next(model.parameters()).device
    right = 0
    for i in range(0, len(data), 1000):
        image, sound = (t[i:i + 1000].to(device) for t in data.inputs(model.method))
        logits = model(None if missing == "image" else image, None if missing == "sound" else sound)
        right += int((logits.argmax(1).cpu() == data.labels[i:i + 1000]).sum())
    return right / len(data)


def attention_on_objects(attn: Tensor, data: TaskData, grid: int = 8) -> tuple[Tensor, Tensor]:
    """attn (N, grid²): attention over a grid x grid patch grid -> (N,) mass on the patches touching the sounding
    object's box and (N,) on those touching the other object's (0 when there is none)."""
    check_tensor(attn, "attn", shape=(len(data), grid * grid), dtype="float")
    boxes = data.scenes.boxes(grid)  # (N, K, 4) in patch units
    centres = torch.arange(grid) + 0.5
    inside = lambda lo, hi: (centres + 0.5 > lo[..., None]) & (centres - 0.5 < hi[..., None])  # noqa: E731
    cols, rows = inside(boxes[..., 0], boxes[..., 2]), inside(boxes[..., 1], boxes[..., 3])  # (N, K, grid)
    masks = (rows[..., :, None] & cols[..., None, :]).flatten(2).float()  # (N, K, grid²)
    masks = masks * data.scenes.present[..., None]
    n = torch.arange(len(data))
    mass = (masks * attn.cpu()[:, None]).sum(-1)  # (N, K)
    return mass[n, data.sounding], mass.sum(1) - mass[n, data.sounding]
