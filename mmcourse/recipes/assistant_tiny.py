"""Chapter 05's assistant as a zoo entry ("llava-tiny"), for the chapters that build on it: `llava_tiny`'s model
on chapter 02's CLIP tower and the course's language model, trained in its two stages exactly as lecture 05 trains
it (seed 0, `llava_tiny.STAGES`).

    model = zoo.load("llava-tiny")                # a LLaVA: answers questions about the world's images
"""

from __future__ import annotations

from mmcourse.models.clip import CLIP
from mmcourse.models.llava import LLaVA
from mmcourse.nn import TextDecoder
from mmcourse.recipes import clip_tiny, llava_tiny, tiny_lm
from mmcourse.train import History

__all__ = ["VERSION", "NEEDS", "build", "train"]

VERSION = 1
NEEDS = ("clip-tiny", "tiny-lm")


def build() -> LLaVA:
    """The untrained assistant: the towers' architectures (their weights come with `train`) and a fresh projector."""
    return llava_tiny.build(clip_tiny.build().visual, tiny_lm.build())


def train(model: LLaVA, clip: CLIP, lm: TextDecoder) -> History:
    """Put the trained tower and language model in place, then stage 1 and stage 2; returns stage 2's History."""
    model.vision_tower.load_state_dict(clip.visual.state_dict())
    model.language_model.load_state_dict(lm.state_dict())
    llava_tiny.train(model, stage=1)
    return llava_tiny.train(model, stage=2)
