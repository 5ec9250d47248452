"""Chapter 07's audio-visual speech recogniser (CTC over fused audio and lips), the gated fusion it uses, AudioCLIP,
and the cheap parts of their recipes. Small untrained models only: these tests check the wiring, not the accuracy."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.data.audio import SPEECH_WORDS
from mmcourse.losses.contrastive import clip_loss
from mmcourse.models.audioclip import AudioCLIP
from mmcourse.models.avsr import AVSR, TemporalConv, VisualFrontEnd, ctc_greedy_decode, ctc_loss, frame_mask
from mmcourse.nn.fusion import GatedFusion
from mmcourse.recipes import audioclip_tiny, avsr_tiny

COMBOS = list(avsr_tiny.MODELS.values())  # (streams, fusion): audio, video, concat, gated
IDS = list(avsr_tiny.MODELS)
def avsr(streams="audio+video", fusion="gated"):
    torch.manual_seed(0)
    return AVSR(10, streams, fusion, dim=16, size=8, blocks=2).eval()


def inputs(lengths=(9, 6, 4), seed=1):
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    return torch.randn(B, 40, 2 * T, generator=g), torch.rand(B, T, 1, 8, 8, generator=g), torch.tensor(lengths)


def log_probs_of(paths, C=5):
    """(B, T) class paths -> (B, T, C) log-probs whose argmax is the path."""
    return (F.one_hot(torch.tensor(paths), C) * 5.0).log_softmax(-1)


# CTC

def test_ctc_loss_is_torch_ctc_on_time_major_log_probs_with_ragged_lengths():
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        B, T, C, J = 5, 12, 6, 4
        log_probs = torch.randn(B, T, C, generator=g).log_softmax(-1)
        lengths = torch.randint(8, T + 1, (B,), generator=g)
        target_lengths = torch.randint(1, J + 1, (B,), generator=g)
        targets = torch.randint(1, C, (B, J), generator=g) * frame_mask(target_lengths, J)  # 0-padded
        ours = ctc_loss(log_probs, lengths, targets, target_lengths)
        torch.testing.assert_close(ours, F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths,
                                                    blank=0, reduction="mean", zero_infinity=True))
        each = F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, target_lengths, reduction="none")
        torch.testing.assert_close(ours, (each / target_lengths).mean())  # 'mean': per target token, then batch


def test_ctc_loss_sums_every_alignment_that_collapses_to_the_target():
    g = torch.Generator().manual_seed(0)
    log_probs = torch.randn(2, 4, 3, generator=g).log_softmax(-1)
    lengths, targets, target_lengths = torch.tensor([4, 3]), torch.tensor([[1, 1], [2, 0]]), torch.tensor([2, 1])

    def collapse(path):
        return [c for i, c in enumerate(path) if c != 0 and (i == 0 or c != path[i - 1])]

    losses = []
    for b in range(2):
        n, want = int(lengths[b]), targets[b, :target_lengths[b]].tolist()
        paths = [p for p in itertools.product(range(3), repeat=n) if collapse(list(p)) == want]
        p = sum(math.exp(sum(log_probs[b, t, c].item() for t, c in enumerate(path))) for path in paths)
        losses.append(-math.log(p) / len(want))
    assert ctc_loss(log_probs, lengths, targets, target_lengths).item() == pytest.approx(sum(losses) / 2, rel=1e-5)


def test_ctc_loss_is_finite_and_falls_as_the_log_probs_favour_the_target_path():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 8, 5, generator=g)
    targets, target_lengths, lengths = torch.tensor([[1, 3, 3], [2, 4, 0]]), torch.tensor([3, 2]), torch.tensor([8, 6])
    path = torch.tensor([[1, 1, 0, 3, 0, 3, 0, 0], [0, 2, 2, 4, 4, 0, 0, 0]])  # one alignment of each target
    losses = [ctc_loss((logits + bonus * F.one_hot(path, 5)).log_softmax(-1), lengths, targets, target_lengths)
              for bonus in (0.0, 2.0, 5.0)]
    assert all(torch.isfinite(x) for x in losses)
    assert losses[0] > losses[1] > losses[2]
    assert losses[2] < 0.1


def test_ctc_loss_needs_a_frame_for_each_target_and_each_repeat_but_not_for_padding():
    log_probs = torch.randn(1, 3, 4).log_softmax(-1)
    ctc_loss(log_probs, torch.tensor([3]), torch.tensor([[1, 1]]), torch.tensor([2]))  # 1 blank 1: 3 frames
    ctc_loss(log_probs, torch.tensor([2]), torch.tensor([[1, 2, 2, 2]]), torch.tensor([2]))  # the repeats are padding
    with pytest.raises(ValueError, match=r"2 targets \(1 repeated\) needing 3 frames, but only 2"):
        ctc_loss(log_probs, torch.tensor([2]), torch.tensor([[1, 1]]), torch.tensor([2]))
    with pytest.raises(ValueError, match=r"targets: expected ids in 1\.\.3"):
        ctc_loss(log_probs, torch.tensor([3]), torch.tensor([[1, 4]]), torch.tensor([2]))


def test_greedy_decode_collapses_repeats_drops_blanks_and_stops_at_each_length():
    paths = [[1, 1, 0, 2, 2, 2, 0, 0],  # -> 1 2
             [3, 0, 3, 3, 0, 0, 4, 4],  # the same word twice, a blank between: kept twice
             [0, 0, 0, 0, 0, 0, 0, 0],  # all blank: nothing
             [2, 3, 3, 1, 1, 1, 4, 2]]  # only the first 3 frames are real
    assert ctc_greedy_decode(log_probs_of(paths), torch.tensor([8, 8, 8, 3])) == [[1, 2], [3, 3, 4], [], [2, 3]]
    assert ctc_greedy_decode(log_probs_of([[2, 2, 2, 0]]), torch.tensor([4])) == [[2]]  # no blank: once


# AVSR

@pytest.mark.parametrize("streams, fusion", COMBOS, ids=IDS)
def test_avsr_gives_log_probs_over_blank_and_words_for_every_video_frame(streams, fusion):
    m, (mel, video, lengths) = avsr(streams, fusion), inputs()
    with torch.no_grad():
        log_probs, gate = m(mel, video, lengths, return_gate=True)
        assert log_probs.shape == (3, 9, 11)
        torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 9))
        assert m(mel[..., :-1], video, lengths).shape == (3, 9, 11)  # 2T - 1 audio frames: padded to 2T
    if fusion == "gated" and streams == "audio+video":
        assert gate.shape == (3, 9) and ((gate > 0) & (gate < 1)).all()
    else:
        assert gate is None


@pytest.mark.parametrize("streams, fusion", COMBOS, ids=IDS)
def test_padded_audio_never_reaches_the_real_frames(streams, fusion):
    m, (mel, video, lengths) = avsr(streams, fusion), inputs()
    real = frame_mask(lengths, 9)
    noisy = torch.where(frame_mask(2 * lengths, 18)[:, None], mel, 10 * torch.randn_like(mel))
    with torch.no_grad():
        torch.testing.assert_close(m(noisy, video, lengths)[real], m(mel, video, lengths)[real])


@pytest.mark.parametrize("streams, fusion", COMBOS, ids=IDS)
def test_padded_video_never_reaches_the_real_frames(streams, fusion):
    m, (mel, video, lengths) = avsr(streams, fusion), inputs()
    real = frame_mask(lengths, 9)
    noisy = torch.where(real[..., None, None, None], video, torch.rand_like(video))
    with torch.no_grad():
        torch.testing.assert_close(m(mel, noisy, lengths)[real], m(mel, video, lengths)[real])


@pytest.mark.parametrize("streams, fusion", COMBOS, ids=IDS)
def test_an_utterance_reads_the_same_alone_as_padded_in_a_batch(streams, fusion):
    m, (mel, video, lengths) = avsr(streams, fusion), inputs()
    with torch.no_grad():
        batched, alone = m(mel, video, lengths)[2, :4], m(mel[2:, :, :8], video[2:, :4], lengths[2:])[0]
    torch.testing.assert_close(alone, batched)


def test_temporal_conv_zeroes_the_padded_frames_and_never_reads_them():
    torch.manual_seed(0)
    conv, x, lengths = TemporalConv(16, blocks=3), torch.randn(3, 12, 16), torch.tensor([12, 7, 2])
    real = frame_mask(lengths, 12)
    noisy = torch.where(real[..., None], x, 10 * torch.randn_like(x))
    with torch.no_grad():
        out = conv(x, real)
        torch.testing.assert_close(conv(noisy, real), out)
        assert (out[~real] == 0).all() and (out[real] != 0).any(-1).all()


def test_a_single_stream_model_ignores_the_other_stream_and_a_fused_one_reads_both():
    mel, video, lengths = inputs()
    other_mel, other_video, _ = inputs(seed=2)
    with torch.no_grad():
        audio, lips, fused = avsr("audio"), avsr("video"), avsr("audio+video", "concat")
        assert torch.equal(audio(mel, video, lengths), audio(mel, other_video, lengths))
        assert torch.equal(lips(mel, video, lengths), lips(other_mel, video, lengths))
        assert not torch.allclose(audio(mel, video, lengths), audio(other_mel, video, lengths))
        assert not torch.allclose(lips(mel, video, lengths), lips(mel, other_video, lengths))
        assert not torch.allclose(fused(mel, video, lengths), fused(other_mel, video, lengths))
        assert not torch.allclose(fused(mel, video, lengths), fused(mel, other_video, lengths))


def test_audio_and_video_of_different_durations_are_refused_with_both_counts():
    mel, video, lengths = inputs()
    with pytest.raises(ValueError, match=r"16 audio frames .* against 9 video frames .*expected 17 or 18"):
        avsr()(mel[..., :16], video, lengths)
    with pytest.raises(ValueError, match=r"lengths: expected video frame counts in 1\.\.9"):
        avsr()(mel, video, torch.tensor([9, 0, 4]))


def test_visual_front_end_keeps_each_frame_apart_but_for_its_time_kernel():
    torch.manual_seed(0)
    front = VisualFrontEnd(size=8, dim=16).eval()
    video, everything = torch.rand(2, 9, 1, 8, 8), torch.ones(2, 9, dtype=torch.bool)
    for t, s in ((0, 8), (2, 6), (3, 5)):  # +δ at frame t, −δ at frame s: the utterance's mean frame is unchanged
        changed, delta = video.clone(), torch.rand(2, 1, 8, 8)
        changed[:, t] += delta
        changed[:, s] -= delta
        with torch.no_grad():
            moved = (front(changed, everything) - front(video, everything)).abs().amax((0, 2)) > 1e-5  # rounding
        near = {u for f in (t, s) for u in (f - 1, f, f + 1) if 0 <= u < 9}
        assert moved.nonzero().flatten().tolist() == sorted(near), (t, s)


# GatedFusion

def test_gated_fusion_starts_at_the_mean_and_follows_its_gate():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 8, generator=g), torch.randn(2, 5, 8, generator=g)
    torch.manual_seed(0)
    fusion = GatedFusion(8, hidden=4)
    out, gate = fusion(a, b)
    assert gate.shape == (2, 5)
    torch.testing.assert_close(gate, torch.full((2, 5), 0.5))
    torch.testing.assert_close(out, (a + b) / 2)
    with torch.no_grad():
        fusion.gate[-1].bias.fill_(30.0)
    out, gate = fusion(a, b)
    torch.testing.assert_close(gate, torch.ones(2, 5))
    torch.testing.assert_close(out, a)
    with torch.no_grad():
        fusion.gate[-1].bias.fill_(-30.0)
    torch.testing.assert_close(fusion(a, b)[0], b)
    with torch.no_grad():  # a gate read from the frames: one value per frame, each frame mixed by its own
        fusion.gate[-1].bias.zero_()
        nn.init.normal_(fusion.gate[-1].weight, std=3.0, generator=torch.Generator().manual_seed(1))
    out, gate = fusion(a, b)
    assert gate.std() > 0.05
    torch.testing.assert_close(out, gate[..., None] * a + (1 - gate[..., None]) * b)


# AudioCLIP

def test_audioclip_loss_is_clip_loss_of_unit_audio_embeddings_against_the_images():
    torch.manual_seed(0)
    model = AudioCLIP(width=16, embed_dim=8)
    mel, images = torch.randn(4, 40, 21), torch.randn(4, 8)
    audio = model(mel)
    assert audio.shape == (4, 8)
    torch.testing.assert_close(audio.norm(dim=-1), torch.ones(4))
    torch.testing.assert_close(audio, F.normalize(model.audio(mel), dim=-1))
    torch.testing.assert_close(model.loss(mel, images), clip_loss(audio, images, model.logit_scale.exp()))
    assert model.logit_scale.exp().item() == pytest.approx(1 / 0.07)
    with torch.no_grad():
        model.logit_scale.fill_(10.0)  # exp(10) is capped at CLIP's 100
    torch.testing.assert_close(model.loss(mel, images), clip_loss(audio, images, 100.0))
    with pytest.raises(ValueError, match=r"image_embeds: expected shape \(4, 8\), got \(4, 6\)"):
        model.loss(mel, images[:, :6])


# recipes

@pytest.fixture(scope="module")
def data():
    return avsr_tiny.utterances(8)


def test_utterances_give_ctc_targets_of_the_spoken_words_that_fit_their_frames(data):
    B, T = 8, data.video.shape[1]
    assert data.video.shape == (B, T, 1, 16, 16) and int(data.lengths.max()) == T
    assert data.speech.wave.shape[1] == 160 * T  # 50 video frames per s at 8 kHz
    words = [" ".join(SPEECH_WORDS[c - 1] for c in row[:n]) for row, n in zip(data.targets.tolist(),
                                                                            data.target_lengths.tolist())]
    assert words == data.transcripts()
    assert ((2 <= data.target_lengths) & (data.target_lengths <= 4)).all()
    assert (data.targets[~frame_mask(data.target_lengths, data.targets.shape[1])] == 0).all()
    model = AVSR(len(SPEECH_WORDS), "audio", dim=16).eval()
    mel, video, lengths = avsr_tiny.batch(data, torch.arange(B), None)
    with torch.no_grad():
        assert torch.isfinite(ctc_loss(model(mel, video, lengths), lengths, data.targets, data.target_lengths))


def test_batch_crops_to_its_longest_utterance_and_mixes_babble_at_the_snr(data):
    index = torch.tensor([0, 3, 6])
    T = int(data.lengths[index].max())
    babble = avsr_tiny.babble_bank(data, n=4, seed=8)
    mel, video, lengths = avsr_tiny.batch(data, index, None)
    assert mel.shape == (3, 40, 2 * T) and torch.equal(video, data.video[index, :T])
    assert torch.equal(lengths, data.lengths[index])
    quiet, _, _ = avsr_tiny.batch(data, index, torch.full((3,), 60.0), babble)
    loud, _, _ = avsr_tiny.batch(data, index, torch.full((3,), -5.0), babble)
    assert (quiet - mel).abs().mean() < (loud - mel).abs().mean()


class Oracle(nn.Module):
    """Says each utterance's own target words (one frame each, a blank between), or blanks only when `mute`."""

    def __init__(self, data, mute=False):
        super().__init__()
        self.data, self.mute, self.w = data, mute, nn.Parameter(torch.zeros(()))

    def forward(self, mel, video, lengths):
        assert len(video) == len(self.data)
        path = torch.zeros(video.shape[:2], dtype=torch.long)
        if not self.mute:
            for b, (row, n) in enumerate(zip(self.data.targets, self.data.target_lengths.tolist())):
                path[b, 0:2 * n:2] = row[:n]
        return log_probs_of(path.tolist(), len(SPEECH_WORDS) + 1)


