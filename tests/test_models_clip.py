"""The CLIP model: the causal text tower, the two-tower logits, the logit scale, zero-shot."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmcourse.losses import clip_loss, siglip_loss
from mmcourse.models.clip import (
    CLIP,
    CLIPConfig,
    TextTransformer,
    encode_images,
    encode_texts,
    zero_shot_classifier,
    zero_shot_predict,
)
from mmcourse.train import fit

WORDS = ["<pad>", "<eot>", "a", "photo", "of", "red", "blue", "circle", "square", "small", "big"]
PAD, EOT = 0, 1


def tokenize(texts, length=8):
    """A tiny word tokenizer: ids of the words, then EOT, then padding."""
    ids = torch.full((len(texts), length), PAD)
    for i, text in enumerate(texts):
        words = [WORDS.index(w) for w in text.split()][: length - 1]
        ids[i, : len(words) + 1] = torch.tensor([*words, EOT])
    return ids


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CLIP(CLIPConfig.tiny(vocab_size=len(WORDS), eot_id=EOT, context_length=8)).eval()


def test_text_tower_is_causal_and_ignores_what_follows_eot(model):
    ids = tokenize(["a red circle", "big blue square", "photo"])
    out = model.encode_text(ids)
    after = ids.clone()
    after[ids == PAD] = 3  # change every token after the EOT
    torch.testing.assert_close(model.encode_text(after), out)
    before = ids.clone()
    before[:, 0] = 9  # change the first word
    assert (model.encode_text(before) - out).abs().amax(dim=1).min() > 1e-4


def test_text_tower_names_and_shapes():
    text = TextTransformer(vocab_size=50, context_length=6, width=32, layers=2, heads=4, output_dim=16,
                           eot_id=49)
    roots = {name.split(".")[0] for name in text.state_dict()}
    assert roots == {"token_embedding", "positional_embedding", "transformer", "ln_final", "text_projection"}
    assert text.text_projection.shape == (32, 16)
    ids = torch.tensor([[3, 4, 49, 0], [49, 0, 0, 0]])
    assert text(ids).shape == (2, 16)
    assert text.hidden(ids).shape == (2, 4, 32)
    with pytest.raises(ValueError, match="eot_id must be a token id"):
        TextTransformer(50, 6, 32, 1, 4, 16, eot_id=50)


def test_text_tower_rejects_bad_ids(model):
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 11\), got min 1, max 11"):
        model.encode_text(torch.tensor([[2, 11, 1]]))
    with pytest.raises(ValueError, match="got min -1"):
        model.encode_text(torch.tensor([[2, -1, 1]]))
    with pytest.raises(ValueError, match="at most context_length=8 tokens, got 9"):
        model.encode_text(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="ids: expected an integer tensor"):
        model.encode_text(torch.ones(1, 3))
    with pytest.raises(ValueError, match=r"row\(s\) \[0\]"):
        model.encode_text(torch.tensor([[2, 3, 4]]))


def test_tiny_config_matches_the_course_model(model):
    c = model.config
    assert (c.vision_width, c.text_width, c.vision_layers, c.text_layers, c.embed_dim) == (64, 64, 2, 2, 64)
    assert model.visual.positional_embedding.shape == (1 + 64, 64)  # conv stem on 32x32: 8x8 tokens + CLS
    assert model.visual.transformer.resblocks[0].attn.n_heads == 4
    assert model.text.transformer.resblocks[0].attn.n_heads == 4


def test_forward_is_scaled_cosine_similarity(model):
    images, ids = torch.randn(3, 3, 32, 32), tokenize(["a red circle", "a blue square", "big circle"])
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.logit_bias is None
    logits_per_image, logits_per_text = model(images, ids)
    x, y = F.normalize(model.encode_image(images), dim=-1), F.normalize(model.encode_text(ids), dim=-1)
    torch.testing.assert_close(logits_per_image, x @ y.T / 0.07)
    torch.testing.assert_close(logits_per_text, logits_per_image.T)
    torch.testing.assert_close(model.contrastive_loss(images, ids), clip_loss(x, y, 1 / 0.07))
    with pytest.raises(ValueError, match="got 3 images and 2 captions"):
        model(images, ids[:2])


def test_siglip_variant():
    torch.manual_seed(0)
    model = CLIP(CLIPConfig.tiny(vocab_size=len(WORDS), eot_id=EOT, loss="siglip")).eval()
    assert model.logit_scale.item() == pytest.approx(math.log(10))
    assert model.logit_bias.item() == -10.0
    images, ids = torch.randn(2, 3, 32, 32), tokenize(["a red circle", "a blue square"])
    x, y = F.normalize(model.encode_image(images), dim=-1), F.normalize(model.encode_text(ids), dim=-1)
    torch.testing.assert_close(model(images, ids)[0], 10 * x @ y.T - 10)
    torch.testing.assert_close(model.contrastive_loss(images, ids), siglip_loss(x, y, 10.0, -10.0))
    with pytest.raises(ValueError, match="config.loss"):
        CLIP(CLIPConfig.tiny(vocab_size=11, eot_id=1, loss="infonce"))


@pytest.mark.parametrize("loss", ["clip", "siglip"])
def test_every_parameter_gets_a_gradient(loss):
    model = CLIP(CLIPConfig.tiny(vocab_size=len(WORDS), eot_id=EOT, loss=loss))
    model.contrastive_loss(torch.randn(4, 3, 32, 32), tokenize(["a", "red", "blue", "big"])).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # rows of the token embedding of unused words stay zero, but the table as a whole gets a gradient
    assert no_grad == []


def test_clamp_logit_scale_after_each_step_in_fit(model):
    with torch.no_grad():
        model.logit_scale.fill_(6.0)
    batch = (torch.randn(4, 3, 32, 32), tokenize(["a red circle", "a blue square", "big", "small"]))
    fit(model, lambda m, b: m.contrastive_loss(*b), [batch], steps=2, lr=1e-4, device="cpu", progress=False,
        after_step=CLIP.clamp_logit_scale)
    assert 4.6 < model.logit_scale.item() <= math.log(100) + 1e-6  # two steps at lr 1e-4 cannot move it 1.4
    with torch.no_grad():
        model.logit_scale.fill_(-1.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == 0.0


def test_tiny_clip_learns_to_match_a_batch():
    torch.manual_seed(0)
    model = CLIP(CLIPConfig.tiny(vocab_size=len(WORDS), eot_id=EOT, context_length=8))
    captions = ["a red circle", "a blue circle", "a red square", "a blue square", "big red circle",
                "small blue square", "a photo of a big square", "small circle"]
    images, ids = torch.randn(len(captions), 3, 32, 32), tokenize(captions)
    before = model.contrastive_loss(images, ids).item()
    fit(model, lambda m, b: m.contrastive_loss(*b), [(images, ids)], steps=40, lr=1e-3, device="cpu",
        progress=False, after_step=CLIP.clamp_logit_scale)
    assert model.contrastive_loss(images, ids).item() < before / 2


def test_zero_shot_classifier_averages_normalised_prompts(model):
    classes, templates = ["circle", "square", "red"], ["a {}", "a photo of a {}", "big {}"]
    weights = zero_shot_classifier(model, tokenize, classes, templates)
    assert weights.shape == (64, 3)
    for k, name in enumerate(classes):
        prompts = F.normalize(model.encode_text(tokenize([t.format(name) for t in templates])), dim=-1)
        torch.testing.assert_close(weights[:, k], F.normalize(prompts.mean(0), dim=0))
    as_functions = [lambda c, t=t: t.format(c) for t in templates]
    torch.testing.assert_close(zero_shot_classifier(model, tokenize, classes, as_functions), weights)
    with pytest.raises(ValueError, match="string with '{}'"):
        zero_shot_classifier(model, tokenize, classes, ["a photo"])
    with pytest.raises(ValueError, match="classnames: expected a non-empty list"):
        zero_shot_classifier(model, tokenize, "circle", templates)


def test_zero_shot_predict_picks_the_most_similar_class(model):
    images = torch.randn(5, 3, 32, 32)
    weights = F.normalize(model.encode_image(images), dim=-1).T  # class k = image k itself
    order = torch.tensor([3, 0, 4, 1, 2])
    assert torch.equal(zero_shot_predict(model, images, weights[:, order]), order.argsort())
    with pytest.raises(ValueError, match=r"weights: expected shape \(64, n_classes\), got \(5, 64\)"):
        zero_shot_predict(model, images, weights.T)


def test_encode_images_and_texts_in_chunks_equal_one_pass_and_stay_on_the_input_device(model):
    images = torch.rand(7, 3, 32, 32)
    ids = tokenize(["a red circle", "a photo of a blue square", "big circle"] * 3)
    with torch.no_grad():
        whole_images = model.encode_image(images, normalize=True)
        whole_texts = model.encode_text(ids, normalize=True)
    chunked = encode_images(model, images, batch_size=3)
    torch.testing.assert_close(chunked, whole_images, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(encode_texts(model, ids, batch_size=4), whole_texts, atol=1e-6, rtol=1e-5)
    assert chunked.device == images.device and not chunked.requires_grad
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 3, H, W\)"):
        encode_images(model, images[0])


def test_zero_shot_predict_refuses_nan_class_weights():
    from mmcourse.models.clip import CLIP, CLIPConfig, zero_shot_predict

    model = CLIP(CLIPConfig.tiny(30, 2)).eval()
    weights = torch.randn(model.config.embed_dim, 4)
    weights[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        zero_shot_predict(model, torch.rand(2, 3, 32, 32), weights)
