"""A two-modality classifier with any fusion of `mmcourse.nn.fusion`, and the small sound encoder it listens with.

    image (B, La, Da), sound (B, Lb, Db): token features of frozen unimodal encoders
        (raw inputs for "early": image (B, 3, H, W), sound (B, n_mels, frames))
    -> fusion -> (B, width) -> head -> logits (B, num_classes)
    "late": each modality's mean-pooled tokens -> its own MLP head -> logits, combined by `LateFusion`

A missing modality is passed as None and read as zeros -- exactly what modality dropout shows the model in
training (`modality_dropout` > 0). A model trained without it has never seen those zeros: chapter 09 measures
how badly it then fails. Late fusion instead leaves the missing modality's logits out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmcourse.nn.fusion import (
    ConcatFusion,
    CrossAttentionFusion,
    EarlyFusion,
    LateFusion,
    MultimodalTransformerFusion,
    TensorFusion,
    modality_dropout,
)
from mmcourse.utils import check_number, check_sizes, check_tensor, describe

__all__ = ["METHODS", "SoundEncoder", "ImageEncoder", "FusionClassifier", "TwoStreamClassifier"]

METHODS = ("early", "late", "concat", "tensor", "cross", "transformer")


class SoundEncoder(nn.Module):
    """log-mel (B, n_mels, frames) -> tokens (B, ceil(frames / 4), width): two stride-2 Conv1d over time, GELU,
    plus a learned position embedding; `classify` mean-pools the tokens into `num_classes` logits."""

    def __init__(self, n_mels: int, frames: int, width: int = 64, num_classes: int = 24):
        super().__init__()
        check_sizes(n_mels=n_mels, frames=frames, width=width, num_classes=num_classes)
        self.n_mels, self.frames, self.width = n_mels, frames, width
        self.conv = nn.Sequential(nn.Conv1d(n_mels, width, 3, 2, 1), nn.GELU(), nn.Conv1d(width, width, 3, 2, 1))
        self.positional_embedding = nn.Parameter(torch.randn(math.ceil(math.ceil(frames / 2) / 2), width) * 0.02)
        self.head = nn.Linear(width, num_classes)

    def forward(self, mel: Tensor) -> Tensor:
        check_tensor(mel, "mel", shape=("B", self.n_mels, self.frames), dtype="float")
        return self.conv(mel).transpose(1, 2) + self.positional_embedding

    def classify(self, mel: Tensor) -> Tensor:
        return self.head(self(mel).mean(1))


class ImageEncoder(nn.Module):
    """images (B, 3, H, W) -> features (B, width): three 3x3 conv blocks (BatchNorm, ReLU), 2x2 max-pools between,
    then a global max-pool; `classify` adds a linear head of `num_classes` logits."""

    def __init__(self, width: int = 64, num_classes: int = 24, channels: tuple[int, int] = (16, 32)):
        super().__init__()
        if not isinstance(channels, (tuple, list)) or len(channels) != 2:
            raise TypeError(f"channels: expected two sizes (c1, c2), got {describe(channels)}")
        check_sizes(width=width, num_classes=num_classes)
        for c in channels:
            check_number(c, "channels", integer=True, low=1)
        c1, c2 = channels
        block = lambda cin, cout: [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]  # noqa: E731
        self.net = nn.Sequential(*block(3, c1), nn.MaxPool2d(2), *block(c1, c2), nn.MaxPool2d(2), *block(c2, width),
                                 nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        check_tensor(images, "images", shape=("B", 3, "H", "W"), dtype="float")
        return self.net(images)

    def classify(self, images: Tensor) -> Tensor:
        return self.head(self(images))


class TwoStreamClassifier(nn.Module):
    """Raw image (B, 3, H, W) and log-mel (B, n_mels, frames), each through its own encoder and linear head, trained
    from scratch; the fused logits are the sum of the two streams' logits. That is concatenation followed by one
    linear layer, written per stream so that each stream's share can be read (`stream_logits`, what OGM-GE
    compares) and each encoder probed on its own (`features`)."""

    STREAMS = ("image", "sound")

    def __init__(self, n_mels: int, frames: int, num_classes: int = 24, width: int = 64):
        super().__init__()
        check_number(num_classes, "num_classes", integer=True, low=2)
        check_sizes(n_mels=n_mels, frames=frames, width=width)
        self.image = ImageEncoder(width, num_classes)
        self.sound = SoundEncoder(n_mels, frames, width, num_classes)

    def stream_logits(self, image: Tensor, sound: Tensor) -> dict[str, Tensor]:
        """{"image": (B, C), "sound": (B, C)}: each stream's share of the fused logits."""
        check_tensor(image, "image", ndim=4, dtype="float")
        check_tensor(sound, "sound", ndim=3, dtype="float")
        if len(image) != len(sound):
            raise ValueError(f"image and sound must be the same B examples, got {len(image)} and {len(sound)}")
        return {"image": self.image.classify(image), "sound": self.sound.classify(sound)}

    def forward(self, image: Tensor, sound: Tensor) -> Tensor:
        logits = self.stream_logits(image, sound)
        return logits["image"] + logits["sound"]

    def features(self, stream: str, x: Tensor) -> Tensor:
        """One encoder's features (B, width) of its input: what a linear probe reads."""
        if stream not in self.STREAMS:
            raise ValueError(f"stream: expected one of {self.STREAMS}, got {stream!r}")
        check_tensor(x, "x", ndim=4 if stream == "image" else 3, dtype="float")
        return self.image(x) if stream == "image" else self.sound(x).mean(1)


