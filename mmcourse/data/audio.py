"""Sound of the shapes world at 8 kHz: synthetic speech, noise at an exact SNR, object sounds, log-mel.

Speech: each word of SPEECH_WORDS is two formant tones (F1, F2, gliding) amplitude-modulated at the
speaker's pitch, under a smooth loudness envelope; sentences are words with gaps, with word timings kept.
Object sounds (for AudioCLIP-style tasks): colour -> pitch, shape -> timbre and envelope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.data.world import COLOUR_NAMES, SHAPES, Scenes, check_names, check_scenes
from mmcourse.utils import check_number, check_sizes, check_tensor, describe, make_generator

__all__ = [
    "SAMPLE_RATE", "SPEECH_WORDS", "WORD_FORMANTS", "COLOUR_PITCH", "Speech", "random_sentences", "speak",
    "add_noise", "white_noise", "babble_noise", "object_sounds", "scene_sounds", "hz_to_mel", "mel_to_hz",
    "mel_filterbank", "log_mel_spectrogram",
]

SAMPLE_RATE = 8000
SPEECH_WORDS = ("one", "two", "three", "four", "five") + COLOUR_NAMES + SHAPES  # 16 words
F1 = (300.0, 450.0, 650.0, 850.0)  # first formant: how open the jaw is
F2 = (1100.0, 1500.0, 1900.0, 2400.0)  # second formant: how spread the lips are
# word -> (F1 Hz, F2 Hz, formant glide over the word, duration s): every word a distinct (F1, F2) pair
WORD_FORMANTS = torch.tensor([
    (F1[i % 4], F2[i // 4], (-0.15, 0.0, 0.15)[i % 3], (0.20, 0.26, 0.32)[(i // 2) % 3])
    for i in range(len(SPEECH_WORDS))
])
# colour -> pitch of its object sound: the C major scale from middle C
COLOUR_PITCH = tuple(261.63 * 2 ** (k / 12) for k in (0, 2, 4, 5, 7, 9, 11, 12))
ATTACK, RELEASE = 0.03, 0.06  # seconds of the word envelope's rise and fall


@dataclass
class Speech:
    """A batch of B synthetic utterances (padded with zeros after each length).

    wave, envelope: (B, S) float; envelope is the loudness contour in [0, 1] (it drives the mouth video).
    lengths: (B,) samples. word_ids, starts, ends: (B, J) long (index into SPEECH_WORDS and sample
    positions of each word; -1 / 0 after the last word).
    """

    wave: Tensor
    envelope: Tensor
    lengths: Tensor
    word_ids: Tensor
    starts: Tensor
    ends: Tensor
    sample_rate: int = SAMPLE_RATE

    def __len__(self) -> int:
        return self.wave.shape[0]

    def words(self, i: int) -> list[str]:
        return [SPEECH_WORDS[w] for w in self.word_ids[i].tolist() if w >= 0]

    def transcripts(self) -> list[str]:
        return [" ".join(self.words(i)) for i in range(len(self))]

    def timings(self, i: int) -> list[tuple[str, float, float]]:
        """[(word, start s, end s), ...] of utterance i."""
        sr = self.sample_rate
        return [(SPEECH_WORDS[w], s / sr, e / sr)
                for w, s, e in zip(self.word_ids[i].tolist(), self.starts[i].tolist(), self.ends[i].tolist(),
                                   strict=True) if w >= 0]

    def ctc_targets(self) -> tuple[Tensor, Tensor]:
        """CTC targets (B, J): word id + 1 (0 is the blank, also used as padding), and target lengths (B,)."""
        return (self.word_ids + 1).clamp(min=0), (self.word_ids >= 0).sum(1)


def random_sentences(n: int, seed: int | torch.Generator = 0, min_words: int = 2, max_words: int = 4,
                     words=SPEECH_WORDS) -> list[list[str]]:
    """n random word sequences of min_words..max_words words drawn from `words` (names in SPEECH_WORDS)."""
    words = check_names(words, SPEECH_WORDS, "speech word", "words")
    check_sizes(n=n, max_words=max_words)
    check_number(min_words, "min_words", integer=True, low=1, high=max_words)
    g = make_generator(seed, "sentences")
    lengths = torch.randint(min_words, max_words + 1, (n,), generator=g).tolist()
    picks = torch.randint(len(words), (n, max_words), generator=g).tolist()
    return [[words[k] for k in row[:L]] for row, L in zip(picks, lengths, strict=True)]


def speak(sentences: list[list[str]], seed: int | torch.Generator = 0, *, sample_rate: int = SAMPLE_RATE,
          gap: tuple[float, float] = (0.04, 0.12), vary_speaker: bool = True) -> Speech:
    """Synthesise one utterance per sentence (a list of SPEECH_WORDS), vectorised over the batch.

    Each utterance gets a random speaker (pitch 90-220 Hz, formants x0.95-1.05, rate x0.9-1.1) unless
    vary_speaker=False, random gaps between words (seconds, uniform in `gap`) and random word loudness.
    """
    if isinstance(sentences, str) or not isinstance(sentences, (list, tuple)) or not sentences:
        raise ValueError(f"sentences: expected a non-empty list of word lists, got {describe(sentences)}")
    for i, s in enumerate(sentences):
        check_names(s, SPEECH_WORDS, "speech word", f"sentences[{i}]")
    check_sizes(sample_rate=sample_rate)
    if not isinstance(gap, (tuple, list)) or len(gap) != 2:
        raise TypeError(f"gap: expected (shortest, longest) seconds, got {describe(gap)}")
    for g in gap:
        check_number(g, "gap", low=0)
    B, J = len(sentences), max(len(s) for s in sentences)
    wid = torch.tensor([[SPEECH_WORDS.index(w) for w in s] + [-1] * (J - len(s)) for s in sentences])
    real = wid >= 0
    g = make_generator(seed, "speak")
    u = torch.rand(B, 4, generator=g) if vary_speaker else torch.full((B, 4), 0.5)
    f0, formant_scale, rate = 90 + 130 * u[:, 0], 0.95 + 0.1 * u[:, 1], 0.9 + 0.2 * u[:, 2]
    lead = 0.05 + 0.1 * u[:, 3]
    loud = 0.85 + 0.15 * torch.rand(B, J, generator=g)
    gaps = gap[0] + (gap[1] - gap[0]) * torch.rand(B, J, generator=g)
    phase0 = 2 * math.pi * torch.rand(B, J, 3, generator=g)
    f1, f2, glide, dur = WORD_FORMANTS[wid.clamp(min=0)].unbind(-1)  # (B, J) each
    n_samples = torch.where(real, (dur * rate[:, None] * sample_rate).round(), 0).long()
    step = n_samples + torch.where(real, (gaps * sample_rate).round().long(), 0)
    starts = (lead[:, None] * sample_rate).round().long() + step.cumsum(1) - step
    ends = starts + n_samples
    lengths = ends.max(1).values + int(0.1 * sample_rate)

    Lw = int(n_samples.max())
    t = torch.arange(Lw) / sample_rate  # (Lw,) time inside a word
    D = (n_samples / sample_rate)[..., None]  # (B, J, 1) word durations
    rise = (t / ATTACK).clamp(max=1)
    fall = ((D - t) / RELEASE).clamp(0, 1)
    envelope = torch.sin(0.5 * math.pi * torch.minimum(rise, fall)) ** 2 * loud[..., None]  # 0 after the word

    def glide_phase(f_start: Tensor) -> Tensor:  # phase of a tone gliding linearly to f_start * (1 + glide)
        f_start = (f_start * formant_scale[:, None])[..., None]
        slope = f_start * glide[..., None] / D.clamp(min=1e-3)
        return 2 * math.pi * (f_start * t + 0.5 * slope * t**2)

    pitch = 1 + 0.8 * torch.cos(2 * math.pi * f0[:, None, None] * t + phase0[..., :1])
    tones = torch.sin(glide_phase(f1) + phase0[..., 1:2]) + 0.5 * torch.sin(glide_phase(f2) + phase0[..., 2:])
    word_waves = 0.3 * envelope * pitch * tones  # (B, J, Lw), |x| < 0.82

    S = int(lengths.max())
    index = (starts[..., None] + torch.arange(Lw)).flatten(1)  # (B, J * Lw) sample positions
    wave = torch.zeros(B, S + Lw).scatter_add_(1, index, word_waves.flatten(1))[:, :S]
    env = torch.zeros(B, S + Lw).scatter_add_(1, index, envelope.flatten(1))[:, :S]
    starts, ends = torch.where(real, starts, 0), torch.where(real, ends, 0)
    return Speech(wave, env, lengths, wid, starts, ends, sample_rate)


# ------------------------------------------------------------------------------------------- noise
def add_noise(signal: Tensor, noise: Tensor, snr_db, lengths: Tensor | None = None) -> Tensor:
    """signal + noise scaled so that each row (last dim) has exactly the given SNR in dB.

    SNR = 10 log10(P_signal / P_noise), with P the mean square. snr_db: a number or a tensor broadcastable
    to the leading dims. lengths (B,): only the first lengths[b] samples count, and noise is added there only.
    """
    check_tensor(signal, "signal", dtype="float")
    check_tensor(noise, "noise", shape=tuple(signal.shape), dtype="float")
    if signal.numel() == 0 or signal.shape[-1] == 0:
        raise ValueError(f"add_noise: empty signal of shape {tuple(signal.shape)}")
    if not isinstance(snr_db, Tensor):
        check_number(snr_db, "snr_db")
    snr_db = torch.as_tensor(snr_db, dtype=signal.dtype, device=signal.device)
    if not torch.isfinite(snr_db).all():
        raise ValueError(f"add_noise: snr_db must be finite, got {snr_db.tolist()}")
    mask = torch.ones_like(signal)
    if lengths is not None:
        check_tensor(lengths, "lengths", shape=tuple(signal.shape[:-1]), dtype="int")
        mask = (torch.arange(signal.shape[-1], device=signal.device) < lengths[..., None]).to(signal.dtype)
    count = mask.sum(-1).clamp(min=1)
    p_signal = (signal**2 * mask).sum(-1) / count
    p_noise = (noise**2 * mask).sum(-1) / count
    if (p_signal == 0).any() or (p_noise == 0).any():
        raise ValueError("add_noise: the signal or the noise is silent (zero power) in a row; SNR undefined")
    scale = torch.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    return signal + scale[..., None] * noise * mask


def white_noise(shape, seed: int | torch.Generator = 0) -> Tensor:
    """Gaussian white noise of the given shape (std 1)."""
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"shape: expected a tuple of sizes, got {describe(shape)}")
    shape = tuple(check_number(s, "shape", integer=True, low=0) for s in shape)
    return torch.randn(shape, generator=make_generator(seed, "white"))


def babble_noise(n: int, num_samples: int, seed: int | torch.Generator = 0, talkers: int = 4,
                 pool: int = 32, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """(n, num_samples) babble: each row the sum of `talkers` random stretches of other synthetic speech.

    Babble overlaps speech in frequency (unlike white noise), which is what makes lip reading useful.
    """
    check_sizes(n=n, num_samples=num_samples, talkers=talkers, pool=pool, sample_rate=sample_rate)
    g = make_generator(seed, "babble")
    words_needed = math.ceil(2 * num_samples / sample_rate / 0.2) + 1  # a word lasts >= 0.2 s
    sentences = random_sentences(pool, g, words_needed, words_needed)
    talk = speak(sentences, g, sample_rate=sample_rate, gap=(0.0, 0.05)).wave  # (pool, >= 2 num_samples)
    who = torch.randint(pool, (n, talkers), generator=g)
    offset = torch.randint(talk.shape[1] - num_samples, (n, talkers), generator=g)
    stretches = [talk[w, o:o + num_samples] for w, o in zip(who.flatten().tolist(), offset.flatten().tolist(),
                                                             strict=True)]
    return torch.stack(stretches).view(n, talkers, num_samples).sum(1)


# ------------------------------------------------------------------------------------ object sounds
HARMONICS = 10
SHAPE_TIMBRE = torch.tensor([  # amplitude of harmonics 1..10 per shape
    [1.0, 0.3, 0.1] + [0.0] * 7,  # circle: almost a pure tone
    [1 / k if k % 2 else 0.0 for k in range(1, HARMONICS + 1)],  # square: odd harmonics, hollow
    [1 / k for k in range(1, HARMONICS + 1)],  # triangle: all harmonics, bright
])


def object_sounds(colour: Tensor, shape: Tensor, seed: int | torch.Generator = 0, duration: float = 0.4,
                  sample_rate: int = SAMPLE_RATE) -> Tensor:
    """(M, duration * sample_rate) sound signature of M objects: colour -> pitch, shape -> timbre.

    circle: soft pure tone (smooth swell); square: hollow odd-harmonic buzz (sustained);
    triangle: bright plucked tone (fast decay). Small random detuning; each sound has RMS 0.1.
    """
    check_tensor(colour, "colour", ndim=1, dtype="int")
    check_tensor(shape, "shape", shape=(colour.shape[0],), dtype="int")
    check_number(duration, "duration", low=0, low_open=True)
    check_sizes(sample_rate=sample_rate)
    if colour.numel() and not (0 <= int(colour.min()) and int(colour.max()) < len(COLOUR_NAMES)):
        raise ValueError(f"colour indices must be in 0..{len(COLOUR_NAMES) - 1}, got {colour.tolist()[:10]}")
    if shape.numel() and not (0 <= int(shape.min()) and int(shape.max()) < len(SHAPES)):
        raise ValueError(f"shape indices must be in 0..{len(SHAPES) - 1}, got {shape.tolist()[:10]}")
    g = make_generator(seed, "object_sounds")
    colour, shape, M = colour.cpu(), shape.cpu(), len(colour)
    f0 = torch.tensor(COLOUR_PITCH)[colour] * (1 + 0.01 * torch.randn(M, generator=g))
    phase = 2 * math.pi * torch.rand(M, HARMONICS, generator=g)
    t = torch.arange(round(duration * sample_rate)) / sample_rate
    wave = torch.zeros(M, len(t))
    for k in range(1, HARMONICS + 1):
        amplitude = SHAPE_TIMBRE[shape, k - 1] * (k * f0 < sample_rate / 2)  # nothing above Nyquist
        wave += amplitude[:, None] * torch.sin(2 * math.pi * k * f0[:, None] * t + phase[:, k - 1, None])
    swell = torch.sin(math.pi * t / duration) ** 2
    sustain = (t / 0.01).clamp(max=1) * ((duration - t) / 0.03).clamp(0, 1)
    pluck = (t / 0.005).clamp(max=1) * torch.exp(-t / 0.12)
    envelope = torch.stack([swell, sustain, pluck])[shape]  # (M, S)
    wave = wave * envelope
    return 0.1 * wave / wave.pow(2).mean(1, keepdim=True).sqrt().clamp(min=1e-8)


def scene_sounds(scenes: Scenes, seed: int | torch.Generator = 0, duration: float = 0.4,
                 sample_rate: int = SAMPLE_RATE) -> tuple[Tensor, Tensor]:
    """Each scene's objects sounding one after another, left to right: wave (N, K * S), lengths (N,)."""
    check_scenes(scenes)
    N, K = scenes.shape.shape
    x = torch.where(scenes.present, scenes.center[..., 0], math.inf).cpu()
    order = x.argsort(1)  # left to right, empty slots last
    colour, shape = scenes.colour.cpu().gather(1, order), scenes.shape.cpu().gather(1, order)
    present = shape >= 0
    sounds = object_sounds(colour[present], shape[present], seed, duration, sample_rate)
    S = sounds.shape[1]
    out = torch.zeros(N, K, S)
    out[present] = sounds
    return out.view(N, K * S), present.sum(1) * S


