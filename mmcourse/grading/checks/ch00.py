"""Chapter 00 exercises: noise at a target SNR, padding a batch of token ids, the mel scale; a question on decibels."""

from __future__ import annotations

import math

import torch

from mmcourse.data import EOT_ID, PAD_ID, SOT_ID
from mmcourse.data import add_noise as _add_noise
from mmcourse.data import pad_batch as _pad_batch
from mmcourse.data.audio import hz_to_mel as _hz_to_mel
from mmcourse.grading.core import expect_close, expect_equal, fail, register, register_quiz


# ---------------------------------------------------------------- 00.add_noise
def add_noise(signal, noise, snr_db):
    """Reference: signal + noise scaled so each row (last dim) has SNR = snr_db."""
    return _add_noise(signal, noise, snr_db)


def _noise_amplitude_ratio(signal, noise, snr_db):
    """10^(SNR/20) applied to a power ratio: dB of power are 10·log10, so powers need 10^(SNR/10)"""
    p_s, p_n = signal.pow(2).mean(-1, keepdim=True), noise.pow(2).mean(-1, keepdim=True)
    return signal + noise * torch.sqrt(p_s / (p_n * 10 ** (snr_db / 20)))


def _noise_ignores_signal_power(signal, noise, snr_db):
    """the noise scaled as if the signal had power 1: measure the signal's power too"""
    p_n = noise.pow(2).mean(-1, keepdim=True)
    return signal + noise * torch.sqrt(1 / (p_n * 10 ** (snr_db / 10)))


def _noise_whole_batch_power(signal, noise, snr_db):
    """one power for the whole batch: each row (the last dimension) needs its own"""
    return signal + noise * torch.sqrt(signal.pow(2).mean() / (noise.pow(2).mean() * 10 ** (snr_db / 10)))


def _noise_std_not_rms(signal, noise, snr_db):
    """the standard deviation instead of the root mean square: std removes the mean (wrong with a DC offset)"""
    ratio = signal.std(-1, keepdim=True) / noise.std(-1, keepdim=True)
    return signal + noise * ratio * 10 ** (-snr_db / 20)


def _snr(signal, noisy):
    return 10 * torch.log10(signal.pow(2).mean(-1) / (noisy - signal).pow(2).mean(-1))


@register("00.add_noise", add_noise,
          [_noise_amplitude_ratio, _noise_ignores_signal_power, _noise_whole_batch_power, _noise_std_not_rms])
def _test_add_noise(fn):
    g = torch.Generator().manual_seed(0)
    n = 0
    for shape, snr in [((3, 800), 10.0), ((1, 400), 0.0), ((2, 1000), -5.0), ((500,), 20.0)]:
        gain = torch.rand(*shape[:-1], 1, generator=g) * 3 + 0.1 if len(shape) > 1 else 0.5
        signal = torch.sin(torch.linspace(0, 60, shape[-1])) * gain + 0.3  # rows of different power, DC offset
        noise = torch.randn(*shape, generator=g) * 2
        before = signal.clone()
        got = fn(signal, noise, snr)
        if not torch.equal(signal, before):
            fail("your function changed `signal` in place", hint="compute a new tensor: signal + scale * noise")
        case = f"signal {tuple(shape)} at {snr:g} dB"
        if isinstance(got, torch.Tensor) and got.shape == signal.shape:
            achieved = _snr(signal, got)
            if not torch.allclose(achieved, torch.full_like(achieved, snr), atol=0.01):
                fail(f"{case}: the SNR you produced (per row) is off", f"{snr:g} dB",
                     [round(v, 2) for v in achieved.flatten().tolist()[:4]],
                     "SNR = 10·log10(P_signal / P_noise), P = mean square of each row (last dim)")
        expect_close(got, add_noise(signal, noise, snr), case, "scale the noise, add it to the signal")
        n += 1
    return n


# ---------------------------------------------------------------- 00.pad_batch
def pad_batch(rows, context_length):
    """Reference: lists of ids -> (B, context_length) long, <pad> at the end, truncation keeps <eot> last."""
    return _pad_batch(rows, context_length)


