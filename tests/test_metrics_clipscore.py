"""CLIPScore / RefCLIPScore on features: the formula, torchmetrics' per-pair scores, hand cases, bad input."""

import math
from types import SimpleNamespace

import pytest
import torch

from mmcourse.metrics import clip_score, ref_clip_score

DEVICES = (
    ["cpu"]
    + (["cuda"] if torch.cuda.is_available() else [])
    + (["mps"] if torch.backends.mps.is_available() else [])
)


def _random_features(seed, n=16, d=32, r=3):
    g = torch.Generator().manual_seed(seed)
    images, texts = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    references = torch.randn(n, r, d, generator=g) + texts[:, None]  # related to the captions
    return images, texts, references


def _cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_equal_to_the_formula_on_random_vectors():
    images, texts, references = _random_features(0)
    per_pair = [2.5 * max(_cosine(i.tolist(), t.tolist()), 0.0) for i, t in zip(images, texts, strict=True)]
    assert 0 in per_pair and max(per_pair) > 0  # some pairs are clamped, some are not
    assert clip_score(images, texts, reduction="none").tolist() == pytest.approx(per_pair, rel=1e-5)
    assert clip_score(images, texts).item() == pytest.approx(sum(per_pair) / len(per_pair), rel=1e-5)

    refclip = []
    for clip_s, text, refs in zip(per_pair, texts, references, strict=True):
        ref_s = max(max(_cosine(text.tolist(), ref.tolist()) for ref in refs), 0.0)
        refclip.append(0.0 if clip_s + ref_s == 0 else 2 * clip_s * ref_s / (clip_s + ref_s))
    got = ref_clip_score(images, texts, references, reduction="none")
    assert got.tolist() == pytest.approx(refclip, rel=1e-5)
    assert ref_clip_score(images, texts, references).item() == pytest.approx(got.mean().item(), rel=1e-6)


def test_per_pair_equal_to_torchmetrics_with_w_100():
    """torchmetrics' CLIPScore needs a HF CLIP; its scoring step runs here on given features instead."""
    clip_module = pytest.importorskip("torchmetrics.functional.multimodal.clip_score")
    images, texts, _ = _random_features(1, n=6)

    class FeatureModel:  # stands in for the HF CLIP model: returns our features
        config = SimpleNamespace(text_config=SimpleNamespace(max_position_embeddings=77))

        def to(self, device):
            return self

        def get_image_features(self, pixel_values):
            return images

        def get_text_features(self, input_ids, attention_mask=None):
            return texts

    def processor(text=None, images=None, **kwargs):
        n = len(text if text is not None else images)
        return {
            "pixel_values": torch.zeros(n, 3, 4, 4),
            "input_ids": torch.zeros(n, 3, dtype=torch.long),
            "attention_mask": torch.ones(n, 3, dtype=torch.long),
        }

    try:
        pixels = [torch.zeros(3, 4, 4)] * 6
        tm_scores, _ = clip_module._clip_score_update(pixels, ["a"] * 6, FeatureModel(), processor)
    except (AttributeError, TypeError, KeyError) as error:  # a private function: its signature may change
        pytest.skip(f"torchmetrics' private _clip_score_update changed: {error}")
    assert tm_scores.min() < 0 < tm_scores.max()
    # torchmetrics: 100 * cos per pair, then max(mean, 0); ours clamps each pair: equal after clamping
    ours = clip_score(images, texts, w=100, reduction="none")
    assert ours.tolist() == pytest.approx(tm_scores.clamp(min=0).tolist(), rel=1e-5)
    positive = tm_scores > 0
    assert clip_score(images[positive], texts[positive], w=100).item() == pytest.approx(
        max(tm_scores[positive].mean().item(), 0), rel=1e-5
    )


def test_hand_cases():
    # cos = 0.4 -> CLIP-S = 2.5 * 0.4 = 1.0; caption identical to its reference -> ref term 1 -> RefCLIP-S 1
    image = torch.tensor([[0.4, math.sqrt(1 - 0.4**2)]])
    caption = torch.tensor([[1.0, 0.0]])
    assert clip_score(image, caption).item() == pytest.approx(1.0)
    assert ref_clip_score(image, caption, caption[:, None]).item() == pytest.approx(1.0)
    # cos = 0.2 -> CLIP-S 0.5; best reference cos 0.5 (the other -1) -> H-mean 2 * 0.5 * 0.5 / 1 = 0.5
    image = torch.tensor([[0.2, math.sqrt(1 - 0.2**2)]])
    references = torch.tensor([[[0.5, math.sqrt(0.75)], [-1.0, 0.0]]])
    assert ref_clip_score(image, caption, references).item() == pytest.approx(0.5)
    # scale does not matter; opposite vectors score 0, not negative
    assert clip_score(3 * image, 7 * caption).item() == pytest.approx(0.5)
    assert clip_score(-image, caption).item() == 0.0
    assert ref_clip_score(-image, caption, -caption[:, None]).item() == 0.0


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_device_of_the_inputs(device):
    images, texts, references = _random_features(2)
    got = ref_clip_score(images.to(device), texts.to(device), references.to(device))
    assert got.device.type == device
    assert got.item() == pytest.approx(ref_clip_score(images, texts, references).item(), rel=1e-5)


def test_bad_input_raises_clear_errors():
    images, texts, references = _random_features(3, n=4, d=8)
    with pytest.raises(ValueError, match=r"text_features: expected shape \(4, 8\), got \(3, 8\)"):
        clip_score(images, texts[:3])
    with pytest.raises(ValueError, match="image_features: contains NaN"):
        clip_score(torch.full((4, 8), float("nan")), texts)
    with pytest.raises(ValueError, match=r"reference_features: expected shape \(4, R, 8\)"):
        ref_clip_score(images, texts, references[:, 0])
    with pytest.raises(ValueError, match="at least one reference"):
        ref_clip_score(images, texts, references[:, :0])
    with pytest.raises(ValueError, match="reference_features: contains NaN"):
        ref_clip_score(images, texts, references * float("nan"))
    with pytest.raises(ValueError, match="reduction: expected 'mean' or 'none'"):
        clip_score(images, texts, reduction="sum")
    with pytest.raises(ValueError, match="expected at least one pair"):
        clip_score(images[:0], texts[:0])
    with pytest.raises(TypeError, match="floating-point"):
        clip_score(images.long(), texts.long())
