"""Chapter 08's clips and their tokenizer: a VQ-VAE that turns clips of one moving shape into tokens. The zoo entry
"video-tokenizer" is this recipe; `mmcourse.recipes.videobert_tiny` reads its tokens.

    tokenizer = build()
    train(tokenizer)                                    # reconstruction + edge + VQ losses, new clips every step
    codebook_usage(tokenizer, clips(1000, evaluation=True))

Clips: 8 frames of 16 × 16 pixels, one large shape moving left, right, up or down, slowly or quickly, bouncing off
the walls; the caption says 'a red circle moves left quickly and bounces'. Tokens: one per frame × 4 × 4 pixels,
8 × 4 × 4 = 128 per clip, each token GROUPS = 4 codes of NUM_CODES = 128 (product quantization: each code
quantizes 8 of the encoder's 32 channels). Training never sees the 4 held-out colour-shape pairs;
`clips(split="test")` shows only them.

Why four codes a token, and a commitment weight of 1 (measured through the captions of `videobert_tiny`, fully right
= colour, shape and direction): one code of 128 per token kept colour and direction but lost shape — circle and
square differ by a corner pixel at this size — with 0.76–0.87 of the captions fully right. With the groups' losses
summed (a commitment weight of 0.25 per group), two codes of 128 gave 0.86 and four 0.95 (seed 2). With the loss
averaged over the groups, four codes gave 0.84 (seed 0) and 0.89 (seed 2) at VQ-VAE's β = 0.25, and 0.96 on both
at β = 1: the stronger pull of the encoder onto its codes also lowered the reconstruction loss. A one-frame CNN on
the pixels tells the shapes apart every time: shape is what a coarse quantization loses. The edge term (the MSE of
neighbouring pixels' differences) weighs outlines beside flat colour.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.data import Tokenizer, moving_shapes
from mmcourse.models.videobert import VideoTokenizer
from mmcourse.nn import perplexity
from mmcourse.train import History, fit
from mmcourse.utils import make_generator, seed_everything

__all__ = ["VERSION", "FRAMES", "RESOLUTION", "NUM_CODES", "GROUPS", "TEXT_LENGTH", "BATCH_SIZE", "STEPS",
           "EVAL_EVERY", "Clips", "clips", "text_tokenizer", "build", "train", "codebook_usage"]

VERSION = 1  # bump whenever the model, its data or its training changes
FRAMES, RESOLUTION = 8, 16  # one token per frame x 4 x 4 pixels: 8 x 4 x 4 = 128 per clip
FRAMES_PER_TOKEN = 1
NUM_CODES, GROUPS = 128, 4  # a token is 4 codes of 128, each on 8 of the 32 channels (product quantization)
TEXT_LENGTH = 10  # '<sot> a red circle moves left quickly and bounces <eot>' is the longest
BATCH_SIZE = 64
STEPS = 800
EVAL_EVERY = 50  # training records the codebooks' perplexity on evaluation clips this often
RESET = 0.6  # re-seed a code once its share of the assignments falls below 0.6 / NUM_CODES
BETA = 1.0  # the commitment weight (VQ-VAE's is 0.25; see the module's docstring)
SIZES = ("large",)  # at 16 x 16 pixels a small shape is 3 pixels across: a circle and a square differ by a pixel
EDGES = 2.0  # weight of the edge term: the MSE of horizontal and vertical pixel differences


@dataclass
class Clips:
    """video (N, 3, T, R, R) channels first, ids (N, TEXT_LENGTH) the tokenized captions, and the clips'
    colour, shape, direction, speed (N,) and bounced (N,) as indices into the world's names."""

    video: Tensor
    ids: Tensor
    captions: list[str]
    colour: Tensor
    shape: Tensor
    direction: Tensor
    speed: Tensor
    bounced: Tensor

    def __len__(self) -> int:
        return len(self.video)


def text_tokenizer() -> Tokenizer:
    return Tokenizer(extra_tokens=("<mask>",))


def clips(n: int, seed: int = 0, split: str = "train", evaluation: bool = False) -> Clips:
    """n clips of the world's moving shapes: "train" pairs only, or "test" (the held-out pairs only). Evaluation
    clips come from a stream of their own, so that no seed of them is ever a training batch."""
    stream = f"videobert-{'eval-' if evaluation else ''}{split}"
    c = moving_shapes(n, make_generator(seed, stream), frames=FRAMES, resolution=RESOLUTION, split=split, sizes=SIZES)
    ids = text_tokenizer().encode_batch(c.captions, TEXT_LENGTH)
    return Clips(c.video.transpose(1, 2).contiguous(), ids, c.captions, c.scenes.colour[:, 0], c.scenes.shape[:, 0],
                 c.direction, c.speed, c.bounced)


def build(seed: int = 0, reset: bool = True, **quantizer_kw) -> VideoTokenizer:
    """The VQ-VAE, untrained; reset=False turns the dead-code reset off (to see the collapse)."""
    seed_everything(seed)
    quantizer_kw = {"beta": BETA, **quantizer_kw}
    return VideoTokenizer(NUM_CODES, frames_per_token=FRAMES_PER_TOKEN, groups=GROUPS,
                          reset_threshold=RESET if reset else None, **quantizer_kw)


def train(tokenizer: VideoTokenizer, steps: int = STEPS, seed: int = 0, lr: float = 2e-3,
          eval_every: int | None = EVAL_EVERY, **fit_kw) -> History:
    """Reconstruction MSE + EDGES · the MSE of the pixel differences (edges carry the shape) + the quantizer's loss,
    BATCH_SIZE new training clips per step. Every `eval_every` steps and at the end (None: never) the History
    records "perplexity" (the lowest group's) and "mse" on 128 evaluation clips."""
    seed_everything(seed)

    def step(model, video):
        recon, q = model(video)
        edges = sum(F.mse_loss(recon.diff(dim=d), video.diff(dim=d)) for d in (-1, -2))
        return F.mse_loss(recon, video) + EDGES * edges + q.loss, {"perplexity": q.perplexity.min()}

    if eval_every is not None and "eval_fn" not in fit_kw:
        fit_kw = {"eval_fn": _progress_eval(), "eval_every": eval_every, **fit_kw}
    fit_kw = {"desc": "VQ-VAE", **fit_kw}
    return fit(tokenizer, step, lambda s: clips(BATCH_SIZE, seed * 100_003 + s).video, steps, lr=lr, warmup=20,
               **fit_kw)


def _progress_eval():
    video = clips(128, evaluation=True).video

    def evaluate(model: VideoTokenizer) -> dict[str, float]:
        recon, q = model(video.to(next(model.parameters()).device))
        ppl = min(perplexity(q.codes[..., g], NUM_CODES).item() for g in range(q.codes.shape[-1]))
        return {"perplexity": ppl, "mse": F.mse_loss(recon.cpu(), video).item()}

    return evaluate


@torch.no_grad()
def codebook_usage(tokenizer: VideoTokenizer, data: Clips) -> Tensor:
    """How often each group's codes are chosen on `data`: counts (GROUPS, NUM_CODES)."""
    tokenizer.eval()
    codes = tokenizer.tokenize(data.video.to(next(tokenizer.parameters()).device)).flatten(0, -2).cpu()
    K = tokenizer.quantizer.num_codes
    return torch.stack([torch.bincount(c, minlength=K) for c in codes.unbind(-1)])
