"""Chapter 07's audio-visual speech recogniser: spoken sentences of the world's 16 words with the talking mouth,
babble noise at a chosen SNR, four models (audio only, video only, concatenation and gated fusion) trained with CTC.
The zoo entry "avsr-tiny" is the four, trained by this recipe.

    data = utterances(POOL)                       # speech, mouth video, CTC targets
    babble = babble_bank(data)                    # other talkers, mixed in at a random SNR per utterance
    models = build(); train(models, data)         # nn.ModuleDict: audio, video, concat, gated; STEPS each
    wer_by_snr(models, *test_set())               # {name: WER at each of SNRS} on 300 new sentences

The mouth camera is noisy (CAMERA_NOISE), so that the lips alone are an imperfect witness, as in real lip reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmcourse.data.audio import (
    SPEECH_WORDS,
    Speech,
    add_noise,
    babble_noise,
    log_mel_spectrogram,
    random_sentences,
    speak,
)
from mmcourse.data.video import talking_mouth
from mmcourse.metrics.speech import word_error_rate
from mmcourse.models.avsr import AVSR, ctc_greedy_decode, ctc_loss
from mmcourse.nn.fusion import modality_dropout
from mmcourse.train import History, fit
from mmcourse.utils import check_number, get_device, make_generator, seed_everything

__all__ = ["VERSION", "MODELS", "POOL", "STEPS", "BATCH_SIZE", "HYPER", "TRAIN_SNR", "P_CLEAN", "P_DROP", "SNRS",
           "CAMERA_NOISE", "Utterances", "utterances", "babble_bank", "batch", "build", "train_one", "train",
           "transcribe", "wer", "test_set", "wer_by_snr"]

VERSION = 1
MODELS = {"audio": ("audio", "concat"), "video": ("video", "concat"), "concat": ("audio+video", "concat"),
          "gated": ("audio+video", "gated")}  # name -> (streams, fusion)
POOL = 3000
STEPS = 600
BATCH_SIZE = 32
HYPER = dict(lr=3e-3, weight_decay=0.01, warmup=50, grad_clip=1.0)
TRAIN_SNR = (-10.0, 20.0)  # dB, uniform per utterance
P_CLEAN = 0.2  # and this share of training utterances without noise
P_DROP = 0.25  # modality dropout of the fused models
SNRS = (-5, 0, 5, 10, 20)
CAMERA_NOISE = 0.25  # std of the mouth video's pixel noise (lips 0.40 on skin 0.75: about their contrast)


@dataclass
class Utterances:
    """speech (B utterances), video (B, T, 1, 16, 16) mouth frames, lengths (B,) video frames, targets (B, J) word
    ids + 1 and target_lengths (B,)."""
    speech: Speech
    video: Tensor
    lengths: Tensor
    targets: Tensor
    target_lengths: Tensor

    def __len__(self) -> int:
        return len(self.speech)

    def transcripts(self) -> list[str]:
        return self.speech.transcripts()


def utterances(n: int, seed: int = 0, min_words: int = 2, max_words: int = 4) -> Utterances:
    speech = speak(random_sentences(n, seed, min_words, max_words), seed)
    video, lengths = talking_mouth(speech, seed=seed, noise=CAMERA_NOISE)
    return Utterances(speech, video, lengths, *speech.ctc_targets())


def babble_bank(data: Utterances, n: int = 256, seed: int = 0) -> Tensor:
    """(n, samples) babble rows as long as data's waves."""
    return babble_noise(n, data.speech.wave.shape[1], seed)


