"""Pictures and sounds of the shapes world: image grids, spectrograms, audio players, videos.

Each helper returns what a notebook displays: a matplotlib Figure, an IPython Audio or HTML object.
"""

from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
import torch
from matplotlib import animation
from matplotlib.figure import Figure
from torch import Tensor

from mmcourse.utils import check_number, check_sizes, check_tensor, describe
from mmcourse.viz._common import to_hwc

__all__ = ["show_images", "plot_spectrogram", "play_audio", "show_video", "video_strip", "video_rows"]


def show_images(images: Tensor, captions: list[str] | None = None, ncols: int = 8,
                boxes: Tensor | None = None, size: float = 1.6) -> Figure:
    """Grid of images (N, C, H, W) in [0, 1] with optional captions (wrapped) and boxes (N, K, 4) pixels."""
    check_tensor(images, "images", ndim=4)
    n = images.shape[0]
    check_sizes(ncols=ncols)
    if n == 0:
        raise ValueError("images: expected at least one image, got none")
    if captions is not None and (isinstance(captions, str) or len(captions) != n):
        raise ValueError(f"captions: expected {n} strings, got {describe(captions)}")
    if boxes is not None:
        check_tensor(boxes, "boxes", shape=(n, "K", 4))
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    titles = [_wrap(c, 24) for c in captions] if captions is not None else [""] * n
    text_height = 0.15 * max(t.count("\n") + 1 for t in titles) if captions is not None else 0
    figsize = (size * ncols, (size + text_height) * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(to_hwc(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(titles[i], fontsize=7)
        if boxes is not None:
            for x0, y0, x1, y1 in boxes[i].tolist():  # imshow puts pixel centres at integers
                if x1 > x0:
                    box = plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="w", lw=0.8)
                    ax.add_patch(box)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join(lines + [line])


def plot_spectrogram(spec: Tensor, sample_rate: int = 8000, hop_length: int = 80, title: str | None = None,
                     timings: list[tuple[str, float, float]] | None = None, ax=None) -> Figure:
    """A (n_mels, frames) log-mel spectrogram against time; `timings` [(word, start s, end s)] names words."""
    check_tensor(spec, "spec", ndim=2)
    check_sizes(sample_rate=sample_rate, hop_length=hop_length)
    if spec.numel() == 0:
        raise ValueError(f"spec: expected (n_mels, frames) values, got shape {tuple(spec.shape)}")
    if timings is not None and (isinstance(timings, str) or
                                not all(isinstance(t, (tuple, list)) and len(t) == 3 for t in timings)):
        raise ValueError(f"timings: expected a list of (word, start s, end s), got {describe(timings)}")
    spec = spec.detach().float().cpu()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 2.6))
    seconds = spec.shape[1] * hop_length / sample_rate
    image = ax.imshow(spec.numpy(), origin="lower", aspect="auto", extent=(0, seconds, 0, spec.shape[0]),
                      cmap="magma")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    if title:
        ax.set_title(title)
    for word, start, end in timings or []:
        ax.axvline(start, color="w", lw=0.6, ls="--")
        ax.text((start + end) / 2, spec.shape[0] * 0.92, word, color="w", ha="center", fontsize=8)
    ax.figure.colorbar(image, ax=ax, label="log power")
    if fig is None:  # drawing into the caller's axes: the caller shows the figure
        return ax.figure
    plt.close(fig)
    return fig


def play_audio(wave: Tensor, sample_rate: int = 8000):
    """An IPython audio player for a (S,) waveform (not normalised, so loudness comparisons stay honest)."""
    from IPython.display import Audio

    check_tensor(wave, "wave", ndim=1, dtype="float")
    check_number(sample_rate, "sample_rate", integer=True, low=1, high=2**32 - 1)  # what a WAV header holds
    if wave.numel() == 0 or not torch.isfinite(wave).all():
        raise ValueError(f"wave: expected a non-empty waveform of finite samples, got {describe(wave)}")
    peak = max(1.0, wave.abs().max().item())
    return Audio(wave.detach().cpu().numpy() / peak, rate=sample_rate, normalize=False)


