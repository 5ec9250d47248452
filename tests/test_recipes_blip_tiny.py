"""Chapter 04's recipe: pairs and batches, same-meaning captions, CapFilt's bookkeeping, the evaluations.

An untrained image tower stands in for the zoo's CLIP: these tests check the plumbing, not the bars (the lecture
records those, `benchmarks/bench_seeds_blip.py` spreads them over seeds)."""

import pytest
import torch

from mmcourse.nn import VisionTransformer
from mmcourse.recipes import blip_tiny as R


@pytest.fixture(scope="module")
def visual():
    torch.manual_seed(0)
    return VisionTransformer(32, 4, width=64, layers=1, heads=4, output_dim=64, conv_stem=True).eval()


@pytest.fixture(scope="module")
def web(visual):
    return R.web_data(visual, n=60, noise_fraction=0.4)


def test_clean_captions_are_worded_alike_at_every_noise_level(visual, web):
    clean = R.web_data(visual, n=60)
    right = web.dataset.clean
    assert 0 < right.sum() < 60
    assert [t for t, ok in zip(web.pairs.texts, right.tolist()) if ok] == \
        [t for t, ok in zip(clean.pairs.texts, right.tolist()) if ok]
    assert all(t1 != t2 for t1, t2, ok in zip(web.pairs.texts, clean.pairs.texts, right.tolist()) if not ok)
    assert web.pairs.tokens.shape == (60, 65, 64)


def test_same_description_reads_the_captions():
    same = R.same_description(["a red circle", "a large red disk", "a small red circle", "a blue square",
                               "a small red circle and a blue square", "a blue square and a small red circle"])
    assert same.diagonal().all() and (same == same.T).all()
    assert same[0, 1] and same[0, 2] and not same[1, 2]  # sizes compared only when both captions give them
    assert not same[0, 3] and same[4, 5] and not same[3, 4]


def test_batches_are_deterministic_and_checked(web):
    batches = web.pairs.batches(16, seed=3)
    a, b = batches(5), batches(5)
    assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["image_tokens"], b["image_tokens"])
    assert a["image_tokens"].shape == (16, 65, 64) and a["same"].shape == (16, 16)
    with pytest.raises(ValueError, match="batch_size must be in"):
        web.pairs.batches(61)
    with pytest.raises(ValueError, match="indices must be in"):
        R.Pairs(web.pairs.tokens, torch.tensor([0, 60]), ["a red circle", "a blue square"])


def test_training_runs_and_only_asked_objectives_count(web):
    model = R.build(seed=0)
    history = R.train(model, web.pairs, steps=3, batch_size=16, objectives=("itc", "lm"), progress=False)
    assert len(history.loss) == 3 and all(torch.isfinite(torch.tensor(history.loss)))
    with pytest.raises(ValueError, match="objectives"):
        R.train(model, web.pairs, steps=1, batch_size=16, objectives=("mlm",), progress=False)


def test_capfilt_keeps_each_caption_next_to_its_own_image(web):
    model = R.build(seed=0).eval()
    everything = R.capfilt(model, model, web.pairs, threshold=-1.0)
    written = [i for i, t in enumerate(everything.synthetic) if t]  # an untrained captioner may stop at once
    assert everything.web_kept.all() and everything.synthetic_kept.tolist() == [bool(t) for t in everything.synthetic]
    assert everything.pairs.texts == web.pairs.texts + [everything.synthetic[i] for i in written]
    assert torch.equal(everything.pairs.image, torch.cat([web.pairs.image, torch.tensor(written, dtype=torch.long)]))
    nothing = R.capfilt(model, model, web.pairs, threshold=1.0)
    assert len(nothing.pairs) == 0
    probs = R.match_probs(model, web.pairs)
    some = R.capfilt(model, model, web.pairs, threshold=float(probs.median()))
    kept = some.web_kept.nonzero().flatten()
    assert torch.equal(some.pairs.image[:len(kept)], kept)
    assert some.pairs.texts[:len(kept)] == [web.pairs.texts[i] for i in kept]


def test_filter_quality_and_evaluations_run(visual):
    q = R.filter_quality(torch.tensor([True, True, False, False]), torch.tensor([True, False, True, False]))
    assert q == {"precision": 0.5, "recall": 0.5}
    data = R.test_data(visual, n=12)
    assert len(data.hard_negatives) == 12 and all(h != t for h, t in zip(data.hard_negatives, data.texts))
    scores = R.evaluate(R.build(seed=0), data)
    assert set(scores) == {"itm_hard", "itm_random", "captions", "zero_shot", "R@1 ITC", "R@1"}
    assert all(0 <= v <= 1 for v in scores.values())
    assert R.caption_accuracy(["a large red circle"], [[{"colour": "red", "shape": "circle", "size": "large"}]]) == 1
