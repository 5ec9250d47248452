"""Chapter 07's checks: greedy CTC decoding, the gated fusion, the channels/time reshape, the modality-dropout
experiment and the questions."""

from __future__ import annotations

import contextlib
import functools
import io

import torch
from torch import nn

from mmcourse.grading.core import devices, expect_close, expect_equal, fail, register, register_quiz
from mmcourse.grading.memo import remembered
from mmcourse.metrics.speech import word_error_rate
from mmcourse.models.avsr import VisualFrontEnd, ctc_greedy_decode
from mmcourse.recipes import avsr_tiny


# ---------------------------------------------------------------- 07.greedy_decode
def greedy_decode(log_probs, lengths):
    """Reference: best class per frame over the first lengths[b] frames, repeats merged, then blanks (0) dropped."""
    return ctc_greedy_decode(log_probs, lengths)


def _decode(log_probs, lengths, *, blanks_first=False, all_frames=False, keep_repeats=False):
    out = []
    for path, n in zip(log_probs.argmax(-1).tolist(), lengths.tolist(), strict=True):
        path = path if all_frames else path[:n]
        if blanks_first:
            path = [c for c in path if c != 0]
        out.append([c for i, c in enumerate(path) if c != 0 and (keep_repeats or i == 0 or c != path[i - 1])])
    return out


def _decode_blanks_first(log_probs, lengths):
    """drops the blanks before merging repeats: "red _ red" becomes one "red\""""
    return _decode(log_probs, lengths, blanks_first=True)


def _decode_all_frames(log_probs, lengths):
    """reads every frame, the padding after each utterance's length too"""
    return _decode(log_probs, lengths, all_frames=True)


def _decode_no_merge(log_probs, lengths):
    """drops blanks but never merges repeated frames"""
    return _decode(log_probs, lengths, keep_repeats=True)


def _paths(paths, C=5):
    """log-probs (B, T, C) whose best class per frame is `paths` (equal lengths)."""
    x = torch.full((len(paths), len(paths[0]), C), -5.0)
    for b, path in enumerate(paths):
        x[b, torch.arange(len(path)), torch.tensor(path)] = -0.1
    return x.log_softmax(-1)


@register("07.greedy_decode", greedy_decode, [_decode_blanks_first, _decode_all_frames, _decode_no_merge])
def _test_greedy_decode(fn):
    cases = [
        ([[0, 2, 2, 0, 0, 3, 0]], [7], "a word held for two frames, a blank, another word"),
        ([[1, 1, 0, 1, 0, 4]], [6], "the same word twice, a blank between the copies: it was said twice"),
        ([[3, 0, 0, 0], [2, 2, 2, 2]], [1, 3], "two utterances, of 1 and 3 frames: what follows is padding"),
        ([[0, 0, 0]], [3], "blank everywhere: nothing was said"),
    ]
    for paths, lengths, what in cases:
        lp, n = _paths(paths), torch.tensor(lengths)
        expect_equal(fn(lp, n), greedy_decode(lp, n), f"{what}: best path {paths}, lengths {lengths}",
                     "per utterance: argmax per frame over its first lengths[b] frames, merge runs of the same "
                     "class, then drop the blanks (0) — in that order")
    g = torch.Generator().manual_seed(71)
    lp, n = torch.randn(6, 20, 6, generator=g).log_softmax(-1), torch.randint(1, 21, (6,), generator=g)
    expect_equal(fn(lp, n), greedy_decode(lp, n), "random log-probs (6 utterances of up to 20 frames)")
    return len(cases) + 1


# ---------------------------------------------------------------- 07.gated_fusion
def gated_fusion(a, v, gate):
    """Reference: g = σ(gate([a; v])) (B, T, 1); g a + (1 − g) v, and g (B, T)."""
    g = torch.sigmoid(gate(torch.cat([a, v], -1)))
    return g * a + (1 - g) * v, g[..., 0]


