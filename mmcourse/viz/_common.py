"""What every plot helper shares."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from mmcourse.utils import check_tensor


def to_hwc(image: Tensor, rgb: bool = False) -> np.ndarray:
    """(C, H, W) tensor -> an array for imshow: (H, W, 3), or (H, W) for one channel unless `rgb`.

    Values a little outside [0, 1] (pixel noise) are clipped; far outside (normalised inputs), min-max scaled.
    """
    check_tensor(image, "image", shape=("C", "H", "W"))
    if image.shape[0] not in (1, 3) or image.numel() == 0:
        raise ValueError(f"image: expected (C, H, W) with 1 or 3 channels, got shape {tuple(image.shape)}")
    img = image.detach().float().cpu()
    if img.min() < -0.1 or img.max() > 1.1:
        img = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-8)
    img = img.clamp(0, 1)
    if img.shape[0] == 1 and not rgb:
        return img[0].numpy()
    return (img.expand(3, -1, -1) if img.shape[0] == 1 else img).permute(1, 2, 0).numpy()
