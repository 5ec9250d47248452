"""Attention rollout (Abnar & Zuidema 2020) against a NumPy reference."""

import numpy as np
import pytest
import torch

from mmcourse.nn import attention_rollout


def random_attention(layers=3, b=2, h=4, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, n, generator=g).softmax(-1) for _ in range(layers)]


def numpy_rollout(attn_list):
    """0.5·mean-over-heads + 0.5·I per layer (rows already sum to 1), then Â_last ··· Â_first."""
    mats = [0.5 * a.mean(1).numpy() + 0.5 * np.eye(a.shape[-1]) for a in attn_list]
    return np.stack([np.linalg.multi_dot([m[i] for m in reversed(mats)]) for i in range(mats[0].shape[0])])


def test_rollout_matches_numpy_reference():
    attn = random_attention()
    rollout = attention_rollout(attn)
    np.testing.assert_allclose(rollout.numpy(), numpy_rollout(attn), atol=1e-6)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))
    assert not torch.allclose(rollout, attention_rollout(attn[::-1]))  # layer order matters


def test_single_layer_and_identity():
    (a,) = random_attention(layers=1)
    torch.testing.assert_close(attention_rollout([a]), 0.5 * a.mean(1) + 0.5 * torch.eye(5))
    eye = torch.eye(5).expand(2, 4, 5, 5)
    torch.testing.assert_close(attention_rollout([eye, eye]), torch.eye(5).expand(2, 5, 5))


def test_rows_with_zero_weight_stay_finite():
    """A fully-masked query row (all weights 0) becomes the identity row after the residual."""
    (a,) = random_attention(layers=1)
    a[:, :, 2] = 0
    rollout = attention_rollout([a])
    assert torch.isfinite(rollout).all()
    torch.testing.assert_close(rollout[:, 2], torch.eye(5)[2].expand(2, 5))


@pytest.mark.parametrize("attn, match", [
    ([], "at least one layer"),
    ([torch.rand(4, 5, 5)], r"attn_list\[0\]: expected shape \(B, H, L, L\), got \(4, 5, 5\)"),
    ([torch.rand(2, 4, 5, 6)], r"attn_list\[0\]: expected shape \(B, H, L, L\), got \(2, 4, 5, 6\)"),
    ([torch.rand(2, 4, 5, 5), torch.rand(2, 4, 6, 6)], r"attn_list\[1\]: expected shape \(2, \?, 5, 5\)"),
])
def test_bad_input(attn, match):
    with pytest.raises(ValueError, match=match):
        attention_rollout(attn)
