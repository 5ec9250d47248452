"""Chapter 11's LiT recipe: the plumbing on an untrained CLIP (the lecture measures the curve)."""

import pytest
import torch

from mmcourse.models.clip import CLIP
from mmcourse.recipes import clip_tiny
from mmcourse.recipes import scaling_tiny as S


@pytest.fixture(scope="module")
def data(monkeypatch_module):
    monkeypatch_module.setattr(S, "TRAIN_PAIRS", 256)
    monkeypatch_module.setattr(S, "TEST_PAIRS", 64)
    return S.lit_data(clip_tiny.build(seed=0))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_lit_data_is_frozen_normalised_image_embeddings_and_captions(data):
    assert data.image_embeddings.shape == (256, 64) and data.ids.shape[0] == 256
    torch.testing.assert_close(data.image_embeddings.norm(dim=-1), torch.ones(256))
    assert data.test_embeddings.shape == (64, 64) and data.prompts.shape[0] == 24
    assert not data.image_embeddings.requires_grad


def test_train_takes_examples_over_batch_size_steps_and_leaves_the_image_tower_alone(data):
    before = {k: v.clone() for k, v in data.clip.state_dict().items()}
    text, history = S.train(data, batch_size=32, examples=96, progress=False)
    assert len(history.loss) == 3
    assert all(torch.equal(v, data.clip.state_dict()[k]) for k, v in before.items())
    assert isinstance(text, type(CLIP(data.clip.config).text)) and text is not data.clip.text
    scores = S.evaluate(data, text)
    assert set(scores) == {"seen", "held-out", "R@1"} and all(0 <= v <= 1 for v in scores.values())


def test_a_fixed_temperature_is_used(data):
    _, h1 = S.train(data, batch_size=32, examples=32, temperature=1.0, progress=False)
    _, h2 = S.train(data, batch_size=32, examples=32, temperature=0.01, progress=False)
    assert h1.loss[0] != pytest.approx(h2.loss[0])
    with pytest.raises(ValueError, match="temperature"):
        S.train(data, batch_size=32, examples=32, temperature=0.0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        S.train(data, batch_size=1, progress=False)
