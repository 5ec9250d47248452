"""Batch samplers: every item once per epoch, the same batch for the same step, twins together."""

import pytest
import torch

from mmcourse.data import CaptionDataset, ShapesDataset, epoch_batches


@pytest.fixture(scope="module")
def small_data():
    return CaptionDataset(96, seed=3, split="train", max_objects=3, captions_per_image=1, twins=True,
                          context_length=24)


def test_batches_cover_each_epoch_once_and_reword_the_captions(small_data):
    batches = epoch_batches(small_data, batch_size=32, seed=0)
    epoch0 = [batches(step) for step in range(3)]
    seen = torch.cat([b["index"] for b in epoch0])
    assert sorted(seen.tolist()) == list(range(96))  # every image once per epoch
    assert torch.equal(batches(1)["text"], epoch0[1]["text"])  # a step always gives the same batch
    epoch1 = [batches(step) for step in range(3, 6)]
    caption_of = [{int(i): c for b in ep for i, c in zip(b["index"], b["captions"])} for ep in (epoch0, epoch1)]
    changed = sum(caption_of[0][i] != caption_of[1][i] for i in range(96))
    assert changed > 30, "captions must be re-worded every epoch"
    assert all(b["text"].shape[1] == 24 for b in epoch0)
    with pytest.raises(ValueError, match="batch_size"):
        epoch_batches(small_data, batch_size=97)


def test_twin_batches_hold_each_scene_with_its_twin(small_data):
    assert small_data.twins and len(small_data) == 96
    batches = epoch_batches(small_data, batch_size=16, seed=0)
    epoch = [batches(step) for step in range(6)]
    for b in epoch:
        scenes, twins = b["index"].chunk(2)
        assert torch.equal(twins, scenes + 48)  # item i and its twin i + n/2 come together
        for i in scenes.tolist():
            names = [[(o["colour"], o["shape"], o["size"]) for o in small_data.objects[j]] for j in (i, i + 48)]
            assert sum(a != c for a, c in zip(*names, strict=True)) <= 1  # one object's shape at most
    assert sorted(torch.cat([b["index"] for b in epoch]).tolist()) == list(range(96))
    with pytest.raises(ValueError, match="even"):
        epoch_batches(small_data, batch_size=15)
    with pytest.raises(ValueError, match="twins=True needs an even n"):
        CaptionDataset(95, twins=True)


def test_epoch_batches_of_a_plain_dataset_and_bad_batch_sizes():
    data = ShapesDataset(20, seed=1)
    data.collate = lambda items: {"index": torch.tensor([b["index"] for b in items])}
    batches = epoch_batches(data, batch_size=6, seed=4)
    epoch = torch.cat([batches(step)["index"] for step in range(3)])  # 3 full batches, 2 items dropped
    assert len(set(epoch.tolist())) == 18
    assert not torch.equal(batches(0)["index"], epoch_batches(data, 6, seed=5)(0)["index"])  # the seed matters
    for bad in (0, 21, 2.0):
        with pytest.raises(ValueError, match=f"batch_size must be an int in \\[1, 20\\].*got {bad!r}"):
            epoch_batches(data, bad)


def test_inverse_frequency_weights_give_every_class_the_same_total():
    from mmcourse.data import inverse_frequency_weights

    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    w = inverse_frequency_weights(labels)
    assert torch.allclose(w, torch.tensor([1 / 3, 1 / 3, 1 / 3, 1.0, 0.5, 0.5], dtype=torch.float64))
    totals = torch.zeros(3, dtype=torch.float64).index_add_(0, labels, w)
    assert torch.allclose(totals, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"classes \[1\] have no example"):
        inverse_frequency_weights(torch.tensor([0, 2, 2]))
    with pytest.raises(ValueError, match="num_classes=2"):
        inverse_frequency_weights(torch.tensor([0, 1, 2]), num_classes=2)
    with pytest.raises(ValueError, match="empty"):
        inverse_frequency_weights(torch.tensor([], dtype=torch.long))


def test_balanced_batches_draw_a_long_tail_uniformly_and_repeatably():
    from mmcourse.data import balanced_batches, class_frequencies

    labels = torch.cat([torch.full((k,), c) for c, k in enumerate([400, 100, 20, 5])])
    batches = balanced_batches(labels, 256, seed=3)
    assert torch.equal(batches(7), batches(7)) and not torch.equal(batches(7), batches(8))
    shares = class_frequencies(torch.cat([batches(s) for s in range(400)]), labels, 4)
    assert (shares * 4 - 1).abs().max() < 0.03, shares
    plain = class_frequencies(torch.randint(len(labels), (100_000,)), labels, 4)
    assert plain[0] > 0.75 and plain[3] < 0.02  # without the weights the tail stays a tail


def test_pacing_doubles_from_start_and_stops_at_one():
    from mmcourse.data import pacing

    assert pacing(0, 400, 0.2, 0.25) == pytest.approx(0.2)
    assert pacing(100, 400, 0.2, 0.25) == pytest.approx(0.4)
    assert pacing(200, 400, 0.2, 0.25) == pytest.approx(0.8)
    assert pacing(399, 400, 0.2, 0.25) == 1.0
    with pytest.raises(ValueError, match="start"):
        pacing(0, 400, 0.0)


def test_a_curriculum_draws_the_easiest_items_first_then_all():
    from mmcourse.data import curriculum_batches

    difficulty = torch.arange(100) % 4  # 25 items of each difficulty 0..3
    batches = curriculum_batches(difficulty, 64, steps=100, seed=1)
    assert difficulty[batches(0)].max() == 0  # the first fifth of the pool: difficulty 0 only
    late = torch.cat([batches(s) for s in range(90, 100)])
    assert set(difficulty[late].tolist()) == {0, 1, 2, 3}
    assert torch.equal(batches(5), batches(5))
    empty = curriculum_batches(difficulty, 8, steps=10, pace=lambda step, steps: 0.0)
    with pytest.raises(ValueError, match=r"pace\(0, 10\) must be a share in \(0, 1\]"):
        empty(0)
    with pytest.raises(ValueError, match="empty"):
        curriculum_batches(torch.zeros(0), 8, 10)
