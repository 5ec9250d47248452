"""The shapes world: determinism, splits, rendering agrees with the attributes, boxes, bad input."""

import pytest
import torch

from mmcourse.data import COLOURS, HELD_OUT, SHAPES, Scenes, render, sample_scenes
from mmcourse.data.world import BACKGROUND, COLOUR_NAMES


def test_same_seed_same_tensors_different_seed_different():
    a, b, c = (sample_scenes(300, s, max_objects=3) for s in (5, 5, 6))
    for field in ("shape", "colour", "size", "center"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.center, c.center)
    assert torch.equal(render(a, 32, seed=1), render(b, 32, seed=1))
    assert not torch.equal(render(a, 32, seed=1), render(a, 32, seed=2))


def test_object_counts_distinct_pairs_and_no_overlap():
    s = sample_scenes(2000, 0, min_objects=1, max_objects=3)
    assert set(s.n_objects.tolist()) == {1, 2, 3}
    label = torch.where(s.present, s.label, -1 - torch.arange(3))  # empty slots never collide
    assert (label.sort(1).values.diff(dim=1) != 0).all(), "two objects of one scene share colour and shape"
    _, masks = render(s, 32, return_masks=True)
    inside = masks > 0.5
    assert inside.sum(1).max() <= 1, "two objects cover the same pixel"


def test_splits_hold_out_compositions():
    held = {(COLOUR_NAMES.index(c), SHAPES.index(s)) for c, s in HELD_OUT}
    train = sample_scenes(3000, 1, max_objects=3, split="train")
    test = sample_scenes(500, 1, max_objects=3, split="test")
    train_pairs, test_pairs = ({*zip(s.colour[s.present].tolist(), s.shape[s.present].tolist(), strict=True)}
                               for s in (train, test))
    assert train_pairs.isdisjoint(held)
    assert test_pairs == held
    # every colour and every shape is still seen in training
    assert {c for c, _ in train_pairs} == set(range(len(COLOURS)))
    assert {s for _, s in train_pairs} == set(range(len(SHAPES)))


@pytest.mark.parametrize("resolution", [32, 64])
def test_pixel_at_object_centre_has_its_colour(resolution):
    s = sample_scenes(400, 2, max_objects=3)
    images = render(s, resolution, seed=3)  # default colour jitter and pixel noise
    palette = torch.tensor(list(COLOURS.values()))
    n, k = s.present.nonzero().unbind(1)
    xy = (s.center[n, k] * resolution).long()
    got = images[n, :, xy[:, 1], xy[:, 0]]  # (M, 3)
    want = palette[s.colour[n, k]]
    assert (got - want).abs().max() < 0.2
    # and the nearest palette colour is the right one
    assert torch.equal(torch.cdist(got, palette).argmin(1), s.colour[n, k])


@pytest.mark.parametrize("resolution", [16, 32, 64])
def test_boxes_contain_the_object_pixels_and_are_tight(resolution):
    s = sample_scenes(300, 4, max_objects=3)
    _, masks = render(s, resolution, return_masks=True)
    boxes = s.boxes(resolution)
    centres = torch.arange(resolution) + 0.5
    for n, k in s.present.nonzero().tolist():
        ys, xs = (masks[n, k] > 0.5).nonzero().unbind(1)  # pixels whose centre is inside the shape
        x0, y0, x1, y1 = boxes[n, k].tolist()
        px, py = centres[xs], centres[ys]
        assert len(xs) > 0
        assert px.min() >= x0 and px.max() <= x1 and py.min() >= y0 and py.max() <= y1
        ys, xs = (masks[n, k] > 0).nonzero().unbind(1)  # every pixel the object touches (sharp corners too)
        px, py = centres[xs], centres[ys]
        assert px.min() - x0 < 1.5 and x1 - px.max() < 1.5 and py.min() - y0 < 1.5 and y1 - py.max() < 1.5


def test_antialias_off_and_sizes():
    s = Scenes.from_objects([[{"colour": "red", "shape": "square", "size": "small", "x": 0.3, "y": 0.3},
                              {"colour": "blue", "shape": "square", "size": "large", "x": 0.7, "y": 0.7}]])
    image, masks = render(s, 32, antialias=False, colour_jitter=0, noise=0, return_masks=True)
    values = {tuple(round(v, 4) for v in px) for px in image[0].permute(1, 2, 0).reshape(-1, 3).tolist()}
    expected = {tuple(round(v, 4) for v in c) for c in (BACKGROUND, COLOURS["red"], COLOURS["blue"])}
    assert values == expected
    small, large = masks[0].sum((1, 2)).tolist()
    assert large > 1.6 * small  # radius ratio 0.14 / 0.09


def test_bad_input_names_the_allowed_values():
    with pytest.raises(ValueError, match="unknown colour 'teal'.*red"):
        sample_scenes(4, colours=["teal"])
    with pytest.raises(ValueError, match="unknown shape 'hexagon'.*circle, square, triangle"):
        Scenes.from_objects([[{"colour": "red", "shape": "hexagon", "size": "small", "x": 0.5, "y": 0.5}]])
    with pytest.raises(ValueError, match="unknown split 'val'"):
        sample_scenes(4, split="val")
    with pytest.raises(ValueError, match="impossible layout"):
        sample_scenes(4, min_objects=12, max_objects=12, sizes=["large"])
    with pytest.raises(ValueError, match="min_objects"):
        sample_scenes(4, min_objects=3, max_objects=2)
    with pytest.raises(ValueError, match="resolution"):
        render(sample_scenes(2), 4)


def test_shape_twins_differ_in_one_shape_and_stay_valid():
    from mmcourse.data import shape_twins

    held = {(COLOUR_NAMES.index(c), SHAPES.index(s)) for c, s in HELD_OUT}
    s = sample_scenes(3000, 4, max_objects=3, split="train")
    t = shape_twins(s, seed=4)
    assert torch.equal(t.colour, s.colour) and torch.equal(t.size, s.size) and torch.equal(t.present, s.present)
    changed = ((t.shape != s.shape) & s.present).sum(1)
    assert changed.max() == 1 and (changed == 1).float().mean() > 0.98  # a scene stays itself only if it must
    pairs = set(zip(t.colour[t.present].tolist(), t.shape[t.present].tolist()))
    assert not pairs & held, "a twin shows a held-out pair"
    label = torch.where(t.present, t.label, -1 - torch.arange(3))
    assert (label.sort(1).values.diff(dim=1) != 0).all(), "two objects of a twin share colour and shape"
    _, masks = render(t, 32, return_masks=True)
    assert (masks > 0.5).sum(1).max() <= 1, "objects of a twin overlap"
    kept = (t.center == s.center).all(-1).all(-1)
    assert 0.5 < kept.float().mean() < 1  # laid out anew only where the new shape does not fit
    assert torch.equal(shape_twins(s, seed=4).shape, t.shape)


def test_indexing_one_scene_out_of_range_is_an_error():
    scenes = sample_scenes(3, 0)
    assert len(scenes[2]) == 1 and scenes[-1].objects(0) == scenes[2].objects(0)
    for i in (3, -4):
        with pytest.raises(IndexError, match=f"scene index {i} out of range for 3 scenes"):
            scenes[i]


def test_a_nan_centre_never_reaches_the_renderer():
    scenes = sample_scenes(2, 0)
    scenes.center[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="centres must be finite"):
        render(scenes, 32)
