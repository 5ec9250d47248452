"""Chapter 08's VideoBERT: one transformer over a clip's video tokens and its caption, trained by filling in masked
positions of both, then captioning clips by filling a caption of masks. The zoo entry "videobert-tiny" is this
recipe; it reads the tokens of the zoo's "video-tokenizer" (`mmcourse.recipes.video_tokenizer`).

    tokenizer = zoo.load("video-tokenizer")
    bert = build()
    train(bert, tokenizer)                         # masked video and text tokens, the tokenizer frozen
    evaluate(bert, tokenizer, clips(1000, evaluation=True))   # captions from video alone: colour, shape, direction

The video tokens' loss weighs VIDEO_WEIGHT = 0.1 beside the text's: with one code per token, weight 1 gave 0.67
of the captions fully right against 0.78 with no video loss (seed 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcourse.data import COLOUR_NAMES, DIRECTIONS, SHAPES, SPEEDS
from mmcourse.data.text import split_words
from mmcourse.losses import bert_mask
from mmcourse.models.videobert import VideoBERT, VideoTokenizer
from mmcourse.recipes.video_tokenizer import (
    BATCH_SIZE,
    FRAMES,
    FRAMES_PER_TOKEN,
    GROUPS,
    NUM_CODES,
    RESOLUTION,
    TEXT_LENGTH,
    Clips,
    clips,
    text_tokenizer,
)
from mmcourse.train import History, fit
from mmcourse.utils import get_device, make_generator, seed_everything

__all__ = ["VERSION", "NEEDS", "STEPS", "EVAL_EVERY", "VIDEO_WEIGHT", "build", "train", "caption", "caption_scores",
           "evaluate"]

VERSION = 1  # bump whenever the model, its data, its training or the tokenizer's version changes
NEEDS = ("video-tokenizer",)  # the zoo passes the trained tokenizer to train()
STEPS = 1500
EVAL_EVERY = 250  # training records the captions' scores on 200 evaluation clips this often
P_VIDEO = 0.15  # BERT's rate on the video tokens; the text's rate is drawn per clip from [P_TEXT, 1]
P_TEXT = 0.15
VIDEO_WEIGHT = 0.1  # the video tokens' loss beside the text's: masked video modelling competes with captioning


def build(seed: int = 0, **kw) -> VideoBERT:
    """VideoBERT for the tokenizer's tokens (width 64, 2 layers, 4 heads unless kw say otherwise), untrained."""
    seed_everything(seed)
    tok = text_tokenizer()
    video_length = (FRAMES // FRAMES_PER_TOKEN) * (RESOLUTION // 4) ** 2
    return VideoBERT(NUM_CODES, video_length, tok.vocab_size, TEXT_LENGTH, tok.stoi["<mask>"], GROUPS, **kw)


def train(bert: VideoBERT, tokenizer: VideoTokenizer, steps: int = STEPS, seed: int = 0, lr: float = 3e-3,
          p_text: float = P_TEXT, video_weight: float = VIDEO_WEIGHT, eval_every: int | None = EVAL_EVERY,
          **fit_kw) -> History:
    """Masked modelling over both streams of new training clips: BERT's 15 % (80/10/10) on the video tokens (a
    token's G codes masked together, all G predicted); on the text a rate drawn per clip from [p_text, 1], so that
    some clips have (almost) all their text masked, which is what captioning asks for; the video tokens' loss weighs
    `video_weight`. The tokenizer stays frozen. Every `eval_every` steps and at the end (None: never) the History
    records `caption_scores` on 200 evaluation clips."""
    seed_everything(seed)
    tokenizer.eval()
    tok = text_tokenizer()
    device = torch.device(fit_kw["device"]) if fit_kw.get("device") is not None else get_device()  # as fit
    tokenizer.to(device)
    g = make_generator(seed, "videobert-masks")

    def batch(s):
        c = clips(BATCH_SIZE, seed * 100_003 + s)
        codes = tokenizer.tokenize(c.video.to(device)).flatten(1, -2).cpu()  # (B, Nv, G)
        v_in, v_labels = bert_mask(codes, bert.video_mask_id, bert.num_codes, P_VIDEO, generator=g)
        p = p_text + (1 - p_text) * torch.rand(len(c), generator=g)
        t_in, t_labels = bert_mask(c.ids, bert.text_mask_id, tok.vocab_size, p, generator=g)
        return v_in, v_labels, t_in, t_labels

    def step(model, b):
        v_in, v_labels, t_in, t_labels = b
        v_logits, t_logits = model(v_in, t_in)
        video_loss = F.cross_entropy(v_logits.flatten(0, 2), v_labels.flatten(), ignore_index=-100)
        text_loss = F.cross_entropy(t_logits.flatten(0, 1), t_labels.flatten(), ignore_index=-100)
        video_loss = torch.nan_to_num(video_loss)  # a batch where no video token was chosen
        return video_weight * video_loss + text_loss, {"video": video_loss.detach(), "text": text_loss.detach()}

    if eval_every is not None and "eval_fn" not in fit_kw:
        data = clips(200, evaluation=True)
        fit_kw = {"eval_fn": lambda m: evaluate(m, tokenizer, data), "eval_every": eval_every, **fit_kw}
    fit_kw = {"desc": "VideoBERT", **fit_kw}
    return fit(bert, step, batch, steps, lr=lr, warmup=50, weight_decay=0.01, grad_clip=1.0, **fit_kw)


@torch.no_grad()
def caption(bert: VideoBERT, tokenizer: VideoTokenizer, video: Tensor, rounds: int = 4) -> list[str]:
    """Captions for clips (N, 3, T, R, R) from their video tokens alone."""
    bert.eval()
    tokenizer.eval()
    device = next(bert.parameters()).device
    codes = tokenizer.to(device).tokenize(video.to(device)).flatten(1, -2)
    tok = text_tokenizer()
    return tok.decode_batch(bert.fill_text(codes, rounds=rounds, start_id=tok.sot_id).cpu())


def caption_scores(texts: list[str], data: Clips) -> dict[str, float]:
    """The share of captions that name the right colour, shape, direction, speed and bounce, and "full": colour,
    shape and direction all right."""
    if len(texts) != len(data):
        raise ValueError(f"texts: expected one caption per clip ({len(data)}), got {len(texts)}")
    got = {k: [] for k in ("colour", "shape", "direction", "speed", "bounce")}
    for i, text in enumerate(texts):
        words = split_words(text)
        got["colour"].append(COLOUR_NAMES[data.colour[i]] in words and _one_of(words, COLOUR_NAMES))
        got["shape"].append(SHAPES[data.shape[i]] in words and _one_of(words, SHAPES))
        got["direction"].append(DIRECTIONS[data.direction[i]] in words and _one_of(words, DIRECTIONS))
        got["speed"].append(SPEEDS[data.speed[i]] in words and _one_of(words, SPEEDS))
        got["bounce"].append(("bounces" in words) == bool(data.bounced[i]))
    scores = {k: sum(v) / len(v) for k, v in got.items()}
    full = [c and s and d for c, s, d in zip(got["colour"], got["shape"], got["direction"], strict=True)]
    return {**scores, "full": sum(full) / len(full)}


def _one_of(words: list[str], names) -> bool:
    return sum(w in names for w in words) == 1


def evaluate(bert: VideoBERT, tokenizer: VideoTokenizer, data: Clips, rounds: int = 4) -> dict[str, float]:
    return caption_scores(caption(bert, tokenizer, data.video, rounds), data)
