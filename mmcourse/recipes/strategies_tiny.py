"""Chapter 10's experiments: a two-modality classifier that the sound dominates, what that costs the image encoder
and three fixes; balanced sampling on a long-tailed split; a curriculum.

    train_set, test_set = task_data(N_TRAIN, 0), task_data(N_TEST, 1)
    model, history = train("joint", train_set, test_set)       # both streams, one fused loss: the image starves
    model, history = train("ogm-ge", train_set, test_set)      # the sound's gradients modulated (OGM-GE)
    probe(model, "image", train_set, test_set)                  # what the image encoder learned, read linearly

The task: one object, which of the 24 colour-shape classes is it? The sound (colour -> pitch, shape -> timbre) gives
it away within a few dozen steps, even at 0 dB of white noise; the image (16 x 16 pixels with noise) takes a small CNN
hundreds. Every training uses
SGD with momentum (as OGM-GE does; see `mmcourse.strategies`) unless `optimizer="adamw"`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.data import (
    CLASS_NAMES,
    add_noise,
    curriculum_batches,
    log_mel_spectrogram,
    object_sounds,
    pacing,
    render,
    sample_scenes,
    white_noise,
)
from mmcourse.models.fusion import ImageEncoder, TwoStreamClassifier
from mmcourse.strategies import OGMGE
from mmcourse.train import History, fit
from mmcourse.utils import check_number, check_tensor, make_generator, seed_everything

__all__ = ["N_TRAIN", "N_TEST", "RESOLUTION", "NOISE", "SNR", "STEPS", "BATCH_SIZE", "LR", "ALPHA", "MODES", "TaskData",
           "task_data", "build", "train", "probe", "fused_accuracy", "gradual", "long_tailed", "COUNT_STEPS",
           "counting_data", "train_counter"]

N_TRAIN, N_TEST = 4000, 2000
RESOLUTION, NOISE = 16, 0.1
STEPS, BATCH_SIZE = 400, 128
SNR = 0.0  # dB of white noise on the sound: still the easy modality, but not solved by its first few steps
LR, ALPHA = 0.05, 3.0
MODES = ("joint", "image", "sound", "ogm-ge", "alternating")


@dataclass
class TaskData:
    """N single-object examples: images (N, 3, 16, 16), standardised log-mels (N, 40, 41), classes (N,)."""

    images: Tensor
    mels: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)


def task_data(n: int, seed: int = 0) -> TaskData:
    """n examples of the 24-class task, deterministic in seed."""
    check_number(n, "n", integer=True, low=1)
    scenes = sample_scenes(n, seed, min_objects=1, max_objects=1)
    colour, shape = scenes.colour[:, 0], scenes.shape[:, 0]
    wave = object_sounds(colour, shape, seed)
    mel = log_mel_spectrogram(add_noise(wave, white_noise(wave.shape, seed), SNR))
    mel = (mel - mel.mean((1, 2), keepdim=True)) / mel.std((1, 2), keepdim=True).clamp(min=1e-6)
    return TaskData(render(scenes, RESOLUTION, seed, noise=NOISE), mel, colour * 3 + shape)


def build(data: TaskData, seed: int = 0) -> TwoStreamClassifier:
    seed_everything(seed)
    return TwoStreamClassifier(*data.mels.shape[1:], num_classes=len(CLASS_NAMES))


def _batches(n: int, seed: int):
    """step -> BATCH_SIZE random indices (with replacement), deterministic in seed and step."""
    return lambda step: torch.randint(n, (BATCH_SIZE,), generator=make_generator(seed, f"strategies/{step}"))


def train(mode: str, data: TaskData, test: TaskData | None = None, steps: int = STEPS, seed: int = 0,
          alpha: float = ALPHA, lr: float = LR, optimizer: str = "sgd", model: TwoStreamClassifier | None = None,
          ogm: OGMGE | None = None, eval_every: int = 100,
          progress: bool = False) -> tuple[TwoStreamClassifier, History]:
    """Train a TwoStreamClassifier (a new one, or `model` further) in `mode`:
    "joint" the fused loss; "image" / "sound" one stream's own loss (the other stream untouched); "ogm-ge" the fused
    loss with OGM-GE (`ogm`, default OGMGE(alpha, noise=False): pass your own to read its coefficients afterwards);
    "alternating" each stream's own loss on alternate steps.
    With `test`, the History's evals hold both probes and the fused accuracy every `eval_every` steps."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer: expected 'sgd' or 'adamw', got {optimizer!r}")
    model = build(data, seed) if model is None else model
    seed_everything(seed)
    if mode == "ogm-ge":
        ogm = ogm or OGMGE(alpha, noise=False, seed=seed)
    elif ogm is not None:
        raise ValueError(f"ogm: given for mode {mode!r}; it modulates only mode 'ogm-ge'")
    indices = _batches(len(data), seed)

    def loss_fn(model, batch):
        step, idx = batch
        y = data.labels[idx]
        stream = mode if mode in ("image", "sound") else ("image", "sound")[step % 2] if mode == "alternating" else None
        if stream == "image":  # one stream alone: the other is not even run (its BatchNorm statistics stay)
            return F.cross_entropy(model.image.classify(data.images[idx]), y)
        if stream == "sound":
            return F.cross_entropy(model.sound.classify(data.mels[idx]), y)
        logits = model.stream_logits(data.images[idx], data.mels[idx])
        if ogm is not None:
            ogm.observe(logits, y)
        return F.cross_entropy(logits["image"] + logits["sound"], y)

    opt = (torch.optim.SGD(model.parameters(), lr, momentum=0.9, weight_decay=1e-4) if optimizer == "sgd"
           else torch.optim.AdamW(model.parameters(), lr, weight_decay=0.01))
    eval_fn = None if test is None else lambda m: {"image probe": probe(m, "image", data, test),
                                                   "sound probe": probe(m, "sound", data, test),
                                                   "fused": fused_accuracy(m, test)}
    return model, fit(model, loss_fn, lambda step: (step, indices(step)), steps, optimizer=opt, before_step=ogm,
                      eval_fn=eval_fn, eval_every=eval_every, progress=progress, device="cpu", desc=mode)


