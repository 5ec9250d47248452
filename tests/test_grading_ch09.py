"""Chapter 09's checks name the mistake when a wrong answer behaves like a known one."""

import pytest
import torch

from mmcourse.grading import CheckFailed, check


def test_the_late_fusion_as_given_is_named():
    def late_fusion(image_logits, image_classes, sound_logits, sound_classes, weights):  # as given
        p_image = image_logits.softmax(dim=0)
        p_sound = sound_logits.softmax(dim=0)
        return weights[0] * p_image + weights[1] * p_sound

    with pytest.raises(CheckFailed, match="known mistake: adds the two probability vectors column by column"):
        check("09.late_fusion", late_fusion)


def test_tensor_fusion_without_the_ones_is_caught_by_its_shape():
    def tensor_fusion(za, zb):
        return torch.einsum("bi,bj->bij", za, zb).flatten(1)

    with pytest.raises(CheckFailed, match="wrong shape"):
        check("09.tensor_fusion", tensor_fusion)


def test_attention_normalised_over_the_queries_is_named():
    def cross_attention_fusion(a, b, w_q, w_k, w_v):
        q, k, v = a @ w_q, b @ w_k, b @ w_v
        weights = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=1)
        return (weights @ v).mean(1), weights

    with pytest.raises(CheckFailed, match="known mistake: normalises the weights over the queries"):
        check("09.cross_attention_fusion", cross_attention_fusion)