def _gated(a, v, gate, *, swap=False, order=False, softmax=False):
    logits = gate(torch.cat([v, a], -1) if order else torch.cat([a, v], -1))
    g = logits.softmax(1) if softmax else torch.sigmoid(logits)
    return (g * v + (1 - g) * a if swap else g * a + (1 - g) * v), g[..., 0]


def _gated_swapped(a, v, gate):
    """gives the gate's share to the video and the rest to the audio"""
    return _gated(a, v, gate, swap=True)


def _gated_order(a, v, gate):
    """feeds the gate [v; a] instead of [a; v]"""
    return _gated(a, v, gate, order=True)


def _gated_softmax(a, v, gate):
    """a softmax over the frames instead of a sigmoid per frame"""
    return _gated(a, v, gate, softmax=True)


@register("07.gated_fusion", gated_fusion, [_gated_swapped, _gated_order, _gated_softmax])
def _test_gated_fusion(fn):
    n = 0
    for device in devices():
        torch.manual_seed(72)
        gate = nn.Sequential(nn.Linear(8, 6), nn.GELU(), nn.Linear(6, 1)).to(device)
        a, v = torch.randn(2, 5, 4).to(device), torch.randn(2, 5, 4).to(device)
        out = fn(a, v, gate)
        if not isinstance(out, tuple) or len(out) != 2:
            fail("gated_fusion must return (fused, g)", "a tuple of two tensors", type(out).__name__)
        want = gated_fusion(a, v, gate)
        hint = "g = σ(gate(torch.cat([a, v], -1))), one value per frame; fused = g · a + (1 − g) · v"
        expect_close(out[1], want[1], "g (B, T), the trust in the audio at each frame", hint)
        expect_close(out[0], want[0], "the fused frames (B, T, D)", hint)
        n += 1
    return n


# ---------------------------------------------------------------- 07.fix_reshape
def frames(features):
    """Reference: the visual front end's own (B, C, T, H, W) -> (B, T, C·H·W), (c, h, w) order inside a frame."""
    return VisualFrontEnd.frames(features)


def _frames_view(features):
    """view(B, T, -1) straight on (B, C, T, H, W): channels mixed with time"""
    return features.view(features.shape[0], features.shape[2], -1)


def _frames_channels_last(features):
    """(h, w, c) order inside a frame, not the (c, h, w) that the projection's weights expect"""
    return features.permute(0, 2, 3, 4, 1).flatten(2)


@register("07.fix_reshape", frames, [_frames_view, _frames_channels_last])
def _test_fix_reshape(fn):
    toy = torch.arange(2 * 3 * 4 * 2 * 2, dtype=torch.float32).view(2, 3, 4, 2, 2)  # B, C=3, T=4, H=W=2
    got = fn(toy)
    expect_equal(tuple(got.shape) if isinstance(got, torch.Tensor) else got, (2, 4, 12),
                 "the shape of frames() for features (B=2, C=3, T=4, H=2, W=2)", "(B, T, C·H·W)")
    for t in range(4):
        expect_close(got[:, t], toy[:, :, t].flatten(1), f"frame {t}: every channel's pixels at time {t}",
                     "move time next to the batch first (permute(0, 2, 1, 3, 4)), then flatten the rest; view on "
                     "(B, C, T, H, W) takes the memory in its order, channel by channel")
    return 4


# ---------------------------------------------------------------- 07.dropout_rate (experiment)
EXP_STEPS, MAX_CAMERA_OFF_WER = 300, 0.25


@functools.cache
def _data():
    train = avsr_tiny.utterances(avsr_tiny.POOL, seed=7)
    return train, avsr_tiny.babble_bank(train, seed=8), avsr_tiny.test_set()