def video_strip(video: Tensor, caption: str | None = None, every: int = 1, size: float = 1.2,
                labels: list[str] | None = None) -> Figure:
    """Frames of a video (T, C, H, W) side by side (every `every`-th frame), with an optional caption.

    Each frame is titled with its index in `video` ("frame 10"), or with `labels` (one per frame shown), e.g. the
    frame's time in seconds when the video has a frame rate."""
    check_tensor(video, "video", ndim=4)
    check_sizes(every=every)
    if len(video) == 0:
        raise ValueError("video: expected at least one frame, got none")
    frames = video[::every]
    if labels is None:
        labels = [f"frame {t * every}" for t in range(len(frames))]
    elif len(labels) != len(frames):
        raise ValueError(f"labels: expected one per frame shown ({len(frames)}), got {len(labels)}")
    lines = max(label.count("\n") + 1 for label in labels)
    fig, axes = plt.subplots(1, len(frames), figsize=(size * len(frames), size + 0.25 + 0.15 * lines), squeeze=False)
    for t, ax in enumerate(axes[0]):
        ax.imshow(to_hwc(frames[t]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(labels[t], fontsize=7)
        ax.axis("off")
    if caption:
        fig.suptitle(caption, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def video_rows(videos, labels: list[str], every: int = 1, size: float = 0.8, title: str | None = None) -> Figure:
    """Several videos, one row each (every `every`-th frame, left to right), each row labelled on its left: a clip
    beside its reconstruction, clips beside their captions. videos: (N, T, C, H, W) or a list of (T, C, H, W) of
    one length T."""
    if isinstance(videos, Tensor):
        check_tensor(videos, "videos", ndim=5)
        videos = list(videos)
    if not isinstance(videos, (list, tuple)) or not videos:
        raise ValueError(f"videos: expected (N, T, C, H, W) or a non-empty list of (T, C, H, W), "
                         f"got {describe(videos)}")
    for i, v in enumerate(videos):
        check_tensor(v, f"videos[{i}]", ndim=4)
    if len({v.shape[0] for v in videos}) != 1 or len(videos[0]) == 0:
        raise ValueError(f"videos: expected one length T >= 1 for all, got {[v.shape[0] for v in videos]} frames")
    if isinstance(labels, str) or len(labels) != len(videos):
        raise ValueError(f"labels: expected one per video ({len(videos)}), got {describe(labels)}")
    check_sizes(every=every)
    frames = [v[::every] for v in videos]
    T = len(frames[0])
    fig, axes = plt.subplots(len(frames), T, figsize=(size * T + 2.6, size * len(frames) + (0.3 if title else 0)),
                             squeeze=False)
    for r, video in enumerate(frames):
        for t in range(T):
            axes[r, t].imshow(to_hwc(video[t]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[r, t].set_xticks([])
            axes[r, t].set_yticks([])
        axes[r, 0].set_ylabel(_wrap(labels[r], 28), rotation=0, ha="right", va="center", fontsize=7)
    for t in range(T):
        axes[0, t].set_title(f"frame {t * every}", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(w_pad=0.1, h_pad=0.2)
    plt.close(fig)
    return fig


# matplotlib's player draws its buttons with Font Awesome icons from a CDN: offline, the buttons are blank. The same
# controls as text, so the player needs nothing from the internet.
_PLAYER_ICONS = {"fa fa-minus": "−", "fa fa-fast-backward": "⇤", "fa fa-step-backward": "‹",
                 "fa fa-play fa-flip-horizontal": "◀", "fa fa-pause": "‖", "fa fa-play": "▶",
                 "fa fa-step-forward": "›", "fa fa-fast-forward": "⇥", "fa fa-plus": "+"}
_CDN_STYLESHEET = re.compile(r'<link rel="stylesheet"\s+href="https://[^"]*font-awesome[^"]*">\n?')
_ICON = re.compile(r'<i class="(fa [^"]+)"></i>')


def show_video(video: Tensor, fps: int = 8, caption: str | None = None, size: float = 2.5):
    """A video (T, C, H, W) as an inline JavaScript animation (IPython HTML), with nothing loaded from the
    internet."""
    from IPython.display import HTML

    check_tensor(video, "video", ndim=4)
    check_number(fps, "fps", low=0, low_open=True)
    if len(video) == 0:
        raise ValueError("video: expected at least one frame, got none")
    fig, ax = plt.subplots(figsize=(size, size))
    ax.axis("off")
    if caption:
        ax.set_title(_wrap(caption, 30), fontsize=8)
    shown = ax.imshow(to_hwc(video[0]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")

    def update(t):
        shown.set_data(to_hwc(video[t]))
        return (shown,)

    anim = animation.FuncAnimation(fig, update, frames=video.shape[0], interval=1000 / fps, blit=True)
    html = _ICON.sub(lambda m: _PLAYER_ICONS.get(m.group(1), m.group(0)), _CDN_STYLESHEET.sub("", anim.to_jshtml()))
    plt.close(fig)
    return HTML(html)