def _pad_truncate_drops_eot(rows, context_length):
    """a long row cut to context_length loses its <eot>: keep the first L-1 tokens, then <eot>"""
    ids = torch.full((len(rows), context_length), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[:context_length]
        ids[i, :len(row)] = torch.tensor(row)
    return ids


def _pad_on_the_left(rows, context_length):
    """padding at the start of the row: the course pads at the end, after <eot>"""
    ids = torch.full((len(rows), context_length), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[:context_length - 1] + [EOT_ID] if len(row) > context_length else row
        ids[i, context_length - len(row):] = torch.tensor(row)
    return ids


def _pad_as_float(rows, context_length):
    """float ids: an embedding needs integer (torch.long) ids"""
    return _pad_batch(rows, context_length).float()


# _pad_as_float first: the mistakes are told apart by values, and float ids carry the right values
@register("00.pad_batch", pad_batch, [_pad_as_float, _pad_truncate_drops_eot, _pad_on_the_left])
def _test_pad_batch(fn):
    s, e = SOT_ID, EOT_ID
    cases = [
        ([[s, 10, 11, e], [s, 12, e]], 6),
        ([[s, 10, 11, 12, 13, 14, e]], 5),  # too long: cut, and <eot> must survive as the last token
        ([[s, 20, e], [s, 21, 22, 23, 24, 25, 26, e], [s, e]], 4),
        ([[s, 30, 31, e]], 4),  # exactly full
    ]
    for rows, length in cases:
        got = fn([list(r) for r in rows], length)
        want = pad_batch(rows, length)
        if isinstance(got, torch.Tensor) and got.dtype != torch.long:
            fail(f"rows {rows}: ids must be integers (torch.long) to index an embedding", torch.long, got.dtype,
                 "float ids are a common tutorial mistake: nn.Embedding refuses them")
        expect_equal(got, want, f"rows {rows}, context_length {length}",
                     "pad with <pad>=0 at the end; a row that is too long keeps its first L-1 tokens, then <eot>")
    return len(cases)


# ---------------------------------------------------------------- 00.hz_to_mel
def hz_to_mel(f):
    """Reference: the HTK mel scale, 2595·log10(1 + f/700), for a float or a tensor."""
    return _hz_to_mel(f).to(torch.get_default_dtype()) if isinstance(f, torch.Tensor) else _hz_to_mel(f).item()


def _mel_natural_log(f):
    """the natural log with 2595: the HTK formula uses log10 with 2595 (or ln with 1127)"""
    return 2595 * torch.log1p(torch.as_tensor(f) / 700) if isinstance(f, torch.Tensor) else 2595 * math.log1p(f / 700)


def _mel_no_one(f):
    """log10(f / 700) without the 1 +: 0 Hz must be 0 mel"""
    return 2595 * torch.log10(torch.as_tensor(f) / 700) if isinstance(f, torch.Tensor) else 2595 * math.log10(f / 700)


def _mel_mixed_constants(f):
    """1127 with log10: 1127 goes with the natural log, 2595 with log10"""
    return 1127 * torch.log10(1 + torch.as_tensor(f) / 700) if isinstance(f, torch.Tensor) else 1127 * math.log10(
        1 + f / 700)


@register("00.hz_to_mel", hz_to_mel, [_mel_natural_log, _mel_no_one, _mel_mixed_constants])
def _test_hz_to_mel(fn):
    for f in (700.0, 1000.0, 4000.0, 0.0):  # 0 Hz last: log10(0) would crash a formula without the 1 +
        expect_close(fn(f), hz_to_mel(f), f"hz_to_mel({f:g})", "m = 2595 · log10(1 + f / 700); 0 Hz is 0 mel",
                     atol=1e-3, rtol=1e-6)
    freqs = torch.linspace(0, 8000, 33)
    expect_close(fn(freqs), hz_to_mel(freqs), "a tensor of 33 frequencies 0…8000 Hz",
                 "work element-wise with torch.log10 so tensors work too", atol=1e-2, rtol=1e-6)
    return 5


# ---------------------------------------------------------------- 00.quiz_snr
register_quiz(
    "00.quiz_snr",
    "At an SNR of −5 dB, the noise has how many times the power of the signal?",
    round(10 ** 0.5, 2),
    "SNR in dB is 10·log10(P_signal / P_noise), so −5 dB means P_noise / P_signal = 10^(5/10) ≈ 3.16: the noise is "
    "about three times as strong as the signal. At 0 dB the two have equal power; below 0 dB the noise is the "
    "stronger, which is where a second modality (the moving mouth) earns its keep.",
    wrong={
        1.78: "10^(5/20) is the ratio of amplitudes; decibels of power are 10·log10, so the power ratio is 10^(5/10)",
        0.32: "that is the signal's power over the noise's; at a negative SNR the noise is the stronger one",
        5.0: "decibels are logarithmic: −5 dB is a factor of 10^(5/10), not 5",
    },
    tolerance=0.02,
)