def batch(data: Utterances, index: Tensor, snr_db: Tensor | float | None, babble: Tensor | None = None,
          noise_rows: Tensor | None = None, clean: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(mel (B, 40, 2T'), video (B, T', 1, 16, 16), lengths (B,)) of utterances `index`, cropped to their longest,
    with babble row noise_rows[b] mixed in at snr_db[b] (None: all clean; `clean` (B,) bool: those rows clean)."""
    lengths = data.lengths[index]
    T = int(lengths.max())
    wave = data.speech.wave[index, :T * 160]
    if snr_db is not None:
        rows = torch.arange(len(index)) % len(babble) if noise_rows is None else noise_rows
        speech_lengths = data.speech.lengths[index].clamp(max=wave.shape[1])
        noisy = add_noise(wave, babble[rows, :wave.shape[1]], snr_db, speech_lengths)
        wave = noisy if clean is None else torch.where(clean[:, None], wave, noisy)
    mel = log_mel_spectrogram(wave)[..., :2 * T]
    return mel, data.video[index, :T], lengths


def build(seed: int = 0) -> nn.ModuleDict:
    seed_everything(seed)
    return nn.ModuleDict({name: AVSR(len(SPEECH_WORDS), streams, fusion) for name, (streams, fusion) in MODELS.items()})


def train_one(model: AVSR, data: Utterances, babble: Tensor, steps: int = STEPS, p_drop: float = P_DROP,
              seed: int = 0, device=None, **fit_kw) -> History:
    """CTC on random batches at a random babble SNR; fused models drop a whole stream with probability p_drop."""
    check_number(p_drop, "p_drop", low=0, high=1)
    device = device or get_device()
    g = make_generator(seed, "avsr-batches")

    def loss_fn(m, step):
        index = torch.randint(len(data), (BATCH_SIZE,), generator=g)
        snr = TRAIN_SNR[0] + (TRAIN_SNR[1] - TRAIN_SNR[0]) * torch.rand(BATCH_SIZE, generator=g)
        rows = torch.randint(len(babble), (BATCH_SIZE,), generator=g)
        clean = torch.rand(BATCH_SIZE, generator=g) < P_CLEAN
        mel, video, lengths = batch(data, index, snr, babble, rows, clean)
        if m.streams == "audio+video" and p_drop:
            mel, video = modality_dropout(mel, video, p_drop, g)
        mel, video, lengths = mel.to(device), video.to(device), lengths.to(device)
        return ctc_loss(m(mel, video, lengths), lengths, data.targets[index].to(device),
                        data.target_lengths[index].to(device))

    seed_everything(seed)
    return fit(model, loss_fn, lambda s: s, steps, **{**HYPER, "device": device, **fit_kw})


def train(models: nn.ModuleDict, data: Utterances | None = None, seed: int = 0, **kw) -> History:
    """Each model by `train_one` on the same utterances and babble. The History returned keeps them all: `loss` is
    the gated model's, `evals` the mean loss of every model over each window of 10 steps, `seconds` the total."""
    data = utterances(POOL, seed=7) if data is None else data
    babble = babble_bank(data, seed=8)
    runs = {name: train_one(m, data, babble, seed=seed, desc=f"avsr {name}", **kw) for name, m in models.items()}
    steps = len(runs["gated"].loss)
    evals = [{"step": s + 10, **{name: sum(h.loss[s:s + 10]) / len(h.loss[s:s + 10]) for name, h in runs.items()}}
             for s in range(0, steps, 10)]
    return History(runs["gated"].loss, evals, sum(h.seconds for h in runs.values()))


@torch.no_grad()
def transcribe(model: AVSR, mel: Tensor, video: Tensor, lengths: Tensor) -> list[str]:
    model.eval()
    device = next(model.parameters()).device
    log_probs = model(mel.to(device), video.to(device), lengths.to(device))
    return [" ".join(SPEECH_WORDS[c - 1] for c in ids) for ids in ctc_greedy_decode(log_probs.cpu(), lengths.cpu())]


def wer(model: AVSR, data: Utterances, snr_db: float | None, babble: Tensor | None = None, chunk: int = 100) -> float:
    """Corpus WER of `model` on `data`, utterance b mixed with babble row b % len(babble) at snr_db (None: clean)."""
    hyps = []
    for lo in range(0, len(data), chunk):
        index = torch.arange(lo, min(lo + chunk, len(data)))
        snr = None if snr_db is None else torch.full((len(index),), float(snr_db))
        rows = None if babble is None else index % len(babble)
        hyps += transcribe(model, *batch(data, index, snr, babble, rows))
    return word_error_rate(hyps, data.transcripts())


def test_set(n: int = 300, seed: int = 1001) -> tuple[Utterances, Tensor]:
    """n new utterances and one babble row for each (never seen in training)."""
    data = utterances(n, seed)
    return data, babble_bank(data, n=n, seed=seed + 1)


def wer_by_snr(models: dict | nn.ModuleDict, data: Utterances, babble: Tensor, snrs=SNRS) -> dict[str, list[float]]:
    """{model name: [WER at each SNR in dB]} on data, utterance b mixed with babble row b."""
    return {name: [wer(m, data, s, babble) for s in snrs] for name, m in models.items()}
