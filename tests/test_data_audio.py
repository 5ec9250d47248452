"""Synthetic speech, noise at an exact SNR, object sounds and the log-mel front end."""

import math

import pytest
import torch

from mmcourse.data import (
    COLOUR_PITCH,
    SPEECH_WORDS,
    add_noise,
    babble_noise,
    log_mel_spectrogram,
    mel_filterbank,
    object_sounds,
    random_sentences,
    speak,
    white_noise,
)


def snr_of(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    noise = noisy - clean
    return 10 * torch.log10(clean.pow(2).mean(-1) / noise.pow(2).mean(-1))


def test_speech_is_deterministic_and_words_are_where_the_timings_say():
    sentences = random_sentences(20, 0)
    a, b, c = speak(sentences, 1), speak(sentences, 1), speak(sentences, 2)
    assert torch.equal(a.wave, b.wave) and not torch.equal(a.wave, c.wave)
    assert all(2 <= len(s) <= 4 for s in sentences) and a.transcripts() == [" ".join(s) for s in sentences]
    for i in range(len(a)):
        inside = torch.zeros(a.wave.shape[1], dtype=torch.bool)
        for word, start, end in a.timings(i):
            inside[round(start * 8000):round(end * 8000)] = True
            assert word in SPEECH_WORDS
        assert a.wave[i, ~inside].abs().sum() == 0  # silence between and around words
        assert a.wave[i, inside].pow(2).mean() > 1e-3
        assert a.wave[i, a.lengths[i]:].abs().sum() == 0
    targets, lengths = a.ctc_targets()
    assert lengths.tolist() == [len(s) for s in sentences]
    assert [[SPEECH_WORDS[t - 1] for t in row[:n]] for row, n in zip(targets.tolist(), lengths.tolist(),
                                                                        strict=True)] == sentences


def test_each_word_has_its_own_formants():
    words = [[w] for w in SPEECH_WORDS]
    speech = speak(words, 0, vary_speaker=False)
    spectra = torch.stack([torch.fft.rfft(speech.wave[i]).abs()[:4000] for i in range(len(words))])
    spectra = spectra / spectra.norm(dim=1, keepdim=True)
    similarity = spectra @ spectra.T
    off_diagonal = similarity[~torch.eye(len(words), dtype=torch.bool)]
    assert off_diagonal.max() < 0.9  # no two words sound alike


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 7.5, 20.0])
def test_add_noise_hits_the_exact_snr(snr_db):
    speech = speak(random_sentences(6, 3), 3).wave
    for noise in (white_noise(speech.shape, 1), babble_noise(6, speech.shape[1], 2)):
        noisy = add_noise(speech, noise, snr_db)
        assert torch.allclose(snr_of(speech, noisy), torch.full((6,), snr_db), atol=1e-3)


def test_add_noise_per_row_snr_and_lengths():
    speech = speak(random_sentences(4, 4), 4)
    snr = torch.tensor([-3.0, 0.0, 3.0, 10.0])
    noisy = add_noise(speech.wave, white_noise(speech.wave.shape, 5), snr, lengths=speech.lengths)
    for i, n in enumerate(speech.lengths.tolist()):
        assert torch.allclose(snr_of(speech.wave[i, :n], noisy[i, :n]), snr[i], atol=1e-3)
        assert torch.equal(noisy[i, n:], speech.wave[i, n:])  # padding stays untouched


def test_add_noise_bad_input():
    x = torch.randn(2, 100)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="finite"):
            add_noise(x, torch.randn(2, 100), bad)
    with pytest.raises(ValueError, match="empty"):
        add_noise(torch.zeros(2, 0), torch.zeros(2, 0), 0.0)
    with pytest.raises(ValueError, match="silent"):
        add_noise(x, torch.zeros(2, 100), 0.0)
    with pytest.raises(ValueError, match=r"noise: expected shape \(2, 100\)"):
        add_noise(x, torch.randn(2, 99), 0.0)


def hz_to_mel(f):
    return 2595 * math.log10(1 + f / 700)


def mel_to_hz(m):
    return 700 * (10 ** (m / 2595) - 1)


