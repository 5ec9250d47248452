"""Chapter 11's checks name the mistake when a wrong answer behaves like a known one."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.grading import CheckFailed, check


def test_the_gather_as_given_is_named():
    def gather(parts, rank):  # as given
        copies = [p.detach().clone() for p in parts]
        copies[rank] = parts[rank]
        return torch.cat(copies)

    with pytest.raises(CheckFailed, match="known mistake: copies the other ranks' features"):
        check("11.gather", gather)


def test_local_targets_without_the_rank_offset_are_named():
    def local_clip_loss(x, y, all_x, all_y, scale, rank):
        targets = torch.arange(len(x))
        return (F.cross_entropy(scale * x @ all_y.T, targets) + F.cross_entropy(scale * y @ all_x.T, targets)) / 2

    with pytest.raises(CheckFailed, match="known mistake: uses targets arange\\(b\\) on every rank"):
        check("11.local_clip_loss", local_clip_loss)
