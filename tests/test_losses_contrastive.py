"""Contrastive losses against open_clip's ClipLoss / SigLipLoss (values, gradients) and at the extremes."""

import math

import pytest
import torch
import torch.nn.functional as F

from mmcourse.losses import clip_loss, siglip_loss, symmetric_cross_entropy

open_clip_loss = pytest.importorskip("open_clip.loss")


def features(B=8, D=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, D, generator=g, dtype=torch.float64, requires_grad=True),
            torch.randn(B, D, generator=g, dtype=torch.float64, requires_grad=True))


def grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("B", [1, 2, 8])
def test_clip_loss_equals_open_clip_value_and_gradients(B):
    x, y = features(B)
    t = torch.tensor(math.log(1 / 0.07), dtype=torch.float64, requires_grad=True)  # the learnable log
    ours = clip_loss(x, y, t.exp())
    # open_clip expects normalised features; ours normalises inside: feed open_clip F.normalize of the same
    theirs = open_clip_loss.ClipLoss()(F.normalize(x, dim=-1), F.normalize(y, dim=-1), t.exp())
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for g_ours, g_theirs in zip(grads(ours, x, y, t), grads(theirs, x, y, t), strict=True):
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-12)
        assert g_ours.abs().sum() > 0 or B == 1


def test_clip_loss_is_unchanged_by_normalising_first():
    x, y = features()
    torch.testing.assert_close(clip_loss(x, y, 10.0), clip_loss(3 * F.normalize(x, dim=-1), y, 10.0))


@pytest.mark.parametrize("B", [1, 2, 8])
def test_siglip_loss_equals_open_clip_value_and_gradients(B):
    x, y = features(B, seed=1)
    t = torch.tensor(math.log(10), dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
    ours = siglip_loss(x, y, t.exp(), b)
    theirs = open_clip_loss.SigLipLoss()(F.normalize(x, dim=-1), F.normalize(y, dim=-1), t.exp(), b)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for g_ours, g_theirs in zip(grads(ours, x, y, t, b), grads(theirs, x, y, t, b), strict=True):
        torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-12)


def test_siglip_loss_written_out():
    x, y = features(4, seed=2)
    s, b = 7.0, -3.0
    logits = s * F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T + b
    pairs = [(i, j) for i in range(4) for j in range(4)]
    expected = sum(-F.logsigmoid(logits[i, j] if i == j else -logits[i, j]) for i, j in pairs) / 4
    torch.testing.assert_close(siglip_loss(x, y, s, b), expected)


def test_aligned_pairs_give_low_loss_and_shuffled_pairs_high_loss():
    B = 6
    x = torch.eye(B, 8)  # orthogonal unit features, the text features equal to the image ones
    shuffled = x[torch.roll(torch.arange(B), 1)]
    assert clip_loss(x, x, 100.0) < 1e-3
    assert clip_loss(x, shuffled, 100.0) > math.log(B)
    assert siglip_loss(x, x, 100.0, -10.0) < 1e-3
    assert siglip_loss(x, shuffled, 100.0, -10.0) > 50
    # with no information (all similarities equal) InfoNCE is log B
    torch.testing.assert_close(clip_loss(torch.ones(B, 8), torch.ones(B, 8), 1.0), torch.tensor(math.log(B)))


def test_symmetric_cross_entropy_with_offset_targets_is_a_block_of_the_global_loss():
    """What the all-gather version will do: local rows against all columns, targets offset by rank x B."""
    x, y = features(8, seed=3)
    logits = 5.0 * F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T
    rank, local = 1, 4
    rows = slice(rank * local, (rank + 1) * local)
    targets = torch.arange(local) + rank * local
    part = symmetric_cross_entropy(logits[rows], logits.T[rows], targets)
    other = symmetric_cross_entropy(logits[:local], logits.T[:local], torch.arange(local))
    torch.testing.assert_close((part + other) / 2, clip_loss(x, y, 5.0))


def test_losses_validate_inputs():
    x, y = features(4)
    with pytest.raises(ValueError, match=r"text_features: expected shape \(4, 16\), got \(3, 16\)"):
        clip_loss(x, y[:3], 1.0)
    with pytest.raises(ValueError, match="image_features: expected shape"):
        siglip_loss(x[0], y, 1.0, 0.0)
    with pytest.raises(ValueError, match="logit_scale: expected a scalar"):
        clip_loss(x, y, torch.ones(4))
    with pytest.raises(ValueError, match="logit_bias: expected a scalar"):
        siglip_loss(x, y, 1.0, torch.zeros(2))
    with pytest.raises(TypeError, match="floating-point"):
        clip_loss(torch.ones(4, 16, dtype=torch.long), y, 1.0)


@pytest.mark.parametrize("loss", [lambda x, y, s: clip_loss(x, y, s), lambda x, y, s: siglip_loss(x, y, s, -1.0)])
def test_a_scale_that_rewards_wrong_pairs_and_an_empty_batch_are_refused(loss):
    x, y = torch.randn(4, 8), torch.randn(4, 8)
    for s in (0.0, -2.0, torch.tensor(-1.0)):
        with pytest.raises(ValueError, match="logit_scale: expected a number > 0"):
            loss(x, y, s)
    with pytest.raises(ValueError, match="logit_scale: expected a finite number"):
        loss(x, y, math.nan)
    with pytest.raises(ValueError, match="batch is empty"):
        loss(torch.randn(0, 8), torch.randn(0, 8), 1.0)
