"""Video of the shapes world: moving shapes with motion captions, and a talking mouth synced to speech."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.data.audio import F1, F2, WORD_FORMANTS, Speech
from mmcourse.data.text import DIRECTIONS, SPEEDS, motion_caption
from mmcourse.data.world import EDGE, HELD_OUT, Scenes, render, sample_scenes
from mmcourse.utils import check_number, check_sizes, describe, make_generator, python_rng

__all__ = ["Clips", "moving_shapes", "talking_mouth"]

VELOCITY = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
SPEED_PER_FRAME = (0.03, 0.07)  # slowly, quickly: image sides per frame


@dataclass
class Clips:
    """N clips of one moving object: video (N, T, 3, R, R), the object (scenes with K=1),
    direction (N,) index into DIRECTIONS, speed (N,) index into SPEEDS, bounced (N,) bool,
    centers (N, T, 2) the object's track, captions (N strings)."""

    video: Tensor
    scenes: Scenes
    direction: Tensor
    speed: Tensor
    bounced: Tensor
    centers: Tensor
    captions: list[str]

    def __len__(self) -> int:
        return self.video.shape[0]


def moving_shapes(n: int, seed: int | torch.Generator = 0, *, frames: int = 8, resolution: int = 32,
                  split: str = "all", held_out=HELD_OUT, sizes=None, bounce: bool = True, device=None,
                  **render_kw) -> Clips:
    """n clips of one shape moving left/right/up/down, slowly or quickly, bouncing off the walls.

    The caption says the colour, shape, direction and speed at the start ('a red circle moves left quickly'),
    plus 'and bounces' when it hits a wall. With bounce=False the start is chosen so it never does. `sizes`: the
    allowed size names (default: both).
    render_kw go to `render` (antialias, colour_jitter, noise).
    """
    check_number(frames, "frames", integer=True, low=2)
    g = make_generator(seed, "clips")
    scenes = sample_scenes(n, g, min_objects=1, max_objects=1, split=split, held_out=held_out, sizes=sizes)
    direction = torch.randint(len(DIRECTIONS), (n,), generator=g)
    speed = torch.randint(len(SPEEDS), (n,), generator=g)
    step = torch.tensor([VELOCITY[d] for d in DIRECTIONS], dtype=torch.float32)[direction]
    step = step * torch.tensor(SPEED_PER_FRAME)[speed, None]  # (n, 2)
    lo = (scenes.extent()[:, 0] + EDGE)[:, None]  # the centre stays in [lo, 1 - lo]: the whole shape inside
    # start far enough from the wall it moves towards: for the whole clip, or (bounce=True) for the first step
    travel = step * (frames - 1 if not bounce else 1)
    span_lo, span_hi = lo - travel.clamp(max=0), 1 - lo - travel.clamp(min=0)
    if (span_hi < span_lo).any():
        raise ValueError(f"a {frames}-frame clip does not fit on the canvas without bouncing; "
                         f"use fewer frames")
    scenes.center[:, 0] = span_lo + torch.rand(n, 2, generator=g) * (span_hi - span_lo)
    t = torch.arange(frames, dtype=torch.float32)[None, :, None]
    free = scenes.center[:, None, 0] + step[:, None] * t  # (n, T, 2) straight-line track
    centers = _reflect(free, lo[:, None], 1 - lo[:, None])
    bounced = ((free < lo[:, None]) | (free > 1 - lo[:, None])).flatten(1).any(1)
    per_frame = (x.repeat(1, frames).view(-1, 1) for x in (scenes.shape, scenes.colour, scenes.size))
    track = Scenes(*per_frame, centers.view(-1, 1, 2))  # one scene per frame
    video = render(track, resolution, g, device=device, **render_kw)
    video = video.view(n, frames, 3, resolution, resolution)
    rng = python_rng(g)
    captions = [motion_caption(scenes.objects(i)[0], DIRECTIONS[d], SPEEDS[s], b, rng=rng)
                for i, (d, s, b) in enumerate(zip(direction.tolist(), speed.tolist(), bounced.tolist(),
                                                  strict=True))]
    return Clips(video, scenes, direction, speed, bounced, centers, captions)