def test_wer_transcribes_words_not_ids(data):
    babble = avsr_tiny.babble_bank(data, n=4)
    assert avsr_tiny.wer(Oracle(data), data, None, babble) == 0.0
    assert avsr_tiny.wer(Oracle(data, mute=True), data, None, babble) == 1.0
    torch.manual_seed(0)
    untrained = AVSR(len(SPEECH_WORDS), "audio+video", "gated", dim=16)
    first = avsr_tiny.wer(untrained, data, 10.0, babble)
    assert first > 0.5 and avsr_tiny.wer(untrained, data, 10.0, babble) == first


def test_sounding_objects_without_clip_are_single_objects_with_their_sounds():
    objects = audioclip_tiny.sounding_objects(16)
    assert objects.images.shape == (16, 3, 32, 32) and objects.mel.shape[:2] == (16, 40)
    assert objects.image_embeds is None and (objects.scenes.n_objects == 1).all()
    assert objects.label.shape == (16,) and ((0 <= objects.label) & (objects.label < 24)).all()
    torch.manual_seed(0)
    model = AudioCLIP(width=16, embed_dim=8)
    torch.testing.assert_close(audioclip_tiny.audio_embeddings(model, objects.mel).norm(dim=-1), torch.ones(16))
    with pytest.raises(ValueError, match="no image embeddings"):
        audioclip_tiny.train(model, objects)
