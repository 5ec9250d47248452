"""Heatmaps of score matrices (logits, softmax probabilities, gradients, similarities) side by side."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from mmcourse.utils import check_number, check_sizes, describe

__all__ = ["plot_matrices", "plot_loss_split"]

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
    if isinstance(panels, str) or not isinstance(panels, (list, tuple)) or not panels or \
            not all(isinstance(p, (list, tuple)) and len(p) == 3 for p in panels):
        raise ValueError(f"panels: expected a non-empty list of (matrix, title, scale), got {describe(panels)}")
    check_number(size, "size", low=0, low_open=True)
    fig, axes = plt.subplots(1, len(panels), figsize=(size * 1.05 * len(panels), size), squeeze=False)
    for ax, (matrix, title, scale) in zip(axes[0], panels):
        if scale not in SCALES:
            raise ValueError(f"panels: scale must be one of {', '.join(SCALES)}, got {scale!r}")
        m = torch.as_tensor(matrix).detach().float().cpu()
        if m.ndim != 2:
            raise ValueError(f"panels: panel {title!r} must be a matrix (R, C), got shape {tuple(m.shape)}")
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


def plot_loss_split(local_batch: int = 4, world_size: int = 2) -> Figure:
    """The N × N contrastive logits (N = world_size · local_batch) as each rank computes them: the global loss (every
    rank the whole matrix) beside the local loss (rank r its local_batch rows); positives marked, labels written."""
    check_sizes(local_batch=local_batch, world_size=world_size)
    if local_batch * world_size > 64:
        raise ValueError(f"local_batch * world_size: at most 64 pairs fit the picture, got {local_batch * world_size}")
    b, W = local_batch, world_size
    N = b * W
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.3))
    for ax, local in zip(axes, (False, True), strict=True):
        for r in range(W if local else 1):
            start, height = (r * b, b) if local else (0, N)
            ax.add_patch(plt.Rectangle((-0.5, start - 0.5), N, height, alpha=0.25, lw=0,
                                       color=colours(r) if local else "0.6", label=f"rank {r}" if local else None))
        for i in range(N):
            ax.plot(i, i, "k*", ms=8, zorder=3)
        for r in range(1, W):
            ax.axhline(r * b - 0.5, color="k", lw=0.8, ls="--")
            ax.axvline(r * b - 0.5, color="k", lw=0.8, ls="--")
        if local:
            for r in range(W):
                ax.text(N - 0.4, r * b + (b - 1) / 2, f"  labels {r * b}…{r * b + b - 1}", va="center", fontsize=8)
        ax.set_xlim(-0.5, N - 0.5)
        ax.set_ylim(N - 0.5, -0.5)
        ax.set_xticks(range(N))
        ax.set_yticks(range(N))
        ax.tick_params(labelsize=7)
        ax.set_xlabel("caption (gathered from every rank)")
        ax.set_ylabel("image")
        ax.set_title("local loss: rank r scores its b rows against all N" if local else
                     "global loss: every rank scores all N × N", fontsize=9)
        ax.set_aspect("equal")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, -0.12), fontsize=8, ncol=W)
    fig.suptitle(f"{W} ranks × {b} pairs: the positives (★) of rank r sit at columns r·{b} + i", fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig
