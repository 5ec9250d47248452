"""Chapter 10 exercises: inverse-frequency weights and a pacing function (build); the study guide's balanced sampler
(fix); an OGM-GE strength for a probe bar (experiment); three questions (quiz)."""

from __future__ import annotations

import contextlib
import functools
import io
import math
import random

import torch

from mmcourse.grading.core import expect_close, fail, register, register_quiz
from mmcourse.grading.memo import remembered
from mmcourse.recipes import strategies_tiny


def _long_tail(n_classes: int = 12, most: int = 300, imbalance: float = 60.0) -> torch.Tensor:
    """Labels of a long-tailed set: class c has most · imbalance^(-c / (C - 1)) items, shuffled."""
    counts = [max(1, round(most * imbalance ** (-c / (n_classes - 1)))) for c in range(n_classes)]
    labels = torch.cat([torch.full((k,), c) for c, k in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(100))]


# ---------------------------------------------------------------- 10.inverse_frequency_weights
def inverse_frequency_weights(labels):
    """Reference: weight of item i = 1 / (number of items of class labels[i])."""
    return 1.0 / torch.bincount(labels)[labels].double()


def _weights_by_count(labels):
    """weights each item by its class's count: the common classes are drawn even more often"""
    return torch.bincount(labels)[labels].double()


def _weights_sqrt(labels):
    """divides by the square root of the count: halfway to balanced, the common classes still win"""
    return 1.0 / torch.bincount(labels)[labels].double().sqrt()


def _weights_per_class(labels):
    """returns one weight per class (C,), not one per item (N,)"""
    return 1.0 / torch.bincount(labels).double()


def _weights_uniform(labels):
    """gives every item the same weight: sampling stays as long-tailed as the data"""
    return torch.ones(len(labels), dtype=torch.float64)


@register("10.inverse_frequency_weights", inverse_frequency_weights,
          [_weights_by_count, _weights_sqrt, _weights_per_class, _weights_uniform])
def _test_weights(fn):
    n = 0
    for labels in (torch.tensor([0, 0, 0, 1]), torch.tensor([2, 0, 1, 1, 2, 2, 2]), _long_tail()):
        got = fn(labels.clone())
        if not isinstance(got, torch.Tensor) or got.shape != labels.shape:
            fail(f"labels of shape {tuple(labels.shape)}", f"one weight per item, shape {tuple(labels.shape)}",
                 got if not isinstance(got, torch.Tensor) else f"shape {tuple(got.shape)}")
        if not (got > 0).all():
            fail(f"labels {labels.tolist()[:12]}", "positive weights", got.tolist()[:12])
        got = got.double() / got.double().sum()  # any positive scale draws the same
        want = inverse_frequency_weights(labels)
        expect_close(got, want / want.sum(), f"labels {labels.tolist()[:12]}{' ...' if len(labels) > 12 else ''}",
                     "each item's weight is 1 / (the number of items of its class), so every class's weights sum "
                     "to the same total", atol=1e-9)
        n += 1
    return n


# ---------------------------------------------------------------- 10.pacing
def pacing(step, steps, start, doubling):
    """Reference: start · 2^(step / (doubling · steps)), capped at 1."""
    return min(1.0, start * 2 ** (step / (doubling * steps)))


def _pacing_uncapped(step, steps, start, doubling):
    """never caps the share at 1: late in training it asks for more than the whole data set"""
    return start * 2 ** (step / (doubling * steps))


def _pacing_linear(step, steps, start, doubling):
    """grows linearly from start to 1 over the training instead of doubling"""
    return min(1.0, start + (1 - start) * step / steps)


def _pacing_steps(step, steps, start, doubling):
    """doubles every `doubling` steps rather than every doubling · steps steps"""
    return min(1.0, start * 2 ** (step / doubling))


def _pacing_empty_start(step, steps, start, doubling):
    """starts from an empty pool: start · (2^x − 1) is 0 at step 0"""
    return min(1.0, start * (2 ** (step / (doubling * steps)) - 1))


