import pytest
import torch

from mmcourse.models.fusion import METHODS, FusionClassifier, SoundEncoder

SHAPES = {"tokens": ((6, 8), (4, 12)), "raw": ((3, 8, 8), (5, 7))}


def model(method, **kw):
    torch.manual_seed(0)
    image, sound = SHAPES["raw" if method == "early" else "tokens"]
    return FusionClassifier(method, image, sound, num_classes=3, width=16, **kw).eval()


def inputs(method, B=5):
    image, sound = SHAPES["raw" if method == "early" else "tokens"]
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, *image, generator=g), torch.randn(B, *sound, generator=g)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_logits_and_reads_a_missing_modality_as_zeros(method):
    m, (image, sound) = model(method), inputs(method)
    assert m(image, sound).shape == (5, 3)
    if method == "late":  # the missing modality's logits are left out
        torch.testing.assert_close(m(image, None), m.head_image(image.mean(1)))
        torch.testing.assert_close(m(None, sound), m.head_sound(sound.mean(1)))
    else:
        torch.testing.assert_close(m(None, sound), m(torch.zeros_like(image), sound))
        torch.testing.assert_close(m(image, None), m(image, torch.zeros_like(sound)))
    with pytest.raises(ValueError, match="both modalities are None"):
        m(None, None)
    with pytest.raises(ValueError, match="sound: expected shape"):
        m(image, sound[:4])
    with pytest.raises(ValueError, match="image: expected shape"):
        m(image[..., :-1], sound)


def test_modality_dropout_acts_in_training_only():
    m, (image, sound) = model("concat", modality_dropout=1.0), inputs("concat", 64)
    with torch.no_grad():
        torch.testing.assert_close(m(image, sound), m(image, sound))  # eval: deterministic, nothing dropped
        only = torch.stack([m(image, torch.zeros_like(sound)), m(torch.zeros_like(image), sound)])
        trained = m.train()(image, sound)
    # every example is one of the two single-stream outputs
    assert ((trained[None] - only).abs().amax(-1) < 1e-5).any(0).all()


def test_cross_attention_map_is_a_distribution_over_image_tokens():
    m, (image, sound) = model("cross"), inputs("cross")
    logits, attn = m(image, sound, return_attn=True)
    torch.testing.assert_close(logits, m(image, sound))
    assert attn.shape == (5, 6)
    torch.testing.assert_close(attn.sum(1), torch.ones(5))
    with pytest.raises(ValueError, match="only the 'cross' method"):
        model("concat")(image, sound, return_attn=True)


def test_bad_construction_is_named():
    with pytest.raises(ValueError, match="method"):
        FusionClassifier("sum", (6, 8), (4, 12), 3)
    with pytest.raises(ValueError, match="num_classes"):
        FusionClassifier("late", (6, 8), (4, 12), 1)
    with pytest.raises(ValueError, match="modality_dropout"):
        FusionClassifier("late", (6, 8), (4, 12), 3, modality_dropout=-0.1)


def test_sound_encoder_tokens_and_logits():
    enc = SoundEncoder(40, 41, width=16, num_classes=24)
    mel = torch.randn(2, 40, 41)
    assert enc(mel).shape == (2, 11, 16)
    assert enc.classify(mel).shape == (2, 24)
    with pytest.raises(ValueError, match="mel: expected shape"):
        enc(torch.randn(2, 41, 40))


def test_two_stream_classifier_sums_its_streams_and_exposes_each_encoder():
    from mmcourse.models.fusion import TwoStreamClassifier

    torch.manual_seed(0)
    model = TwoStreamClassifier(n_mels=40, frames=41, num_classes=24).eval()
    image, sound = torch.rand(3, 3, 16, 16), torch.randn(3, 40, 41)
    streams = model.stream_logits(image, sound)
    assert {k: tuple(v.shape) for k, v in streams.items()} == {"image": (3, 24), "sound": (3, 24)}
    assert torch.allclose(model(image, sound), streams["image"] + streams["sound"])
    assert model.features("image", image).shape == (3, 64) and model.features("sound", sound).shape == (3, 64)
    assert torch.allclose(model.image.head(model.features("image", image)), streams["image"])
    with pytest.raises(ValueError, match="same B examples"):
        model(image, sound[:2])
    with pytest.raises(ValueError, match="stream"):
        model.features("video", image)
    with pytest.raises(ValueError, match="images"):
        model.image(torch.rand(3, 1, 16, 16))
