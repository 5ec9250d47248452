"""lm_loss: next-token cross-entropy that shifts inside and ignores -100."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.losses import lm_loss

B, L, V = 3, 6, 11


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, L, V, generator=g, requires_grad=True)
    labels = torch.randint(0, V, (B, L), generator=g)
    labels[0, 4:] = -100  # padding of a short row
    labels[1, :3] = -100  # a prompt that is not learned
    return logits, labels


def test_equals_cross_entropy_on_hand_shifted_tensors():
    logits, labels = batch()
    shifted_logits, shifted_labels = logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1)
    kept = shifted_labels != -100
    by_hand = -shifted_logits[kept].log_softmax(-1)[torch.arange(int(kept.sum())), shifted_labels[kept]].mean()
    torch.testing.assert_close(lm_loss(logits, labels), by_hand)
    torch.testing.assert_close(lm_loss(logits, labels), F.cross_entropy(shifted_logits, shifted_labels))
    assert not torch.allclose(lm_loss(logits, labels), F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1)))


def test_ignored_positions_get_no_gradient():
    logits, labels = batch()
    lm_loss(logits, labels).backward()
    no_target = F.pad(labels[:, 1:] == -100, (0, 1), value=True)  # logits at t are scored on labels[t + 1]
    assert (logits.grad[no_target] == 0).all()
    assert (logits.grad[~no_target].abs().sum(-1) > 0).all()


def test_custom_ignore_index_and_the_shift_drops_the_first_label():
    logits, labels = batch()
    labels = labels.clamp(min=0)
    changed = labels.clone()
    changed[:, 0] = (labels[:, 0] + 1) % V  # the first label is never a target
    torch.testing.assert_close(lm_loss(logits, labels), lm_loss(logits, changed))
    padded = labels.clone()
    padded[:, -2:] = 7
    torch.testing.assert_close(lm_loss(logits, padded, ignore_index=7),
                               F.cross_entropy(logits[:, :-1].reshape(-1, V), padded[:, 1:].reshape(-1),
                                               ignore_index=7))


def test_bad_input_raises_clear_error():
    logits, labels = batch()
    with pytest.raises(ValueError, match=r"every target \(labels\[:, 1:\], after the shift\) is ignore_index=-100"):
        lm_loss(logits, torch.full((B, L), -100))
    with pytest.raises(ValueError, match="every target"):
        lm_loss(logits[:, :1], labels[:, :1])  # one position predicts nothing
    with pytest.raises(ValueError, match=r"labels: expected shape \(3, 6\), got \(3, 5\)"):
        lm_loss(logits, labels[:, :5])
    with pytest.raises(ValueError, match=r"logits: expected shape \(B, L, V\), got \(3, 6\)"):
        lm_loss(logits[..., 0], labels)
    with pytest.raises(TypeError, match="labels: expected an integer tensor"):
        lm_loss(logits, labels.float())


def test_label_smoothing_scores_against_the_smoothed_target():
    logits, labels = batch()
    eps = 0.1
    shifted_logits, shifted_labels = logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1)
    kept = shifted_labels != -100
    logp = shifted_logits[kept].log_softmax(-1)
    target = torch.full_like(logp, eps / V)
    target[torch.arange(len(logp)), shifted_labels[kept]] += 1 - eps
    torch.testing.assert_close(lm_loss(logits, labels, label_smoothing=eps), -(target * logp).sum(-1).mean())
