"""Audio-visual speech recognition on the course's scale: log-mel audio and mouth video, each through its own front
end and temporal encoder, fused frame by frame, read out with CTC (Graves et al. 2006), as Afouras et al.'s (2018)
TM-CTC recogniser is; modality dropout as in AV-HuBERT (Shi et al. 2022).

    log-mel (B, n_mels, 2T) --AudioFrontEnd--> (B, T, D) --TemporalConv--> a (B, T, D) --+
                                                                                        +--fusion--> (B, T, D)
    mouth (B, T, 1, H, W) --VisualFrontEnd--> (B, T, D) --TemporalConv--> v (B, T, D) --+
    --TemporalConv--> LayerNorm --> Linear --> log-probs over blank + vocabulary (B, T, C), one per video frame

The audio runs at twice the video's frame rate (hop 80 at 8 kHz against 50 fps); the audio front end halves it.
`streams` picks what a model hears: "audio", "video", or "audio+video" with `fusion` "concat" (Linear([a; v])) or
"gated" (`nn.fusion.GatedFusion`, a learned per-frame trust g a + (1 - g) v). A missing stream at test time is
zeros, which modality dropout in training (`nn.fusion.modality_dropout`) teaches the model to expect.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.nn.fusion import GatedFusion
from mmcourse.utils import check_sizes, check_tensor

__all__ = ["STREAMS", "FUSIONS", "AudioFrontEnd", "VisualFrontEnd", "TemporalConv", "AVSR", "frame_mask",
           "ctc_loss", "ctc_greedy_decode"]

STREAMS = ("audio", "video", "audio+video")
FUSIONS = ("concat", "gated")


def frame_mask(lengths: Tensor, T: int) -> Tensor:
    """(B,) lengths -> (B, T) bool, True on the first lengths[b] frames."""
    return torch.arange(T, device=lengths.device) < lengths[:, None]


class AudioFrontEnd(nn.Module):
    """log-mel (B, n_mels, F) with lengths (B,) audio frames -> (B, ceil(F / 2), D): each band's mean over the
    utterance's own frames removed (cepstral mean normalisation: the recording's gain and colour), then two 1-D
    convolutions, the first of stride 2. Frames past each utterance are zeroed before each convolution, so an
    utterance gives the same features alone as padded in a batch."""

    def __init__(self, n_mels: int = 40, dim: int = 64):
        super().__init__()
        check_sizes(n_mels=n_mels, dim=dim)
        self.n_mels = n_mels
        self.conv1 = nn.Conv1d(n_mels, dim, 5, stride=2, padding=2)
        self.conv2 = nn.Conv1d(dim, dim, 3, padding=1)

    def forward(self, mel: Tensor, lengths: Tensor) -> Tensor:
        mask = frame_mask(lengths, mel.shape[-1])[:, None].to(mel.dtype)  # (B, 1, F) audio frames
        mean = (mel * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)
        x = F.gelu(self.conv1((mel - mean) * mask))
        x = x * frame_mask((lengths + 1) // 2, x.shape[-1])[:, None].to(x.dtype)
        return F.gelu(self.conv2(x)).transpose(1, 2)


class VisualFrontEnd(nn.Module):
    """mouth video (B, T, 1, H, W) with mask (B, T) -> (B, T, D). Each pixel's mean over the utterance's frames is
    removed (the still face; what is left is the moving mouth), then a 2-D convolution per frame and a 3-D one (time
    kernel 3; space stride 2 each), frames outside the mask zeroed before the 3-D one reads them. `frames` turns the
    3-D conv's (B, C, T, H', W') into one vector per frame: time must be moved next to the batch (permute) before
    flattening, or channels and time are mixed."""

    def __init__(self, size: int = 16, dim: int = 64, channels: int = 16):
        super().__init__()
        check_sizes(size=size, dim=dim, channels=channels)
        if size % 4:
            raise ValueError(f"size: the mouth frames' side must be a multiple of 4, got {size}")
        self.size = size
        self.conv1 = nn.Conv3d(1, channels, (1, 5, 5), stride=(1, 2, 2), padding=(0, 2, 2))
        self.conv2 = nn.Conv3d(channels, channels, 3, stride=(1, 2, 2), padding=1)
        self.proj = nn.Linear(channels * (size // 4) ** 2, dim)

    @staticmethod
    def frames(features: Tensor) -> Tensor:
        """(B, C, T, H', W') -> (B, T, C·H'·W'), each frame's values in (channel, row, column) order."""
        return features.permute(0, 2, 1, 3, 4).flatten(2)

    def forward(self, video: Tensor, mask: Tensor) -> Tensor:
        keep = mask[:, None, :, None, None].to(video.dtype)  # (B, 1, T, 1, 1)
        video = video.transpose(1, 2)  # (B, 1, T, H, W)
        mean = (video * keep).sum(2, keepdim=True) / keep.sum(2, keepdim=True).clamp(min=1)  # the still face
        x = F.gelu(self.conv1((video - mean) * keep)) * keep  # (B, C, T, H/2, W/2)
        return self.proj(self.frames(F.gelu(self.conv2(x))))  # (B, T, C·H/4·W/4) -> (B, T, D)