@torch.no_grad()
def probe(model: TwoStreamClassifier, stream: str, data: TaskData, test: TaskData, steps: int = 300) -> float:
    """Test accuracy of a linear classifier trained (full batch, Adam) on one frozen encoder's standardised features:
    how much of the task that encoder has learned."""
    was_training = model.training
    model.eval()
    inputs = (lambda d: d.images) if stream == "image" else (lambda d: d.mels)
    train_x, test_x = (model.features(stream, inputs(d)) for d in (data, test))
    model.train(was_training)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    g = make_generator(0, "probe")
    linear = torch.nn.Linear(train_x.shape[1], len(CLASS_NAMES))
    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=g) * 0.01)
        linear.bias.zero_()
    opt = torch.optim.Adam(linear.parameters(), 1e-2)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(linear(train_x), data.labels).backward()
            opt.step()
    return (linear(test_x).argmax(1) == test.labels).float().mean().item()


@torch.no_grad()
def fused_accuracy(model: TwoStreamClassifier, test: TaskData) -> float:
    was_training = model.training
    model.eval()
    accuracy = (model(test.images, test.mels).argmax(1) == test.labels).float().mean().item()
    model.train(was_training)
    return accuracy


def gradual(data: TaskData, test: TaskData | None = None, image_model: TwoStreamClassifier | None = None,
            seed: int = 0, steps: tuple[int, int, int] = (STEPS, 100, 100)) -> tuple[TwoStreamClassifier, History]:
    """Gradual integration: the image stream alone, then the sound stream alone (the two heads' sum is already a
    fused classifier), then both together with a fifth of the learning rate. `image_model` (a "image" run) saves
    the first stage. Returns the model and the last stage's History."""
    model = copy.deepcopy(image_model) if image_model is not None else train("image", data, steps=steps[0],
                                                                             seed=seed)[0]
    train("sound", data, steps=steps[1], seed=seed, model=model)
    return train("joint", data, test, steps=steps[2], seed=seed, model=model, lr=LR / 5, eval_every=steps[2])


def long_tailed(labels: Tensor, imbalance: float = 50.0, seed: int = 0) -> Tensor:
    """Indices of a long-tailed subset: class c (of C, ordered by id) keeps a share imbalance^(-c / (C - 1)) of its
    items, so the rarest class has `imbalance` times fewer than the most common."""
    check_tensor(labels, "labels", shape=("N",), dtype="int")
    check_number(imbalance, "imbalance", low=1)
    if len(labels) == 0:
        raise ValueError("labels: empty, there is nothing to subsample")
    classes = int(labels.max()) + 1
    g = make_generator(seed, "long-tail")
    keep = []
    for c in range(classes):
        items = torch.nonzero(labels == c)[:, 0]
        n = max(1, round(len(items) * imbalance ** (-c / max(classes - 1, 1))))
        keep.append(items[torch.randperm(len(items), generator=g)[:n]])
    return torch.cat(keep).sort().values


COUNT_STEPS = 400


def counting_data(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """n images (16 x 16) of 1-4 small shapes and the count - 1 (N,): the more objects, the harder."""
    scenes = sample_scenes(n, seed, min_objects=1, max_objects=4, sizes=["small"])
    return render(scenes, RESOLUTION, seed, noise=0.05), scenes.present.sum(1) - 1


def train_counter(images: Tensor, counts: Tensor, test: tuple[Tensor, Tensor], curriculum: bool, seed: int = 0,
                  steps: int = COUNT_STEPS, eval_every: int = 25, **pacing_kw) -> tuple[ImageEncoder, History]:
    """An ImageEncoder counting objects, batches drawn at random or by a curriculum (fewest objects first,
    `curriculum_batches` with `pacing`); its History has the test accuracy every `eval_every` steps."""
    seed_everything(seed)
    model = ImageEncoder(num_classes=4)
    if curriculum:
        batches = curriculum_batches(counts, BATCH_SIZE, steps, seed, lambda s, n: pacing(s, n, **pacing_kw))
    else:
        batches = _batches(len(counts), seed)
    test_images, test_counts = test

    def eval_fn(m):
        return {"accuracy": (m.classify(test_images).argmax(1) == test_counts).float().mean()}

    history = fit(model, lambda m, idx: F.cross_entropy(m.classify(images[idx]), counts[idx]), batches, steps,
                  lr=2e-3, weight_decay=0.01, eval_fn=eval_fn, eval_every=eval_every, progress=False, device="cpu",
                  desc="curriculum" if curriculum else "random order")
    return model, history
