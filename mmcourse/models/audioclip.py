"""A third modality bound to CLIP through images alone, as AudioCLIP (Guzhov et al. 2022) and ImageBind (Girdhar et
al. 2023) do: an audio encoder is trained contrastively against the embeddings of a *frozen* CLIP image tower, never
against text. Because CLIP already put images and texts in one space, the audio lands next to the texts too:
audio -> text retrieval emerges without a single (audio, text) pair.

    log-mel (B, n_mels, F) --AudioEncoder--> (B, D) --normalise--> audio embedding, in CLIP's space
    loss = clip_loss(audio embeddings, frozen image embeddings, s)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmcourse.losses.contrastive import clip_loss
from mmcourse.utils import check_sizes, check_tensor

__all__ = ["AudioEncoder", "AudioCLIP"]


class AudioEncoder(nn.Module):
    """log-mel (B, n_mels, F) -> (B, embed_dim): each band's mean over time removed, three 1-D convolutions (the
    last two of stride 2), then mean- and max-pooling over time, concatenated, and a linear projection."""

    def __init__(self, n_mels: int = 40, width: int = 64, embed_dim: int = 64):
        super().__init__()
        check_sizes(n_mels=n_mels, width=width, embed_dim=embed_dim)
        self.n_mels = n_mels
        self.conv = nn.Sequential(nn.Conv1d(n_mels, width, 3, padding=1), nn.GELU(),
                                  nn.Conv1d(width, width, 3, stride=2, padding=1), nn.GELU(),
                                  nn.Conv1d(width, width, 3, stride=2, padding=1), nn.GELU())
        self.proj = nn.Linear(2 * width, embed_dim)

    def forward(self, mel: Tensor) -> Tensor:
        check_tensor(mel, "mel", shape=("B", self.n_mels, "F"), dtype="float")
        h = self.conv(mel - mel.mean(-1, keepdim=True))  # (B, width, F / 4)
        return self.proj(torch.cat([h.mean(-1), h.amax(-1)], -1))


class AudioCLIP(nn.Module):
    """The audio tower and its own learned temperature s = exp(logit_scale) (CLIP's initialisation, 1 / 0.07).

    forward(mel) -> normalised audio embeddings (B, embed_dim); loss(mel, image_embeds) is CLIP's symmetric InfoNCE
    against the (frozen, precomputed) image embeddings of the same scenes."""

    def __init__(self, n_mels: int = 40, width: int = 64, embed_dim: int = 64):
        super().__init__()
        self.audio = AudioEncoder(n_mels, width, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, mel: Tensor) -> Tensor:
        return nn.functional.normalize(self.audio(mel), dim=-1)

    def loss(self, mel: Tensor, image_embeds: Tensor) -> Tensor:
        check_tensor(image_embeds, "image_embeds", shape=(len(mel), self.audio.proj.out_features), dtype="float")
        return clip_loss(self(mel), image_embeds, self.logit_scale.exp().clamp(max=100))