class TemporalConv(nn.Module):
    """(B, T, D) -> (B, T, D): residual blocks x + Conv1d(GELU(Conv1d(LN(x)))) with dilations 1, 2, 4, ...; padded
    frames are zeroed before each convolution so that they never leak into real ones."""

    def __init__(self, dim: int = 64, blocks: int = 2, kernel: int = 5):
        super().__init__()
        check_sizes(dim=dim, blocks=blocks, kernel=kernel)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(blocks))
        self.convs = nn.ModuleList(nn.Sequential(
            nn.Conv1d(dim, dim, kernel, padding=2**i * (kernel // 2), dilation=2**i), nn.GELU(), nn.Conv1d(dim, dim, 1))
            for i in range(blocks))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        keep = mask[..., None].to(x.dtype)  # (B, T, 1)
        for norm, conv in zip(self.norms, self.convs, strict=True):
            x = x + conv((norm(x) * keep).transpose(1, 2)).transpose(1, 2)
        return x * keep


class AVSR(nn.Module):
    """forward(mel (B, n_mels, F), video (B, T, 1, H, W), lengths (B,) video frames) -> log-probs (B, T, C).

    C = vocab_size + 1, index 0 the CTC blank. F must be 2T or 2T - 1 (`check_durations`); an audio-only model
    still needs the video's T (pass zeros or any video of the right shape: it is not read), and vice versa."""

    def __init__(self, vocab_size: int, streams: str = "audio+video", fusion: str = "gated", dim: int = 64,
                 n_mels: int = 40, size: int = 16, blocks: int = 2):
        super().__init__()
        check_sizes(vocab_size=vocab_size, dim=dim)
        if streams not in STREAMS:
            raise ValueError(f"streams must be one of {STREAMS}, got {streams!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.streams, self.fusion_kind = streams, fusion if streams == "audio+video" else None
        self.n_mels, self.size = n_mels, size
        if streams != "video":
            self.audio = nn.ModuleDict({"front": AudioFrontEnd(n_mels, dim), "encoder": TemporalConv(dim, blocks)})
        if streams != "audio":
            self.video = nn.ModuleDict({"front": VisualFrontEnd(size, dim), "encoder": TemporalConv(dim, blocks)})
        if streams == "audio+video":
            self.fusion = GatedFusion(dim) if fusion == "gated" else nn.Linear(2 * dim, dim)
        self.back = TemporalConv(dim, blocks)
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size + 1)

    def check_durations(self, mel: Tensor, video: Tensor, lengths: Tensor) -> None:
        check_tensor(video, "video", shape=("B", "T", 1, self.size, self.size), dtype="float")
        B, T = video.shape[:2]
        check_tensor(mel, "mel", shape=(B, self.n_mels, "F"), dtype="float")
        check_tensor(lengths, "lengths", shape=(B,), dtype="int")
        if mel.shape[-1] not in (2 * T, 2 * T - 1):
            raise ValueError(f"audio and video of different durations: {mel.shape[-1]} audio frames (100 per s) "
                             f"against {T} video frames (50 per s); expected {2 * T - 1} or {2 * T} audio frames")
        if lengths.numel() and not (1 <= int(lengths.min()) and int(lengths.max()) <= T):
            raise ValueError(f"lengths: expected video frame counts in 1..{T}, got {lengths.tolist()[:10]}")

    def forward(self, mel: Tensor, video: Tensor, lengths: Tensor, return_gate: bool = False):
        self.check_durations(mel, video, lengths)
        mask = frame_mask(lengths, video.shape[1])
        if self.streams != "video":
            audio_lengths = (2 * lengths).clamp(max=mel.shape[-1])
            a = self.audio["front"](F.pad(mel, (0, 2 * video.shape[1] - mel.shape[-1])), audio_lengths)
            a = self.audio["encoder"](a, mask)
        if self.streams != "audio":
            v = self.video["encoder"](self.video["front"](video, mask), mask)
        gate = None
        if self.streams == "audio":
            x = a
        elif self.streams == "video":
            x = v
        elif self.fusion_kind == "gated":
            x, gate = self.fusion(a, v)
        else:
            x = self.fusion(torch.cat([a, v], -1))
        log_probs = self.head(self.ln(self.back(x, mask))).log_softmax(-1)
        return (log_probs, gate) if return_gate else log_probs


def ctc_loss(log_probs: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
    """CTC loss, mean over the batch of each utterance's loss / its target length (torch's 'mean').

    log_probs (B, T, C) with the blank at 0; targets (B, J) with ids in 1..C-1 (padding after target_lengths[b] is
    ignored). An utterance needs at least as many frames as its targets plus one blank between each repeated pair.
    """
    check_tensor(log_probs, "log_probs", shape=("B", "T", "C"), dtype="float")
    B, T, C = log_probs.shape
    check_tensor(targets, "targets", shape=(B, "J"), dtype="int")
    check_tensor(target_lengths, "target_lengths", shape=(B,), dtype="int")
    check_tensor(lengths, "lengths", shape=(B,), dtype="int")
    if B and not (1 <= int(lengths.min()) and int(lengths.max()) <= T):
        raise ValueError(f"lengths: expected frame counts in 1..{T} (the log-probs' T), got {lengths.tolist()[:10]}")
    valid = frame_mask(target_lengths, targets.shape[1])
    if ((targets < 1) | (targets >= C))[valid].any():
        raise ValueError(f"targets: expected ids in 1..{C - 1} (0 is the blank), "
                         f"got {targets[valid].unique().tolist()}")
    repeats = ((targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]).sum(1)
    need = target_lengths + repeats
    short = (need > lengths).nonzero().flatten().tolist()
    if short:
        b = short[0]
        raise ValueError(f"targets longer than the frames CTC can emit: utterance {b} has {int(target_lengths[b])} "
                         f"targets ({int(repeats[b])} repeated) needing {int(need[b])} frames, but only "
                         f"{int(lengths[b])} frames")
    return F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths, blank=0, zero_infinity=True)


def ctc_greedy_decode(log_probs: Tensor, lengths: Tensor) -> list[list[int]]:
    """Best path: the most likely class per frame (first lengths[b] frames), repeats collapsed, blanks (0) dropped.

    log_probs (B, T, C) -> B lists of class ids (1..C-1)."""
    check_tensor(log_probs, "log_probs", shape=("B", "T", "C"), dtype="float")
    check_tensor(lengths, "lengths", shape=(log_probs.shape[0],), dtype="int")
    if lengths.numel() and not (0 <= int(lengths.min()) and int(lengths.max()) <= log_probs.shape[1]):
        raise ValueError(f"lengths: expected frame counts in 0..{log_probs.shape[1]}, got {lengths.tolist()[:10]}")
    best = log_probs.argmax(-1).tolist()
    out = []
    for path, n in zip(best, lengths.tolist(), strict=True):
        path = path[:n]
        out.append([c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])])
    return out