def _reflect(x: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    """Fold positions into [lo, hi] as a ball bouncing between two walls (a triangle wave)."""
    span = hi - lo
    u = torch.remainder(x - lo, 2 * span)
    return lo + torch.where(u <= span, u, 2 * span - u)


def talking_mouth(speech: Speech, fps: int = 50, size: int = 16, seed: int | torch.Generator = 0,
                  noise: float = 0.02) -> tuple[Tensor, Tensor]:
    """A grey-level mouth video synchronised with `speech`: (B, T, 1, size, size) and frame lengths (B,).

    Frame t covers samples [t * sr / fps, (t + 1) * sr / fps). The mouth opens with the speech envelope in
    that frame, scaled by the word's jaw opening (its F1); the lips spread with the word's F2, as visemes do.
    """
    if not isinstance(speech, Speech):
        raise TypeError(f"speech: expected a Speech (from speak), got {describe(speech)}")
    check_sizes(fps=fps, size=size)
    check_number(noise, "noise", low=0)
    sr = speech.sample_rate
    hop = sr / fps
    if hop != int(hop):
        raise ValueError(f"fps must divide the sample rate {sr}, got fps={fps}")
    hop = int(hop)
    B, S = speech.wave.shape
    T = math.ceil(S / hop)
    env = torch.nn.functional.pad(speech.envelope.cpu(), (0, T * hop - S)).view(B, T, hop).mean(-1)  # (B, T)
    # the word being said at each frame's centre (or none): (B, T, J)
    centre = (torch.arange(T) * hop + hop // 2)[None, :, None]
    saying = (centre >= speech.starts.cpu()[:, None]) & (centre < speech.ends.cpu()[:, None])
    saying = saying & (speech.word_ids.cpu() >= 0)[:, None]
    f1, f2 = WORD_FORMANTS[speech.word_ids.cpu().clamp(min=0), :2].unbind(-1)  # (B, J)
    jaw = 0.5 + 0.5 * (f1 - F1[0]) / (F1[-1] - F1[0])  # 0.5 (closed vowel) .. 1 (open vowel)
    spread = (f2 - F2[0]) / (F2[-1] - F2[0])  # 0 (rounded) .. 1 (spread)
    frame_jaw = (saying * jaw[:, None]).sum(-1) + ~saying.any(-1) * 0.75  # between words: a neutral jaw
    frame_spread = (saying * spread[:, None]).sum(-1) + ~saying.any(-1) * 0.5
    opening = (env * frame_jaw).clamp(0, 1)  # (B, T) in [0, 1]
    g = make_generator(seed, "mouth")
    offset = (torch.rand(B, 1, 2, generator=g) - 0.5) * 2  # the face sits up to a pixel off centre
    mid = size / 2 + offset
    half_width = size * (0.22 + 0.12 * frame_spread)  # (B, T) pixels
    half_height = 0.3 + size * 0.22 * opening
    pix = torch.arange(size, dtype=torch.float32) + 0.5
    dx = pix.view(1, 1, 1, size) - mid[..., 0, None, None]  # (B, 1, 1, size) pixels from the mouth centre
    dy = pix.view(1, 1, size, 1) - mid[..., 1, None, None]
    a, b = half_width[..., None, None], half_height[..., None, None]  # (B, T, 1, 1) semi-axes
    inner = _ellipse(dx, dy, a, b)  # the open mouth
    outer = _ellipse(dx, dy, a + 1.2, b + 1.5)  # the lips around it
    skin, lips, cavity = 0.75, 0.40, 0.05
    frame = skin + outer * (lips - skin) + inner * (cavity - lips)
    frame = frame + noise * torch.randn(B, T, size, size, generator=g)
    lengths = torch.div(speech.lengths.cpu() + hop - 1, hop, rounding_mode="floor")
    return frame.clamp(0, 1)[:, :, None].to(speech.wave.device), lengths.to(speech.wave.device)


def _ellipse(dx: Tensor, dy: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Anti-aliased coverage of the ellipse with semi-axes a, b (pixels) at offsets dx, dy from its centre."""
    d = (torch.sqrt((dx / a) ** 2 + (dy / b) ** 2) - 1) * torch.minimum(a, b)  # ~ signed distance in pixels
    return (0.5 - d).clamp(0, 1)
