"""Heatmaps of score matrices (logits, softmax probabilities, gradients, similarities) side by side."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

__all__ = ["plot_matrices"]

SCALES = {  # scale -> colour map, and whether the colour range is [0, 1], symmetric about 0, or the data's own
    "prob": ("viridis", "unit"),
    "signed": ("PiYG", "symmetric"),
    "auto": ("viridis", "data"),
}


def plot_matrices(panels: Sequence[tuple[Tensor, str, str]], xlabel: str = "caption", ylabel: str = "image",
                  size: float = 3.6) -> Figure:
    """A row of heatmaps with colour bars; each panel is (matrix (R, C), title, scale).

    scale "prob": probabilities on a fixed 0-1 range (viridis), so panels compare; "signed": a diverging map
    symmetric about 0 (green positive, pink negative); "auto": viridis over the matrix's own range.
    """
    if not panels:
        raise ValueError("plot_matrices: expected at least one (matrix, title, scale) panel, got none")
    fig, axes = plt.subplots(1, len(panels), figsize=(size * 1.05 * len(panels), size), squeeze=False)
    for ax, (matrix, title, scale) in zip(axes[0], panels):
        if scale not in SCALES:
            raise ValueError(f"plot_matrices: scale must be one of {', '.join(SCALES)}, got {scale!r}")
        m = torch.as_tensor(matrix).detach().float().cpu()
        if m.ndim != 2:
            raise ValueError(f"plot_matrices: panel {title!r} must be a matrix (R, C), got shape {tuple(m.shape)}")
        cmap, kind = SCALES[scale]
        lim = max(m.abs().max().item(), 1e-12)
        vmin, vmax = {"unit": (0, 1), "symmetric": (-lim, lim), "data": (None, None)}[kind]
        image = ax.imshow(m.numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # rows and columns are items: integer ticks
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    plt.close(fig)
    return fig
