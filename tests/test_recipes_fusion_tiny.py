"""Chapter 09's recipe: the two tasks are what they claim, and the trainings wire the streams as asked.

An untrained two-block image tower stands in for the zoo's CLIP: these tests check the plumbing, not the accuracy
(the lecture and benchmarks/bench_seeds_fusion.py measure that)."""

import pytest
import torch

from mmcourse.data import SIZES, Scenes, log_mel_spectrogram, object_sounds
from mmcourse.models.fusion import SoundEncoder
from mmcourse.nn import VisionTransformer
from mmcourse.recipes import fusion_tiny as R


@pytest.fixture(scope="module")
def interaction():
    return R.task_data("interaction", 300, seed=3)


@pytest.fixture(scope="module")
def features(interaction):
    torch.manual_seed(0)
    visual = VisionTransformer(32, 4, width=64, layers=2, heads=4, output_dim=64).eval()
    sound_encoder = SoundEncoder(40, 41)
    return R.features(interaction, visual, sound_encoder)


def test_interaction_asks_the_size_of_the_object_that_sounds(interaction):
    s, rows = interaction.scenes, torch.arange(300)
    assert (s.n_objects == 2).all() and (s.size[:, 0] != s.size[:, 1]).all()
    assert torch.equal(interaction.labels, s.size[rows, interaction.sounding])
    assert 0.4 < interaction.sounding.float().mean() < 0.6 and 0.4 < interaction.labels.float().mean() < 0.6
    assert interaction.class_names == SIZES
    mel = R.standardise(log_mel_spectrogram(object_sounds(s.colour[rows, interaction.sounding],
                                                          s.shape[rows, interaction.sounding], 3)))
    torch.testing.assert_close(interaction.mels, mel)
    assert interaction.images.shape == (300, 3, 32, 32)
    again = R.task_data("interaction", 300, seed=3)
    assert torch.equal(again.labels, interaction.labels) and torch.equal(again.images, interaction.images)


def test_control_names_the_one_object():
    data = R.task_data("control", 50, seed=1)
    assert (data.scenes.n_objects == 1).all()
    assert torch.equal(data.labels, data.scenes.colour[:, 0] * 3 + data.scenes.shape[:, 0])
    with pytest.raises(ValueError, match="task"):
        R.task_data("xor", 10)


def test_features_are_token_sets_and_early_fusion_reads_the_raw_inputs(features, interaction):
    assert features.image.shape == (300, 64, 64) and features.sound.shape == (300, 11, 64)
    assert features.inputs("early")[0] is features.images and features.inputs("cross")[1] is features.sound
    assert torch.equal(features.labels, interaction.labels)


def test_a_single_modality_model_trains_its_own_head_only(features):
    model, history = R.train("late", features, steps=3, modalities=("sound",), progress=False, device="cpu")
    assert len(history.loss) == 3
    grads = {n.split(".")[0]: p.grad is not None and bool(p.grad.any()) for n, p in model.named_parameters()}
    assert grads == {"head_image": False, "head_sound": True, "fusion": False}  # one term: its weight is 1
    with pytest.raises(ValueError, match="modalities"):
        R.train("late", features, steps=1, modalities=("smell",), progress=False)


def test_accuracy_with_a_missing_modality(features):
    model, _ = R.train("concat", features, steps=2, modality_dropout=0.5, progress=False, device="cpu")
    for missing in (None, "image", "sound"):
        assert 0 <= R.accuracy(model, features, missing) <= 1
    with torch.no_grad():
        alone = (model(None, features.sound).argmax(1) == features.labels).float().mean()
    assert R.accuracy(model, features, "image") == pytest.approx(float(alone))
    with pytest.raises(ValueError, match="missing"):
        R.accuracy(model, features, "both")


def test_from_scenes_is_the_task_for_hand_made_scenes():
    scenes = Scenes.from_objects([[{"colour": "red", "shape": "circle", "size": "small", "x": 0.3, "y": 0.5},
                                     {"colour": "blue", "shape": "square", "size": "large", "x": 0.7, "y": 0.5}]] * 2)
    data = R.from_scenes("interaction", scenes, torch.tensor([0, 1]))
    assert data.labels.tolist() == [0, 1]  # small red circle, large blue square
    with pytest.raises(ValueError, match="sounding"):
        R.from_scenes("interaction", scenes, torch.tensor([0, 2]))


def test_attention_on_objects_measures_the_mass_on_each_objects_patches():
    scenes = Scenes.from_objects([[{"colour": "red", "shape": "square", "size": "small", "x": 0.25, "y": 0.25},
                                     {"colour": "blue", "shape": "circle", "size": "large", "x": 0.75, "y": 0.75}]])
    data = R.from_scenes("interaction", scenes, torch.tensor([1]))
    attn = torch.zeros(1, 64)
    attn[0, 6 * 8 + 6] = 0.5  # patch (row 6, col 6): inside the blue circle (centre at pixel 24, 24)
    attn[0, 2 * 8 + 2] = 0.3  # patch (2, 2): the red square
    attn[0, 0] = 0.2  # a corner: neither
    heard, other = R.attention_on_objects(attn, data)
    torch.testing.assert_close(heard, torch.tensor([0.5]))
    torch.testing.assert_close(other, torch.tensor([0.3]))