@remembered
def camera_off_wer(p_drop: float, seed: int = 0) -> float:
    """The gated model trained EXP_STEPS steps with modality dropout p_drop, asked with the video missing (zeros)
    on 300 new clean sentences: its WER."""
    train, babble, (test, test_babble) = _data()
    model = avsr_tiny.build(seed)["gated"]  # build seeds the initialisation
    with contextlib.redirect_stdout(io.StringIO()):  # the check's verdict is the only line it prints
        avsr_tiny.train_one(model, train, babble, steps=EXP_STEPS, p_drop=p_drop, seed=seed, progress=False)
    index = torch.arange(len(test))
    mel, video, lengths = avsr_tiny.batch(test, index, None, test_babble, index)
    return word_error_rate(avsr_tiny.transcribe(model, mel, torch.zeros_like(video), lengths), test.transcripts())


def _rate_reference():
    return {"p_drop": 0.25}


def _rate_none():
    """no modality dropout"""
    return {"p_drop": 0.0}


def _rate_too_big():
    """a rate above 1"""
    return {"p_drop": 1.5}


@register("07.dropout_rate", _rate_reference, [_rate_none, _rate_too_big])
def _test_dropout_rate(fn):
    choice = fn()
    if not isinstance(choice, dict) or set(choice) != {"p_drop"}:
        fail("my_dropout() must return a dict with the key p_drop", "e.g. {'p_drop': 0.1}", choice)
    p = choice["p_drop"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        fail("p_drop: the share of training sentences that lose one whole stream", "a number in [0, 1]", p)
    got = camera_off_wer(float(p))
    if got > MAX_CAMERA_OFF_WER:
        fail(f"p_drop = {p}: with the camera off, the model trained {EXP_STEPS} steps misreads {got:.3f} of the "
             "words (WER)", f"≤ {MAX_CAMERA_OFF_WER}", f"{got:.3f}", "a model that always had both streams "
             "never learned to read the audio alone: the lecture's section 6 compared both")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("07.quiz_babble", "Why does the chapter test its recognisers in babble noise rather than white noise?",
              "b",
              "babble is other speech: its energy sits in the same bands as the speaker's formants and comes and goes "
              "like words, so no filter and no loudness rule separates it; white noise is spread evenly over all "
              "frequencies and is stationary, so an audio model learns to look past it. Babble is where the second "
              "modality, which does not hear it at all, is needed.",
              choices={"a": "white noise cannot be mixed at an exact SNR",
                       "b": "babble overlaps speech in frequency and in how it changes over time, so the audio alone "
                            "cannot separate it, while the lips are untouched",
                       "c": "babble is louder than white noise at the same SNR",
                       "d": "the mouth video is disturbed by white noise"},
              wrong={"a": "any noise can be scaled to an exact SNR (`add_noise`).",
                     "c": "the SNR fixes the power ratio whatever the noise: equally loud.",
                     "d": "neither noise reaches the video; only the audio is mixed."})
register_quiz("07.quiz_low_snr", "Where along the SNR axis does the visual stream help the fused model most?", "a",
              "the video's errors do not depend on the babble, while the audio's rise as the SNR falls: at high SNR "
              "the audio alone is nearly perfect and there is little left to fix, at low SNR the lips carry what the "
              "ears lose (section 4's curves).",
              choices={"a": "at low SNR, where the audio is drowned and the lips are not",
                       "b": "at high SNR, where both streams are clean and agree",
                       "c": "equally at every SNR: the video adds a fixed amount",
                       "d": "nowhere: the fused model follows the audio"},
              wrong={"b": "at high SNR the audio alone is already nearly perfect.",
                     "c": "the video's contribution depends on how much the audio lost.",
                     "d": "the gate leans on the video as the SNR falls (section 5)."})
register_quiz("07.quiz_ctc_frames", "At least how many frames does CTC need to emit the transcript \"red red circle\"?",
              4,
              "each of the 3 words needs a frame, and the two copies of \"red\" need a blank between them — otherwise "
              "the repeat would be merged into one \"red\": red _ red circle, 4 frames.",
              wrong={3: "with 3 frames, red red circle reads as \"red circle\": repeats are merged unless a blank "
                        "separates them.",
                     6: "a blank is needed only between two copies of the same word, not between every pair."})
