"""Chapter 10's recipe: its data, what each training mode trains, the long-tailed split and the counting task.
(The lecture's bars — the imbalance and its fixes over full trainings — are checked when the notebook runs.)"""

import copy

import pytest
import torch

from mmcourse.recipes import strategies_tiny as S


@pytest.fixture(scope="module")
def data():
    return S.task_data(256, seed=0), S.task_data(128, seed=1)


def test_task_data_is_deterministic_and_labels_are_the_classes(data):
    train, _ = data
    again = S.task_data(256, seed=0)
    assert torch.equal(train.images, again.images) and torch.equal(train.mels, again.mels)
    assert train.images.shape == (256, 3, 16, 16) and train.mels.shape == (256, 40, 41)
    assert train.labels.min() >= 0 and train.labels.max() < 24
    assert torch.allclose(train.mels.mean((1, 2)), torch.zeros(256), atol=1e-4)


def _changed(before, after, prefix):
    return any(not torch.equal(p, after.state_dict()[n]) for n, p in before.state_dict().items()
               if n.startswith(prefix) and p.is_floating_point())


@pytest.mark.parametrize("mode, image_moves, sound_moves", [("image", True, False), ("sound", False, True),
                                                            ("joint", True, True), ("alternating", True, True),
                                                            ("ogm-ge", True, True)])
def test_each_mode_trains_the_streams_it_names(data, mode, image_moves, sound_moves):
    train, _ = data
    start = S.build(train, seed=0)
    model, history = S.train(mode, train, steps=4, seed=0, model=copy.deepcopy(start))
    assert len(history.loss) == 4
    assert _changed(start, model, "image.") == image_moves
    assert _changed(start, model, "sound.") == sound_moves


def test_the_history_holds_both_probes_and_the_fused_accuracy(data):
    train, test = data
    _, history = S.train("joint", train, test, steps=4, eval_every=2)
    assert [e["step"] for e in history.evals] == [2, 4]
    assert set(history.last) == {"step", "image probe", "sound probe", "fused"}
    assert all(0 <= history.last[k] <= 1 for k in ("image probe", "sound probe", "fused"))


def test_gradual_integration_runs_its_three_stages_without_touching_the_given_model(data):
    train, test = data
    image_model, _ = S.train("image", train, steps=3)
    kept = copy.deepcopy(image_model.state_dict())
    model, history = S.gradual(train, test, image_model=image_model, steps=(3, 3, 3))
    assert all(torch.equal(v, image_model.state_dict()[k]) for k, v in kept.items())
    assert model is not image_model and history.evals[-1]["step"] == 3


def test_bad_modes_and_options_are_refused(data):
    train, _ = data
    with pytest.raises(ValueError, match="mode"):
        S.train("late", train, steps=1)
    with pytest.raises(ValueError, match="optimizer"):
        S.train("joint", train, steps=1, optimizer="lion")
    with pytest.raises(ValueError, match="ogm"):
        S.train("joint", train, steps=1, ogm=S.OGMGE(1.0))


def test_the_long_tailed_split_falls_by_the_imbalance():
    labels = torch.arange(24).repeat(100)
    counts = torch.bincount(labels[S.long_tailed(labels, imbalance=50)], minlength=24)
    assert counts[0] == 100 and counts[-1] == 2 and (counts[:-1] >= counts[1:]).all()


def test_counting_data_and_a_curriculum_counter():
    images, counts = S.counting_data(64, seed=0)
    assert images.shape == (64, 3, 16, 16) and set(counts.tolist()) <= {0, 1, 2, 3}
    test = S.counting_data(32, seed=1)
    for curriculum in (False, True):
        model, history = S.train_counter(images, counts, test, curriculum, steps=4, eval_every=2)
        assert [e["step"] for e in history.evals] == [2, 4] and model.head.out_features == 4
