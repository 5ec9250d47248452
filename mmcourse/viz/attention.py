"""Pictures of a ViT's attention: CLS maps per layer and head, attention rollout, positional-embedding
similarity, and a small widget explorer (core ipywidgets, works on 7 and 8).

`attentions` everywhere is what `VisionTransformer(..., return_attn=True).attentions` gives: one tensor per
layer, (B, heads, 1 + N, 1 + N), token 0 the CLS token and the N = g·g patch tokens row by row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from mmcourse.nn.rollout import attention_rollout
from mmcourse.utils import check_number, check_sizes, check_tensor, describe
from mmcourse.viz._common import to_hwc

__all__ = ["cls_attention_grid", "plot_attention_maps", "plot_attention_rollout", "plot_word_attention",
           "plot_pos_embedding_similarity", "attention_explorer", "text_image_explorer"]


def cls_attention_grid(attn: Tensor, n_prefix: int = 1, query: int = 0) -> Tensor:
    """(..., Lq, 1 + N) attention -> query `query`'s (default CLS) weights on the patches as a (..., g, g) grid."""
    check_tensor(attn, "attn", dtype="float")
    if attn.ndim < 2:
        raise ValueError(f"attn: expected shape (..., Lq, Lk), got {tuple(attn.shape)}")
    check_number(n_prefix, "n_prefix", integer=True, low=0)
    check_number(query, "query", integer=True, low=0, high=attn.shape[-2] - 1)
    n = attn.shape[-1] - n_prefix
    g = math.isqrt(max(n, 0))
    if g * g != n or g == 0:
        raise ValueError(f"attn: expected n_prefix={n_prefix} prefix token(s) + a square number of patches, "
                         f"got {attn.shape[-1]} tokens (shape {tuple(attn.shape)})")
    return attn[..., query, n_prefix:].unflatten(-1, (g, g))


