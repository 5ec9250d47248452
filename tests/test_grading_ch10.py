"""Chapter 10's checks name the mistake when a wrong answer behaves like a known one."""

import random

import pytest
import torch

from mmcourse.grading import CheckFailed, check


def test_the_study_guide_sampler_as_given_is_named():
    def balanced_indices(labels, n, seed=0):  # as given
        rng = random.Random(seed)
        counts = torch.bincount(labels).tolist()
        weight = [len(labels) / c for c in counts]
        keep = [i for i, y in enumerate(labels.tolist()) if rng.random() < weight[y]]
        random.shuffle(keep)
        return torch.tensor(keep)

    with pytest.raises(CheckFailed, match="indices"):
        check("10.balanced_indices", balanced_indices)


def test_a_sampler_without_replacement_cannot_draw_n():
    def balanced_indices(labels, n, seed=0):
        weights = 1.0 / torch.bincount(labels)[labels].double()
        return torch.multinomial(weights, min(n, len(labels)), replacement=False)

    with pytest.raises(CheckFailed, match="drawn with replacement"):
        check("10.balanced_indices", balanced_indices)


def test_weights_normalised_per_class_pass_any_positive_scale():
    check("10.inverse_frequency_weights", lambda labels: 7.0 / torch.bincount(labels)[labels].float())


def test_a_linear_pacing_is_named():
    def pacing(step, steps, start, doubling):
        return min(1.0, start + (1 - start) * step / steps)

    with pytest.raises(CheckFailed, match="known mistake: grows linearly"):
        check("10.pacing", pacing)