# ------------------------------------------------------------------------------------------ log-mel
def hz_to_mel(f):
    """HTK mel scale: 2595 log10(1 + f / 700)."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (torch.as_tensor(m, dtype=torch.float64) / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, sample_rate: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> Tensor:
    """(n_freqs, n_mels) triangular filters, equally spaced on the HTK mel scale (no area normalisation).

    Filter m rises linearly from mel point m to a peak of 1 at point m + 1 and falls to 0 at point m + 2,
    for n_mels + 2 points from f_min to f_max (default: Nyquist). Same as torchaudio's melscale_fbanks.
    """
    check_sizes(n_freqs=n_freqs, sample_rate=sample_rate, n_mels=n_mels)
    f_max = sample_rate / 2 if f_max is None else check_number(f_max, "f_max")
    if not 0 <= check_number(f_min, "f_min") < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}")
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)[:, None]  # STFT bin centres
    points = mel_to_hz(torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2,
                                      dtype=torch.float64))
    lower, centre, upper = points[:-2], points[1:-1], points[2:]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.minimum(rising, falling).clamp(min=0).float()


def log_mel_spectrogram(wave: Tensor, sample_rate: int = SAMPLE_RATE, n_fft: int = 256, hop_length: int = 80,
                        n_mels: int = 40, f_min: float = 0.0, f_max: float | None = None,
                        floor: float = 1e-10) -> Tensor:
    """log(max(mel power, floor)) of wave (..., S) -> (..., n_mels, frames), frames = S // hop_length + 1.

    Power spectrogram |STFT|^2 (periodic Hann window of n_fft, centred frames with reflect padding), then
    the HTK mel filterbank: equal to torchaudio.transforms.MelSpectrogram with its defaults, then the log.
    """
    check_tensor(wave, "wave", dtype="float")
    check_sizes(n_fft=n_fft, hop_length=hop_length)
    check_number(floor, "floor", low=0, low_open=True)
    if wave.ndim == 0 or wave.numel() == 0:
        raise ValueError(f"log_mel_spectrogram: empty wave of shape {tuple(wave.shape)}")
    if wave.shape[-1] <= n_fft // 2:
        raise ValueError(f"log_mel_spectrogram: wave has {wave.shape[-1]} samples, need more than "
                         f"n_fft // 2 = {n_fft // 2} (reflect padding)")
    lead = wave.shape[:-1]
    window = torch.hann_window(n_fft, dtype=wave.dtype, device=wave.device)
    stft = torch.stft(wave.reshape(-1, wave.shape[-1]), n_fft, hop_length, window=window, center=True,
                      pad_mode="reflect", return_complex=True)  # (B, n_fft // 2 + 1, frames)
    power = stft.abs() ** 2
    fb = mel_filterbank(n_fft // 2 + 1, sample_rate, n_mels, f_min, f_max).to(wave.device, wave.dtype)
    mel = torch.einsum("bft,fm->bmt", power, fb)
    return torch.log(mel.clamp(min=floor)).reshape(*lead, n_mels, -1)
