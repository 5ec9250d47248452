"""The independent judge of chapter 06's samples: a small CNN that reads the colour and the shape of a 16 x 16
close-up (`unclip_tiny.close_ups`), trained on the world's images with their true labels, never on CLIP. The zoo
entry "judge-tiny" is this recipe.

    judge = build(); train(judge)                 # STEPS steps of cross-entropy on colour and on shape
    evaluate(judge)                               # {"colour", "shape", "both"} on new close-ups, all 24 pairs
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.data.world import COLOUR_NAMES, SHAPES
from mmcourse.models.unclip import Judge
from mmcourse.recipes.unclip_tiny import IMAGE_SIZE, CloseUps, close_ups, judge_accuracy
from mmcourse.train import History, fit
from mmcourse.utils import get_device, make_generator, seed_everything

__all__ = ["VERSION", "STEPS", "build", "train", "evaluate"]

VERSION = 1
STEPS = 400
TRAIN_IMAGES = 20_000


def build(seed: int = 0) -> Judge:
    seed_everything(seed)
    return Judge(len(COLOUR_NAMES), len(SHAPES), IMAGE_SIZE)


def train(model: Judge, data: CloseUps | None = None, steps: int = STEPS, seed: int = 0,
          device: torch.device | str | None = None, **fit_kw) -> History:
    """Train on close-ups of every colour-shape pair (held-out ones too: the judge must read any sample)."""
    data = close_ups(TRAIN_IMAGES, seed=7, split="all") if data is None else data
    device = device or get_device()
    colour, shape = data.scenes.colour[:, 0], data.scenes.shape[:, 0]
    g = make_generator(seed, "judge-batches")

    def step(judge, _):
        i = torch.randint(0, len(data.crops), (128,), generator=g)
        c, s = judge(data.crops[i].to(device))
        return F.cross_entropy(c, colour[i].to(device)) + F.cross_entropy(s, shape[i].to(device))

    seed_everything(seed)
    return fit(model, step, lambda s: s, steps, **{"lr": 2e-3, "device": device, "desc": "judge-tiny", **fit_kw})


def evaluate(model: Judge, n: int = 2000, seed: int = 1001) -> dict[str, float]:
    """The judge's accuracy on n new close-ups of any colour-shape pair."""
    data = close_ups(n, seed, split="all")
    return judge_accuracy(model, data.crops, data.label)
