"""Moving-shape clips, the talking mouth, the datasets' collate functions and the world's viz helpers."""

import pytest
import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader

from mmcourse.data import (
    COLOURS,
    DIRECTIONS,
    SPEECH_WORDS,
    AVSpeechDataset,
    MovingShapesDataset,
    ObjectSoundDataset,
    ShapesDataset,
    log_mel_spectrogram,
    moving_shapes,
    random_sentences,
    speak,
    talking_mouth,
)
from mmcourse.viz.world import play_audio, plot_spectrogram, show_images, show_video, video_rows, video_strip


def centroids(video: torch.Tensor) -> torch.Tensor:
    """(N, T, 2) centre of the non-background pixels of each frame, in [0, 1] image coordinates."""
    mask = (video.sum(2) > 0.9).float()  # (N, T, R, R); the background sums to ~0.26
    R = video.shape[-1]
    pix = (torch.arange(R) + 0.5) / R
    area = mask.sum((-1, -2))
    return torch.stack([(mask.sum(-2) * pix).sum(-1) / area, (mask.sum(-1) * pix).sum(-1) / area], -1)


def test_clips_move_as_their_captions_say():
    clips = moving_shapes(120, 0, frames=8)
    seen = centroids(clips.video)
    assert (seen - clips.centers).abs().max() < 0.05  # the rendered shape follows the track
    step = clips.centers[:, 1] - clips.centers[:, 0]
    sign = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}
    for i, text in enumerate(clips.captions):
        obj = clips.scenes.objects(i)[0]
        assert f"{obj['colour']} {obj['shape']}" in text and DIRECTIONS[clips.direction[i]] in text
        axis, s = sign[DIRECTIONS[clips.direction[i]]]
        assert step[i, axis] * s > 0 and step[i, 1 - axis] == 0
        assert ("bounces" in text) == bool(clips.bounced[i])
    assert 0 < clips.bounced.float().mean() < 1
    calm = moving_shapes(60, 1, frames=8, bounce=False)
    assert not calm.bounced.any()
    assert torch.equal(moving_shapes(5, 3).video, moving_shapes(5, 3).video)
    assert not torch.equal(moving_shapes(5, 3).video, moving_shapes(5, 4).video)
    assert (moving_shapes(40, 2, sizes=["large"]).scenes.size == 1).all()  # SIZES = ("small", "large")


def test_mouth_opening_follows_the_speech_envelope():
    speech = speak(random_sentences(8, 2), 2)
    video, lengths = talking_mouth(speech, fps=50, size=16)
    assert video.shape[:3] == (8, video.shape[1], 1) and video.shape[-2:] == (16, 16)
    assert lengths.tolist() == [-(-n // 160) for n in speech.lengths.tolist()]
    opening = (video[:, :, 0] < 0.25).float().sum((-1, -2))  # dark mouth pixels per frame
    T = video.shape[1]
    audio = torch.nn.functional.pad(speech.wave, (0, T * 160 - speech.wave.shape[1])).view(8, T, 160)
    loudness = audio.pow(2).mean(-1).sqrt()  # RMS of the audio during each video frame
    r = torch.tensor([torch.corrcoef(torch.stack([opening[i, :n], loudness[i, :n]]))[0, 1]
                      for i, n in enumerate(lengths.tolist())])
    assert r.min() > 0.7 and r.mean() > 0.85, r
    silent = loudness < 1e-6
    assert opening[silent].max() < opening[~silent].mean()  # closed between words


def test_av_dataset_batches_and_targets():
    ds = AVSpeechDataset(12, seed=3, snr_db=0.0)
    clean = AVSpeechDataset(12, seed=3)
    assert torch.equal(ds.video, clean.video) and not torch.equal(ds.wave, clean.wave)
    batch = next(iter(DataLoader(ds, batch_size=5, collate_fn=ds.collate)))
    assert batch["wave"].shape[0] == 5 and batch["video"].shape[2:] == (1, 16, 16)
    assert (batch["video_lengths"] == -(-batch["wave_lengths"] // 160)).all()
    for row, n, text in zip(batch["targets"], batch["target_lengths"], batch["transcripts"], strict=True):
        assert " ".join(SPEECH_WORDS[t - 1] for t in row[:n].tolist()) == text and (row[n:] == 0).all()
    with pytest.raises(ValueError, match="unknown noise 'pink'"):
        AVSpeechDataset(2, noise="pink", snr_db=0.0)
    with pytest.raises(ValueError, match="unknown speech word 'seven'"):
        speak([["seven"]])


def test_shape_and_sound_datasets_collate():
    ds = ShapesDataset(64, seed=1, max_objects=2, resolution=64)
    batch = next(iter(DataLoader(ds, batch_size=16)))
    assert batch["image"].shape == (16, 3, 64, 64) and batch["boxes"].shape == (16, 2, 4)
    sounds = ObjectSoundDataset(16, seed=2)
    b = sounds.collate([sounds[i] for i in range(4)])
    assert b["sounds"].shape == (4, 3200) and b["text"].shape[0] == 4 and b["images"].shape == (4, 3, 32, 32)
    clips = MovingShapesDataset(8, seed=0, frames=6)
    b = clips.collate([clips[i] for i in range(4)])
    assert b["video"].shape == (4, 6, 3, 32, 32) and clips.tokenizer.decode(b["text"][0]) == b["captions"][0]
    palette = torch.tensor(list(COLOURS.values()))
    centre = (ds.scenes.center[0, 0] * 64).long()
    assert (ds.images[0, :, centre[1], centre[0]] - palette[ds.scenes.colour[0, 0]]).abs().max() < 0.2
    with pytest.raises(TypeError, match="seed must be an int"):
        ShapesDataset(4, seed=1.5)


def test_viz_helpers_return_displayable_objects():
    ds = ShapesDataset(6, seed=0, max_objects=2)
    captions = [f"image {i}" for i in range(6)]
    assert isinstance(show_images(ds.images, captions, boxes=ds.boxes, ncols=3), Figure)
    speech = speak([["red", "circle"]])
    spec = log_mel_spectrogram(speech.wave[0])
    assert isinstance(plot_spectrogram(spec, timings=speech.timings(0)), Figure)
    assert play_audio(speech.wave[0]).data[:4] == b"RIFF"
    clip = moving_shapes(1, 0, frames=4).video[0]
    assert isinstance(video_strip(clip, "a clip"), Figure)
    fig = video_rows([clip, 1 - clip], ["a clip", "its negative"], every=2, title="two rows")
    assert fig.axes[0].get_ylabel() == "a clip" and len(fig.axes) == 2 * 2  # 2 rows x 4 frames / 2
    assert isinstance(video_rows(torch.stack([clip, clip]), ["a", "b"]), Figure)
    with pytest.raises(ValueError, match="labels: expected one per video"):
        video_rows([clip, clip], ["one"])
    with pytest.raises(ValueError, match="one length"):
        video_rows([clip, clip[:2]], ["a", "b"])
    player = show_video(clip, fps=4).data
    assert "<script" in player and "▶" in player and "‖" in player
    assert "http" not in player and "fa fa-" not in player, "the player must load nothing from the internet"
    with pytest.raises(ValueError, match="captions: expected 6"):
        show_images(ds.images, ["one"])
