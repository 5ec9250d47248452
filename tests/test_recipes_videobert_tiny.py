"""Chapter 08's recipes: the clips and captions, the two trainings' mechanics, and the caption scorer.
(The trained models' numbers are measured by the recipes' full runs, not here.)"""

import copy

import pytest
import torch

from mmcourse.recipes import video_tokenizer as T
from mmcourse.recipes import videobert_tiny as V


@pytest.fixture(scope="module")
def data():
    return T.clips(12, seed=0)


def test_clips_are_channels_first_with_their_captions_tokenized(data):
    assert data.video.shape == (12, 3, T.FRAMES, T.RESOLUTION, T.RESOLUTION)
    assert data.ids.shape == (12, T.TEXT_LENGTH)
    tok = T.text_tokenizer()
    assert tok.decode_batch(data.ids) == data.captions  # TEXT_LENGTH holds every caption whole
    assert torch.equal(T.clips(12, seed=0).video, data.video)
    assert not torch.equal(T.clips(12, seed=0, evaluation=True).video, data.video)  # never a training batch
    held = T.clips(50, seed=0, split="test")
    pairs = {(c, s) for c, s in zip(held.colour.tolist(), held.shape.tolist(), strict=True)}
    train = T.clips(300, seed=0)
    assert not pairs & set(zip(train.colour.tolist(), train.shape.tolist(), strict=True))


def test_caption_scores_read_each_attribute(data):
    perfect = V.caption_scores(data.captions, data)
    assert perfect == {"colour": 1, "shape": 1, "direction": 1, "speed": 1, "bounce": 1, "full": 1}
    wrong_dir = [c.replace(" left", " xx").replace(" right", " left").replace(" xx", " right")
                 .replace(" up", " yy").replace(" down", " up").replace(" yy", " down") for c in data.captions]
    scores = V.caption_scores(wrong_dir, data)
    assert scores["direction"] == 0 and scores["full"] == 0 and scores["colour"] == 1
    two_colours = [c.replace(" moves", " red blue moves") for c in data.captions]
    assert V.caption_scores(two_colours, data)["colour"] < 1  # naming every colour is not right
    with pytest.raises(ValueError, match="one caption per clip"):
        V.caption_scores(data.captions[:-1], data)


def test_tokenizer_training_trains_the_codebook_and_records_perplexity(data):
    tok = T.build(seed=0)
    start = copy.deepcopy(tok)
    history = T.train(tok, steps=3, eval_every=2, progress=False, desc="a name of the caller's")
    assert len(history.loss) == 3 and [e["step"] for e in history.evals] == [2, 3]
    assert set(history.evals[0]) == {"step", "perplexity", "mse"}
    assert 1 <= history.evals[0]["perplexity"] <= T.NUM_CODES
    for before, after in zip(start.quantizer.quantizers, tok.quantizer.quantizers, strict=True):
        assert not torch.equal(before.codebook, after.codebook)
    usage = T.codebook_usage(tok, data)
    assert usage.shape == (T.GROUPS, T.NUM_CODES)
    assert (usage.sum(1) == 12 * (T.FRAMES // T.FRAMES_PER_TOKEN) * (T.RESOLUTION // 4) ** 2).all()


def test_bert_training_leaves_the_tokenizer_alone_and_captions_have_the_right_form(data):
    tok = T.build(seed=0).eval()
    start = copy.deepcopy(tok.state_dict())
    bert = V.build(seed=0, width=16, layers=1, heads=2)
    history = V.train(bert, tok, steps=3, eval_every=2, progress=False, desc="a name of the caller's")
    assert len(history.loss) == 3 and set(history.evals[-1]) == {"step", "colour", "shape", "direction", "speed",
                                                                 "bounce", "full"}
    assert all(torch.equal(v, tok.state_dict()[k]) for k, v in start.items())
    texts = V.caption(bert, tok, data.video[:4])
    assert len(texts) == 4 and all(isinstance(t, str) and "<mask>" not in t for t in texts)
    assert set(V.evaluate(bert, tok, data)) == {"colour", "shape", "direction", "speed", "bounce", "full"}


def test_video_weight_scales_the_video_tokens_loss():
    """Same model, same first batch: the first step's loss is text + w · video, so it is linear in w."""
    tok = T.build(seed=0).eval()
    first = {}
    for w in (0.0, 0.5, 1.0):
        bert = V.build(seed=0, width=16, layers=1, heads=2)
        first[w] = V.train(bert, tok, steps=1, eval_every=None, progress=False, video_weight=w).loss[0]
    video = first[1.0] - first[0.0]
    assert video > 1.0  # the video tokens' cross-entropy over 129 classes at the start: about ln 129 ≈ 4.9
    assert first[0.5] == pytest.approx(first[0.0] + 0.5 * video, rel=1e-5)