class FusionClassifier(nn.Module):
    """`method` (one of METHODS) over two inputs of per-example shapes image_shape and sound_shape.

    modality_dropout: the fraction of training examples with one stream zeroed (see `nn.fusion.modality_dropout`).
    """

    def __init__(self, method: str, image_shape: tuple[int, ...], sound_shape: tuple[int, ...], num_classes: int,
                 width: int = 64, heads: int = 4, modality_dropout: float = 0.0):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        check_number(num_classes, "num_classes", integer=True, low=2)
        check_sizes(width=width, heads=heads)
        check_number(modality_dropout, "modality_dropout", low=0, high=1)
        for name, shape in (("image_shape", image_shape), ("sound_shape", sound_shape)):
            if not isinstance(shape, (tuple, list)) or not shape:
                raise TypeError(f"{name}: expected a per-example shape such as (tokens, width), got {describe(shape)}")
            for size in shape:
                check_number(size, name, integer=True, low=1)
        self.method, self.p_drop = method, modality_dropout
        self.shapes = tuple(image_shape), tuple(sound_shape)
        da, db = image_shape[-1], sound_shape[-1]
        if method == "early":
            self.fusion = EarlyFusion(math.prod(image_shape), math.prod(sound_shape), width)
        elif method == "late":
            self.head_image, self.head_sound = (nn.Sequential(nn.LayerNorm(d), nn.Linear(d, width), nn.GELU(),
                                                              nn.Linear(width, num_classes)) for d in (da, db))
            self.fusion = LateFusion(2)
        elif method == "concat":
            self.fusion = ConcatFusion(da, db, width)
        elif method == "tensor":
            self.fusion = TensorFusion(da, db, width)
        elif method == "cross":  # the sound asks, the image answers
            self.fusion = CrossAttentionFusion(db, da, width, heads)
        else:
            self.fusion = MultimodalTransformerFusion(da, db, width, heads)
        if method != "late":
            self.head = nn.Linear(width, num_classes)

    def forward(self, image: Tensor | None, sound: Tensor | None, return_attn: bool = False):
        """logits (B, num_classes); with return_attn ("cross" only) also the sound→image attention (B, La),
        averaged over heads and sound tokens."""
        image, sound = self._inputs(image, sound)
        if self.training and self.p_drop > 0 and image is not None and sound is not None:
            image, sound = modality_dropout(image, sound, self.p_drop)
        if self.method == "late":
            return self.fusion([None if image is None else self.head_image(image.mean(1)),
                                None if sound is None else self.head_sound(sound.mean(1))])
        if return_attn:
            if self.method != "cross":
                raise ValueError(f"return_attn: only the 'cross' method has a sound→image attention, not "
                                 f"{self.method!r}")
            fused, weights = self.fusion(sound, image, return_weights=True)
            return self.head(fused), weights.mean((1, 2))
        fused = self.fusion(sound, image) if self.method == "cross" else self.fusion(image, sound)
        return self.head(fused)

    def _inputs(self, image, sound) -> tuple[Tensor | None, Tensor | None]:
        """Check both inputs; a None becomes zeros of the trained shape (late fusion keeps the None)."""
        if image is None and sound is None:
            raise ValueError("FusionClassifier: both modalities are None; give at least one")
        B = "B"
        for x, name, shape in ((image, "image", self.shapes[0]), (sound, "sound", self.shapes[1])):
            if x is not None:
                check_tensor(x, name, shape=(B, *shape), dtype="float")
                B = x.shape[0]
        given = image if image is not None else sound
        if self.method == "late":
            return image, sound
        zeros = lambda shape: given.new_zeros(given.shape[0], *shape)  # noqa: E731
        return (zeros(self.shapes[0]) if image is None else image), (zeros(self.shapes[1]) if sound is None else sound)
