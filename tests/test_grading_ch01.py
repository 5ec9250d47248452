"""Chapter 01's checks: a wrong answer that behaves like a known mistake is named; the rules the text states hold."""

import time

import pytest
import torch

from mmcourse.grading import CheckFailed, check
from mmcourse.grading.checks import ch01


def _feedback(name, answer) -> str:
    with pytest.raises(CheckFailed) as err:
        check(name, answer)
    return str(err.value)


def test_a_mask_without_its_diagonal_is_named():
    def causal_mask(length, device=None):
        return torch.ones(length, length, device=device).bool().tril(diagonal=-1)

    assert "known mistake: hides the diagonal: a query may not attend to itself" in _feedback(
        "01.causal_mask", causal_mask)


def test_a_mask_made_on_the_cpu_is_rejected_and_named():
    def causal_mask(length, device=None):
        return torch.tril(torch.ones(length, length, dtype=torch.bool))  # ignores `device`

    msg = _feedback("01.causal_mask", causal_mask)
    assert "must be created on the device you are given" in msg
    assert "known mistake: creates the mask on the CPU whatever the device asked for" in msg


def test_unscaled_attention_is_named():
    def attention(q, k, v, mask=None):
        scores = q @ k.mT
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        w = torch.softmax(scores, dim=-1)
        return w @ v, w

    assert "known mistake: forgets to divide the scores by √d" in _feedback("01.attention", attention)


def test_the_buggy_snippets_of_the_fix_exercises_are_named():
    def post_ln(x, ln_1, attn, ln_2, mlp):  # the code the exercise hands out
        x = ln_1(x + attn(x))
        return ln_2(x + mlp(x))

    def batch_as_sequence(x, mha):
        out, _ = mha(x, x, x)
        return out

    assert "known mistake: normalises after each residual sum (post-LN)" in _feedback("01.pre_ln_block", post_ln)
    assert "known mistake: feeds (B, L, D) to a sequence-first layer" in _feedback("01.self_attend",
                                                                                    batch_as_sequence)


def test_augmentations_that_cannot_work_are_rejected_fast_and_named():
    start = time.perf_counter()
    msg = _feedback("01.colour_shortcut", lambda images, generator: images.clone())
    assert "alike" in msg and "known mistake: returns the images unchanged" in msg
    msg = _feedback("01.colour_shortcut", lambda images, generator: images.flip(1))
    assert "known mistake: swaps red and blue in every image alike" in msg
    msg = _feedback("01.colour_shortcut", lambda images, generator: images[torch.randperm(len(images))])
    assert "same generator state gave two different results" in msg
    assert time.perf_counter() - start < 10  # none of them trains a model


def test_a_wrong_quiz_answer_is_explained():
    assert "counts the patches only" in _feedback("01.quiz_tokens", 64)
    assert "the softmax over the keys does not know their order" in _feedback("01.quiz_no_positions", "b")


def test_the_experiment_recipe_without_augmentation_misses_the_bar():
    """The premise of the experiment: the recipe alone stays below the bar on the held-out pairs."""
    torch.set_num_threads(1)
    model = ch01._shape_recipe(lambda images, generator: images)
    assert ch01.shape_accuracy_on_held_out_pairs(model) < ch01.SHORTCUT_BAR