def plot_attention_maps(image: Tensor, attentions: Sequence[Tensor], index: int = 0, alpha: float = 0.5,
                        cmap: str = "inferno", style: str = "beside"):
    """Grid figure: a row per layer, a column per head (+ their mean), CLS attention over image `index`.

    `image` (C, H, W). style="beside" (what the lecture draws): the image in the first column, then each map as a
    heatmap of the CLS weights on the patch grid, one colour scale and colorbar per layer, the object's outline
    drawn on every map as a contour. style="overlay": each map min-max scaled and laid over the image (compare
    where, not how much; a colormap over coloured objects reads badly).
    """
    maps = torch.stack([cls_attention_grid(_select(a, index, i)) for i, a in enumerate(_layers(attentions))])
    maps = torch.cat([maps, maps.mean(1, keepdim=True)], dim=1)  # (layers, heads + 1, g, g)
    rows, cols = maps.shape[:2]
    img = to_hwc(image, rgb=True)
    titles = [f"head {c}" for c in range(cols - 1)] + ["mean"]
    if style == "beside":
        return _maps_beside(img, maps, titles)
    if style != "overlay":
        raise ValueError(f"style must be 'overlay' or 'beside', got {style!r}")
    fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.7 * rows), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            _overlay(axes[r, c], img, maps[r, c], alpha, cmap)
            if r == 0:
                axes[r, c].set_title(titles[c], fontsize=9)
        axes[r, 0].set_ylabel(f"layer {r}", fontsize=9)
    fig.suptitle("CLS attention to each patch", fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_word_attention(image: Tensor, cross_attentions: Sequence[Tensor], position: int, word: str = "",
                        index: int = 0):
    """A row per layer: the image, then the cross-attention of text position `position` (the token `word`) to
    the image's patches, per head and their mean, beside the image with the objects' outline.

    `cross_attentions`: per layer (B, heads, L, 1 + N) text-to-image weights (image token 0 the CLS, left out
    of the maps, whose scale is therefore the weight on patches); `BLIP.encode_text(..., return_attn=True)`."""
    layers = [_select(a, index, i, square=False, name="cross_attentions") for i, a in
              enumerate(_layers(cross_attentions, "cross_attentions"))]
    check_number(position, "position", integer=True, low=0, high=layers[0].shape[-2] - 1)
    maps = torch.stack([cls_attention_grid(a, query=position) for a in layers])
    maps = torch.cat([maps, maps.mean(1, keepdim=True)], dim=1)
    titles = [f"head {c}" for c in range(maps.shape[1] - 1)] + ["mean"]
    what = f"the word {word!r}" if word else f"text position {position}"
    return _maps_beside(to_hwc(image, rgb=True), maps, titles,
                        f"cross-attention of {what} to each patch (white line: the objects' outline)")


def plot_attention_beside(images: Tensor, maps: Tensor, titles: Sequence[str] | None = None,
                          suptitle: str = "attention to each patch (white line: the objects' outline)",
                          ncols: int = 4):
    """For each example, the image and its attention map (N, g, g) beside it as a heatmap on the patch grid with
    the objects' outline; one colorbar scale per pair (vmin 0)."""
    check_tensor(images, "images", shape=("N", 3, None, None), dtype="float")
    check_tensor(maps, "maps", shape=(images.shape[0], None, None), dtype="float")
    n = images.shape[0]
    check_sizes(ncols=ncols)
    if n == 0:
        raise ValueError("images: expected at least one image, got none")
    if titles and (isinstance(titles, str) or len(titles) != n or not all(isinstance(t, str) for t in titles)):
        raise ValueError(f"titles: expected one str per image ({n}), got {describe(titles)}")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(3.3 * ncols, 1.9 * nrows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        r, c = divmod(i, ncols)
        img = to_hwc(images[i], rgb=True)
        ax_img, ax_map = axes[r, 2 * c], axes[r, 2 * c + 1]
        ax_img.imshow(img)
        ax_img.set_title(titles[i] if titles else f"example {i}", fontsize=8)
        ax_map.set_axis_on()
        im = _heatmap(ax_map, maps[i].detach().cpu(), _silhouette(img), maps[i].max().item(),
                      show_ticks=r == nrows - 1 and c == 0)
        fig.colorbar(im, ax=ax_map, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _maps_beside(img: np.ndarray, maps: Tensor, titles: list[str],
                 suptitle: str = "CLS attention to each patch (white line: the objects' outline)"):
    """The image, then per layer (row) the heatmaps of `maps` (layers, cols, g, g) with a colorbar per row."""
    rows, cols = maps.shape[:2]
    fig, axes = plt.subplots(rows, cols + 1, figsize=(1.75 * (cols + 1) + 0.6, 1.75 * rows), squeeze=False)
    outline = _silhouette(img)
    for r in range(rows):
        axes[r, 0].imshow(img)
        axes[r, 0].set_axis_off()
        vmax = maps[r].max().item()
        for c in range(cols):
            im = _heatmap(axes[r, c + 1], maps[r, c], outline, vmax, show_ticks=c == 0 and r == rows - 1)
            if r == 0:
                axes[r, c + 1].set_title(titles[c], fontsize=9)
        axes[r, 0].text(-0.08, 0.5, f"layer {r}", rotation=90, ha="right", va="center", fontsize=9,
                        transform=axes[r, 0].transAxes)
        fig.colorbar(im, ax=list(axes[r, 1:]), fraction=0.02, pad=0.02)
    axes[0, 0].set_title("image", fontsize=9)
    fig.suptitle(suptitle, fontsize=10)
    plt.close(fig)
    return fig


def plot_attention_rollout(image: Tensor, attentions: Sequence[Tensor], index: int = 0, alpha: float = 0.5,
                           cmap: str = "inferno", style: str = "beside"):
    """Three panels: the image, the last layer's head-mean CLS map, and the rollout through all layers.

    style="beside": the two maps as heatmaps with a colorbar each and the objects' outline as a contour;
    style="overlay": min-max scaled maps laid over the image.
    """
    per_layer = [_select(a, index, i)[None] for i, a in enumerate(_layers(attentions))]
    last = cls_attention_grid(per_layer[-1][0].mean(0))
    rollout = cls_attention_grid(attention_rollout(per_layer)[0])
    titles = ("last layer (head mean)", f"rollout ({len(per_layer)} layers)")
    if style not in ("overlay", "beside"):
        raise ValueError(f"style must be 'overlay' or 'beside', got {style!r}")
    fig, axes = plt.subplots(1, 3, figsize=(8.4 if style == "beside" else 7.5, 2.8))
    img = to_hwc(image, rgb=True)
    axes[0].imshow(img)
    axes[0].set_title("image", fontsize=10)
    axes[0].set_axis_off()
    for ax, grid, title in zip(axes[1:], (last, rollout), titles):
        if style == "beside":
            im = _heatmap(ax, grid, _silhouette(img), grid.max().item(), show_ticks=True)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        else:
            _overlay(ax, img, grid, alpha, cmap)
            ax.set_axis_off()
        ax.set_title(title, fontsize=10)
    if style == "overlay":
        fig.tight_layout()
    else:
        fig.subplots_adjust(wspace=0.45)
    plt.close(fig)
    return fig


def plot_pos_embedding_similarity(pos_embedding: Tensor, n_prefix: int = 1, cmap: str = "viridis",
                                  title: str = "positional embedding cosine similarity"):
    """Tile (i, j) shows the cosine similarity of patch (i, j)'s positional embedding to every patch's.

    `pos_embedding` (n_prefix + N, D), e.g. `vit.positional_embedding`, or what training changed,
    `vit.positional_embedding - initial`. A ViT trained at scale shows a bright spot that follows (i, j), often
    with its row and column: the model learned the 2D grid from 1D positions.
    """
    check_tensor(pos_embedding, "pos_embedding", shape=("L", "D"), dtype="float")
    check_number(n_prefix, "n_prefix", integer=True, low=0)
    pos = torch.nn.functional.normalize(pos_embedding.detach().float().cpu()[n_prefix:], dim=-1)
    g = math.isqrt(pos.shape[0])
    if g == 0 or g * g != pos.shape[0]:
        raise ValueError(f"pos_embedding: expected n_prefix={n_prefix} prefix row(s) + a square number of patches, "
                         f"got shape {tuple(pos_embedding.shape)}")
    sim = (pos @ pos.T).reshape(g, g, g, g).numpy()  # (row, col) of the query, then of the key
    mosaic = np.full((g * (g + 1) - 1, g * (g + 1) - 1), np.nan)
    for i in range(g):
        for j in range(g):
            mosaic[i * (g + 1):i * (g + 1) + g, j * (g + 1):j * (g + 1) + g] = sim[i, j]
    fig, ax = plt.subplots(figsize=(5.2, 4.5))
    im = ax.imshow(mosaic, cmap=cmap, vmin=-1, vmax=1)
    ticks = np.arange(g) * (g + 1) + (g - 1) / 2
    ax.set_xticks(ticks, [str(j) for j in range(g)])
    ax.set_yticks(ticks, [str(i) for i in range(g)])
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    plt.close(fig)
    return fig


def attention_explorer(model: torch.nn.Module, images: Tensor):
    """A widget: pick an image, a layer (or the rollout) and a head (or the mean); see its CLS attention.

    `model(images, return_attn=True).attentions` must give per-layer (B, heads, 1 + N, 1 + N) weights, as
    `mmcourse.nn.VisionTransformer` does. Computed once, in eval mode, without gradients.
    """
    import ipywidgets as widgets
    from IPython.display import display

    check_tensor(images, "images", shape=("B", "C", "H", "W"), dtype="float")
    was_training = model.training
    device = next(model.parameters()).device
    with torch.no_grad():
        attentions = [a.cpu() for a in model.eval()(images.to(device), return_attn=True).attentions]
    model.train(was_training)
    n_layers, n_heads = len(attentions), attentions[0].shape[1]
    index = widgets.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="image")
    layer = widgets.Dropdown(options=[("rollout", -1)] + [(f"layer {i}", i) for i in range(n_layers)],
                             value=n_layers - 1, description="layer")
    head = widgets.Dropdown(options=[("mean", -1)] + [(f"head {h}", h) for h in range(n_heads)], value=-1,
                            description="head")

    def draw(index: int, layer: int, head: int):
        if layer == -1:
            grid = cls_attention_grid(attention_rollout([a[index:index + 1] for a in attentions])[0])
            title = "rollout (all layers, heads averaged)"
        else:
            attn = attentions[layer][index]
            grid = cls_attention_grid(attn.mean(0) if head == -1 else attn[head])
            title = f"layer {layer}, " + ("head mean" if head == -1 else f"head {head}")
        fig, axes = plt.subplots(1, 2, figsize=(6, 2.9))
        img = to_hwc(images[index], rgb=True)
        axes[0].imshow(img)
        axes[0].set_axis_off()
        im = _heatmap(axes[1], grid, _silhouette(img), grid.max().item(), show_ticks=True)
        fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
        fig.suptitle(title, fontsize=10)
        display(fig)
        plt.close(fig)

    out = widgets.interactive_output(draw, {"index": index, "layer": layer, "head": head})
    return widgets.VBox([widgets.HBox([index, layer, head]), out])


def text_image_explorer(images: Tensor, score: Callable[[int, str], tuple[float, list[str], Tensor]],
                        text: str = "", max_words: int = 6):
    """A widget: pick an image, edit a caption; see the model's P(match) and where each word looks.

    score(index, text) -> (P(match), the caption's words (W,), their attention to the patches (W, g, g)), e.g.
    a BLIP's ITM probability and its last layer's cross-attention averaged over heads. The first `max_words`
    words are drawn, each map beside the image with its own colour scale."""
    import ipywidgets as widgets
    from IPython.display import display

    check_tensor(images, "images", shape=("B", "C", "H", "W"), dtype="float")
    index = widgets.IntSlider(value=0, min=0, max=images.shape[0] - 1, description="image")
    caption = widgets.Text(value=text, description="caption", layout=widgets.Layout(width="70%"))

    def draw(index: int, caption: str):
        if not caption.strip():
            print("type a caption")
            return
        p, words, grids = score(index, caption)
        words, grids = words[:max_words], grids[:max_words]
        img = to_hwc(images[index], rgb=True)
        fig, axes = plt.subplots(1, len(words) + 1, figsize=(1.9 * (len(words) + 1), 2.3), squeeze=False)
        axes[0, 0].imshow(img)
        axes[0, 0].set_axis_off()
        axes[0, 0].set_title(f"P(match) = {p:.3f}", fontsize=9)
        for ax, word, grid in zip(axes[0, 1:], words, grids):
            _heatmap(ax, grid, _silhouette(img), grid.max().item(), show_ticks=False)
            ax.set_title(repr(word), fontsize=9)
        display(fig)
        plt.close(fig)

    out = widgets.interactive_output(draw, {"index": index, "caption": caption})
    return widgets.VBox([widgets.HBox([index, caption]), out])


def _layers(attentions, name: str = "attentions") -> list:
    """The per-layer weights as a list, or a clear error unless it is a non-empty list or tuple."""
    if not isinstance(attentions, (list, tuple)) or not attentions:
        raise ValueError(f"{name}: expected a non-empty list of per-layer weights (B, heads, Lq, Lk), got "
                         f"{describe(attentions)}")
    return list(attentions)


def _select(attn: Tensor, index: int, layer: int, square: bool = True, name: str = "attentions") -> Tensor:
    """One image's (heads, Lq, Lk) weights from layer `layer`'s (B, heads, Lq, Lk), as a float CPU tensor;
    `square`: self-attention, Lq == Lk."""
    check_tensor(attn, f"{name}[{layer}]", shape=("B", "heads", "Lq", "Lk"), dtype="float")
    if square and attn.shape[-1] != attn.shape[-2]:
        raise ValueError(f"{name}[{layer}]: expected self-attention weights (B, heads, L, L), got "
                         f"{tuple(attn.shape)}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < attn.shape[0]:
        raise IndexError(f"index must be in [0, {attn.shape[0] - 1}], got {index}")
    return attn[index].detach().float().cpu()


def _silhouette(img: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose colour differs from the top-left corner's (the background) by more than 0.25."""
    return np.abs(img - img[:1, :1]).max(-1) > 0.25


def _heatmap(ax, grid: Tensor, outline: np.ndarray, vmax: float, show_ticks: bool):
    """The (g, g) map as a heatmap on the patch grid (vmin 0), the objects' outline on top as a white contour."""
    g = grid.shape[-1]
    im = ax.imshow(grid.numpy(), cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
    h, w = outline.shape
    if outline.any() and not outline.all():  # pixel centres mapped onto the patch grid's coordinates
        xs, ys = (np.arange(w) + 0.5) * g / w - 0.5, (np.arange(h) + 0.5) * g / h - 0.5
        ax.contour(xs, ys, outline.astype(float), levels=[0.5], colors="white", linewidths=1.0)
    ax.set_xlim(-0.5, g - 0.5)
    ax.set_ylim(g - 0.5, -0.5)
    if show_ticks:
        ticks = [0, g - 1]
        ax.set_xticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.set_yticks(ticks, [str(t) for t in ticks], fontsize=7)
        ax.set_xlabel("patch column", fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return im


def _overlay(ax, img: np.ndarray, grid: Tensor, alpha: float, cmap: str) -> None:
    """The image, then the (g, g) map stretched over it, one square per patch, min-max scaled to [0, 1]."""
    h, w = img.shape[:2]
    ax.imshow(img)
    grid = (grid - grid.min()) / (grid.max() - grid.min()).clamp_min(1e-12)
    ax.imshow(grid.numpy(), cmap=cmap, alpha=alpha, vmin=0, vmax=1, extent=(-0.5, w - 0.5, h - 0.5, -0.5),
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
