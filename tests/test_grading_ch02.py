"""Chapter 02's checks name the mistake when a wrong answer behaves like a known one."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.grading import CheckFailed, check


def test_one_direction_loss_is_named():
    def clip_loss(image_features, text_features, logit_scale):  # a learner's answer, written their own way
        logits = logit_scale * F.normalize(image_features, dim=1) @ F.normalize(text_features, dim=1).t()
        return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))

    with pytest.raises(CheckFailed, match="known mistake: takes the loss of one direction only"):
        check("02.clip_loss", clip_loss)


def test_the_tutorial_siglip_loss_is_named():
    def siglip_loss(image_features, text_features, logit_scale, logit_bias):  # the exercise's buggy code as given
        x = F.normalize(image_features, dim=-1)
        y = F.normalize(text_features, dim=-1)
        logits = logit_scale * x @ y.T + logit_bias
        labels = torch.eye(len(logits))
        return -F.logsigmoid(labels * logits).sum() / len(logits)

    with pytest.raises(CheckFailed, match="known mistake: labels from torch.eye are 0 off the diagonal"):
        check("02.siglip_loss", siglip_loss)


def test_pooling_at_the_last_eot_is_named():
    def pool_eot(hidden, ids, eot_id):
        rows = [(row == eot_id).nonzero().max() for row in ids]
        return hidden[torch.arange(len(ids), device=ids.device), torch.stack(rows)]

    with pytest.raises(CheckFailed, match="known mistake: pools at the last <eot> of a row"):
        check("02.pool_eot", pool_eot)
