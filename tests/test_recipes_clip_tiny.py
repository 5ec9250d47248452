"""Chapter 02's training recipe: its data, a few training steps, zero-shot evaluation, the zoo entry."""

import math
from types import SimpleNamespace

import pytest
import torch

from mmcourse import zoo
from mmcourse.data import CLASS_NAMES, HELD_OUT, SHAPES, Tokenizer, class_prompts
from mmcourse.data.world import COLOUR_NAMES
from mmcourse.models import CLIP, zero_shot_classifier
from mmcourse.recipes import clip_tiny


@pytest.fixture(scope="module")
def small_data():
    return clip_tiny.caption_data(n=96, seed=3)


def test_recipe_is_registered_and_builds_the_chapter_model():
    recipe = zoo.recipe("clip-tiny")
    assert recipe.version == clip_tiny.VERSION and recipe.build is clip_tiny.build and recipe.train is clip_tiny.train
    model = recipe.build()
    assert isinstance(model, CLIP)
    tokenizer = Tokenizer()
    assert model.config.vocab_size == tokenizer.vocab_size and model.config.eot_id == tokenizer.eot_id
    assert model.config.conv_stem and model.config.loss == "clip"
    assert 0.2e6 < sum(p.numel() for p in model.parameters()) < 0.3e6
    again = recipe.build()  # deterministic initialisation: the cache entry does not depend on global state
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_a_few_training_steps_lower_the_loss_and_keep_the_scale_clamped(small_data):
    model = clip_tiny.build(seed=0)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(200.0))  # above the clamp: the first step must bring it back
    history = clip_tiny.train(model, small_data, steps=24, batch_size=32, warmup=2, progress=False, device="cpu")
    assert len(history.loss) == 24 and all(math.isfinite(v) for v in history.loss)
    assert model.logit_scale.exp().item() <= 100 + 1e-3
    assert sum(history.loss[-4:]) / 4 < history.loss[0] - 0.1
    assert history.evals == [{"step": 24, **clip_tiny.progress_eval()(model.eval())}]  # recorded at the end


def test_siglip_variant_trains_with_its_own_loss(small_data):
    model = clip_tiny.build(loss="siglip")
    assert model.logit_bias is not None
    batch = small_data.collate([small_data[i] for i in range(16)])
    loss, extra = clip_tiny.contrastive_step(model, batch)
    assert loss.shape == () and extra["s"] == pytest.approx(10.0, rel=1e-5)


def test_class_weights_follow_class_names_order():
    model = clip_tiny.build(seed=1).eval()
    tokenizer = Tokenizer()
    weights = clip_tiny.class_weights(model, tokenizer)
    assert weights.shape == (model.config.embed_dim, len(CLASS_NAMES))
    assert torch.allclose(weights.norm(dim=0), torch.ones(len(CLASS_NAMES)), atol=1e-5)
    prompts = class_prompts()  # the data module's prompts, class index = colour * 3 + shape
    for c in (0, 5, 23):
        want = zero_shot_classifier(model, tokenizer, ["x"], [lambda _, p=p: p for p in prompts[c]])
        assert torch.allclose(weights[:, c], want[:, 0], atol=1e-6), CLASS_NAMES[c]
    assert all(tokenizer.unk_id not in tokenizer(p).flatten().tolist() for p in prompts)


class _ChannelModel(torch.nn.Module):
    """Stand-in CLIP: an image's feature is its top-left pixel; a single shared device parameter."""

    def __init__(self):
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(0.0))
        self.config = SimpleNamespace(embed_dim=3)

    def encode_image(self, images, normalize=False):
        f = images[:, :, 0, 0]
        return torch.nn.functional.normalize(f, dim=-1) if normalize else f


def test_zero_shot_accuracy_on_a_hand_built_case():
    images = torch.zeros(5, 3, 4, 4)
    for i, channel in enumerate([0, 1, 2, 2, 1]):
        images[i, channel] = 1.0  # the pixel's brightest channel is the predicted class
    labels = torch.tensor([0, 1, 2, 0, 0])  # three right, two wrong
    acc = clip_tiny.zero_shot_accuracy(_ChannelModel(), images, labels, torch.eye(3))
    assert acc == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="labels"):
        clip_tiny.zero_shot_accuracy(_ChannelModel(), images, labels[:4], torch.eye(3))


def test_zero_shot_sets_separate_seen_and_held_out_pairs():
    sets = clip_tiny.zero_shot_sets(n=300, seed=7)
    held = {COLOUR_NAMES.index(c) * len(SHAPES) + SHAPES.index(s) for c, s in HELD_OUT}
    seen_labels, held_labels = set(sets["seen"][1].tolist()), set(sets["held-out"][1].tolist())
    assert held_labels == held and not seen_labels & held
    assert len(seen_labels) == len(CLASS_NAMES) - len(held)
    assert sets["seen"][0].shape == (300, 3, 32, 32)
    model = clip_tiny.build(seed=2).eval()
    result = clip_tiny.evaluate(model, {k: (x[:50], y[:50]) for k, (x, y) in sets.items()})
    assert set(result) == {"seen", "held-out"} and all(0 <= v <= 1 for v in result.values())