@register("10.pacing", pacing, [_pacing_uncapped, _pacing_linear, _pacing_steps, _pacing_empty_start])
def _test_pacing(fn):
    n = 0
    for steps, start, doubling in [(400, 0.2, 0.25), (1000, 0.1, 0.1), (50, 0.5, 0.5)]:
        for step in sorted({0, 1, steps // 7, steps // 3, steps // 2, steps - 1}):
            got = fn(step, steps, start, doubling)
            if isinstance(got, torch.Tensor):
                got = got.item()
            if isinstance(got, bool) or not isinstance(got, (int, float)):
                fail(f"pacing({step}, {steps}, {start}, {doubling})", "a number in (0, 1]", got)
            expect_close(torch.tensor(float(got)), torch.tensor(pacing(step, steps, start, doubling)),
                         f"pacing({step}, {steps}, {start}, {doubling})",
                         "start at `start`, double every doubling · steps steps, never above 1", atol=1e-9)
            n += 1
    return n


# ---------------------------------------------------------------- 10.balanced_indices (fix)
def balanced_indices(labels, n, seed=0):
    """Reference: n indices drawn with replacement, item i with probability ∝ 1 / count of its class."""
    weights = 1.0 / torch.bincount(labels)[labels].double()
    return torch.multinomial(weights, n, replacement=True, generator=torch.Generator().manual_seed(seed))


def _balanced_study_guide(labels, n, seed=0):
    """the study guide's sampler: keeps item i if random() < total / count, a weight above 1 for every class, so it
    keeps every item once and returns the data set as it is"""
    rng = random.Random(seed)
    counts = torch.bincount(labels).tolist()
    weight = [len(labels) / c if c else 0.0 for c in counts]
    return torch.tensor([i for i, y in enumerate(labels.tolist()) if rng.random() < weight[y]])


def _balanced_normalised_accept(labels, n, seed=0):
    """normalises the weights to sum to 1 and still accepts each item with probability = weight: far too few
    items, and still not n of them"""
    rng = random.Random(seed)
    weights = 1.0 / torch.bincount(labels)[labels].double()
    weights = (weights / weights.sum()).tolist()
    return torch.tensor([i for i, w in enumerate(weights) if rng.random() < w], dtype=torch.long)


def _balanced_by_count(labels, n, seed=0):
    """draws n items with probability ∝ the class count: the tail gets rarer still"""
    weights = torch.bincount(labels)[labels].double()
    return torch.multinomial(weights, n, replacement=True, generator=torch.Generator().manual_seed(seed))


@register("10.balanced_indices", balanced_indices,
          [_balanced_study_guide, _balanced_normalised_accept, _balanced_by_count])
def _test_balanced(fn):
    labels = _long_tail()
    classes = int(labels.max()) + 1
    n = 400_000
    got = fn(labels.clone(), n, 0)
    if not isinstance(got, torch.Tensor) or got.ndim != 1 or got.dtype not in (torch.int64, torch.int32):
        fail("balanced_indices(labels, 400000)", "a 1-D tensor of int indices", got)
    if len(got) != n:
        fail(f"balanced_indices(labels of {len(labels)} items, {n})", f"{n} indices (drawn with replacement)",
             f"{len(got)} indices")
    if got.numel() and (got.min() < 0 or got.max() >= len(labels)):
        fail("the indices", f"in [0, {len(labels)})", f"from {got.min().item()} to {got.max().item()}")
    share = torch.bincount(labels[got], minlength=classes).double() / n
    worst = (share * classes - 1).abs().max().item()
    if worst > 0.03:
        fail(f"class shares of the drawn items on a long-tailed set ({classes} classes, "
             f"{torch.bincount(labels).max().item()} to {torch.bincount(labels).min().item()} items each)",
             f"every class within 3 % of 1/{classes} = {1 / classes:.4f}",
             f"{share.min().item():.4f} to {share.max().item():.4f}",
             "draw with replacement, item i with probability proportional to 1 / (its class's count): "
             "torch.multinomial or WeightedRandomSampler do exactly that")
    return 1


# ---------------------------------------------------------------- 10.ogm_alpha (experiment)
EXPERIMENT = dict(image_probe=0.68, fused=0.985)


@functools.cache
def experiment_data():
    """The lecture's task: 4 000 training and 2 000 test examples (about 3 s, once per session)."""
    return strategies_tiny.task_data(strategies_tiny.N_TRAIN, 0), strategies_tiny.task_data(strategies_tiny.N_TEST, 1)


@remembered
def run_ogm(alpha: float) -> dict[str, float]:
    """The lecture's two-stream model trained 400 steps (SGD, seed 0) with OGM-GE of strength `alpha` (alpha = 0:
    no modulation, the joint model); its image-encoder probe and fused test accuracy."""
    train, test = experiment_data()
    with contextlib.redirect_stdout(io.StringIO()):
        model, _ = strategies_tiny.train("ogm-ge", train, seed=0, alpha=alpha)
    return {"image probe": strategies_tiny.probe(model, "image", train, test),
            "fused": strategies_tiny.fused_accuracy(model, test)}


def _alpha_reference():
    return 3.0


def _alpha_none():
    """alpha 0: k = 1 always, no modulation -- the joint model, whose image encoder starves"""
    return 0.0


def _alpha_weak():
    """alpha 0.1: k stays near 1, the sound is barely slowed"""
    return 0.1


@register("10.ogm_alpha", _alpha_reference, [_alpha_none, _alpha_weak])
def _test_ogm_alpha(fn):
    alpha = fn()
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        fail("my_alpha() must return OGM's strength", "a number ≥ 0", alpha)
    got = run_ogm(float(alpha))
    if got["image probe"] < EXPERIMENT["image_probe"] or got["fused"] < EXPERIMENT["fused"]:
        fail(f"alpha {alpha:g}: image probe {got['image probe']:.3f}, fused accuracy {got['fused']:.3f}",
             f"image probe ≥ {EXPERIMENT['image_probe']} and fused ≥ {EXPERIMENT['fused']}",
             f"{got['image probe']:.3f}, {got['fused']:.3f}",
             "a larger alpha holds the sound back more strongly once it leads")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("10.quiz_why_easy_wins", "Trained with one loss on the fused logits, why does the image encoder learn "
              "so much less than when it is trained alone?", "b",
              "the fused loss falls as soon as either stream is right; the sound is right within a few dozen steps, "
              "the loss is then near zero, and the image stream's gradient is proportional to what is left of it. "
              "Chapter 10's probe: 57 % inside the joint model, 87 % alone.",
              choices={"a": "the image stream has fewer parameters than the sound stream",
                       "b": "the sound lowers the fused loss first, leaving the image stream almost no gradient",
                       "c": "the fused head ignores the image features by design",
                       "d": "batch normalisation in the image encoder cancels its gradient"},
              wrong={"a": "the two streams have about the same size (25 k and 22 k parameters).",
                     "c": "the head is a sum of the two streams' logits: it uses whatever each stream provides.",
                     "d": "the same encoder with the same BatchNorm learns well when trained alone."})
register_quiz("10.quiz_curriculum", "When is a curriculum (easy examples first) most likely to help?", "c",
              "when the hard examples give little or misleading signal at the start (too hard, too noisy), learning "
              "the easy ones first makes the hard ones learnable. When every example is learnable from the start, "
              "as counting was in chapter 10, holding the hard ones back only delays them.",
              choices={"a": "always: easy-to-hard is how people learn",
                       "b": "when the data set is balanced across difficulties",
                       "c": "when the hard examples are too hard or too noisy to learn from at first",
                       "d": "when the model is large enough to memorise the easy examples"},
              wrong={"a": "chapter 10 measured the opposite on counting: the curriculum learned more slowly.",
                     "b": "balance across difficulties says nothing about whether the hard ones can be learned early.",
                     "d": "memorising the easy examples is a risk of a curriculum, not a reason for one."})
register_quiz("10.quiz_ogm_k", "With OGM's k = 1 − tanh(α(ρ − 1)), α = 1, and the sound's score twice the image's "
              "(ρ = 2): by what factor are the sound stream's gradients multiplied? (3 decimals)",
              1 - math.tanh(1.0),
              "k = 1 − tanh(1) ≈ 0.238: the leading stream's gradients shrink to about a quarter; the image stream "
              "keeps k = 1.", tolerance=0.001,
              wrong={1.0: "k = 1 is the trailing stream's factor; the leading stream's is 1 − tanh(α(ρ − 1)).",
                     0.5: "that is 1/ρ; OGM uses 1 − tanh(α(ρ − 1))."})