def test_mel_filterbank_by_hand_tiny_config():
    # bins at 0, 1000, 2000, 3000, 4000 Hz; one filter from 0 Hz, peaking at the mel midpoint, to 4000 Hz
    fb = mel_filterbank(5, 8000, 1)
    peak = mel_to_hz(hz_to_mel(4000) / 2)
    expected = [0.0, 1000 / peak, (4000 - 2000) / (4000 - peak), (4000 - 3000) / (4000 - peak), 0.0]
    assert fb.shape == (5, 1)
    assert torch.allclose(fb[:, 0].double(), torch.tensor(expected, dtype=torch.float64), atol=1e-6)


def test_mel_filterbank_triangles_peak_at_equally_spaced_mel_centres():
    n_freqs, sr, n_mels, f_min, f_max = 4001, 8000, 10, 100.0, 3800.0  # a 1 Hz grid
    fb = mel_filterbank(n_freqs, sr, n_mels, f_min, f_max)
    step = (hz_to_mel(f_max) - hz_to_mel(f_min)) / (n_mels + 1)
    centres = [mel_to_hz(hz_to_mel(f_min) + step * (m + 1)) for m in range(n_mels)]
    assert fb.argmax(0).tolist() == [round(c) for c in centres]
    assert torch.allclose(fb.max(0).values, torch.ones(n_mels), atol=2e-3)
    assert (fb >= 0).all() and fb[:int(f_min)].abs().max() == 0 and fb[int(f_max) + 1:].abs().max() == 0
    # neighbouring triangles cross at half height halfway (in Hz) between their centres
    lower, upper = round(centres[3]), round(centres[4])
    between = fb[lower + 1:upper, 3] + fb[lower + 1:upper, 4]
    assert torch.allclose(between, torch.ones_like(between), atol=1e-4)


def test_log_mel_of_a_tone_peaks_in_the_band_of_its_frequency():
    t = torch.arange(8000) / 8000
    tone = torch.sin(2 * math.pi * 1000 * t)
    spec = log_mel_spectrogram(tone.expand(3, -1), n_fft=256, hop_length=80, n_mels=40)
    assert spec.shape == (3, 40, 8000 // 80 + 1)
    fb = mel_filterbank(129, 8000, 40)
    assert spec[0, :, 50].argmax() == fb[32].argmax()  # bin 32 of a 256-point FFT at 8 kHz is 1000 Hz
    with pytest.raises(ValueError, match="empty"):
        log_mel_spectrogram(torch.zeros(0))
    with pytest.raises(ValueError, match="samples"):
        log_mel_spectrogram(torch.zeros(100), n_fft=256)


def test_log_mel_equals_torchaudio():
    torchaudio = pytest.importorskip("torchaudio")
    wave = speak(random_sentences(3, 6), 6).wave
    for n_fft, hop, n_mels in ((256, 80, 40), (400, 160, 64)):
        mel = torchaudio.transforms.MelSpectrogram(8000, n_fft=n_fft, hop_length=hop, n_mels=n_mels)
        reference = mel(wave)
        ours = log_mel_spectrogram(wave, 8000, n_fft, hop, n_mels)
        assert torch.allclose(ours, torch.log(reference.clamp(min=1e-10)), atol=2e-3)
        fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, 4000.0, n_mels, 8000)
        assert torch.allclose(mel_filterbank(n_fft // 2 + 1, 8000, n_mels), fb, atol=1e-5)


def test_object_sounds_pitch_follows_colour_and_timbre_follows_shape():
    colour = torch.arange(8).repeat_interleave(3)
    shape = torch.arange(3).repeat(8)
    sounds = object_sounds(colour, shape, 0, duration=1.0)
    spectrum = torch.fft.rfft(sounds).abs()  # 1 Hz bins
    for i in range(len(colour)):
        f0 = spectrum[i].argmax().item()  # the loudest partial is the fundamental, the colour's pitch
        assert abs(f0 - COLOUR_PITCH[colour[i]]) < 0.03 * f0
        second = spectrum[i, 2 * f0 - 3:2 * f0 + 4].max() / spectrum[i].max()
        if shape[i] == 1:  # square: odd harmonics only
            assert second < 0.05
        else:
            assert second > 0.2
    assert torch.allclose(sounds.pow(2).mean(1).sqrt(), torch.full((24,), 0.1), atol=1e-4)
    with pytest.raises(ValueError, match="colour indices"):
        object_sounds(torch.tensor([8]), torch.tensor([0]))
