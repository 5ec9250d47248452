"""ITM: hard negatives drawn ∝ softmax(similarity) with the positives zeroed, and the 3B-pair loss."""

import pytest
import torch
import torch.nn.functional as F

from mmcourse.losses import hard_negative_probs, itm_loss, sample_hard_negatives


def sims(B=5, seed=0):
    return torch.randn(B, B, generator=torch.Generator().manual_seed(seed)) * 3


def test_probs_are_softmax_with_positives_zeroed_renormalised_per_direction():
    sim = sims()
    same = torch.zeros(5, 5, dtype=torch.bool)
    same[0, 3] = same[3, 0] = True
    p_text, p_image = hard_negative_probs(sim, same)
    for p, s, m in ((p_text, sim, same), (p_image, sim.T, same.T)):
        expected = s.softmax(1) * ~(torch.eye(5, dtype=torch.bool) | m)
        torch.testing.assert_close(p, expected / expected.sum(1, keepdim=True))
    assert p_text[0, 3] == 0 and p_image[0, 3] == 0 and (p_text.diagonal() == 0).all()


def test_samples_follow_the_probabilities_and_never_hit_a_positive():
    sim = sims(4, seed=1)
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([torch.stack(sample_hard_negatives(sim, generator=g)) for _ in range(4000)])  # (N, 2, B)
    assert not (draws == torch.arange(4)).any()
    p_text, p_image = hard_negative_probs(sim)
    for direction, p in enumerate((p_text, p_image)):
        freq = F.one_hot(draws[:, direction], 4).float().mean(0)  # (B, B)
        torch.testing.assert_close(freq, p, atol=0.03, rtol=0)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="at least 2"):
        hard_negative_probs(torch.zeros(1, 1))
    with pytest.raises(ValueError, match="no negative"):
        hard_negative_probs(torch.zeros(3, 3), torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"sim"):
        hard_negative_probs(torch.zeros(3, 4))


def test_itm_loss_scores_positives_and_both_kinds_of_negatives():
    g = torch.Generator().manual_seed(0)
    B, M, D, L = 4, 3, 5, 6
    tokens, ids = torch.randn(B, M, D, generator=g), torch.randint(0, 9, (B, L), generator=g)
    head = torch.randn(D + L, 2, generator=g)
    score = lambda t, i: torch.cat([t.mean(1), i.float()], 1) @ head  # noqa: E731
    neg_text, neg_image = torch.tensor([1, 2, 3, 0]), torch.tensor([2, 0, 1, 1])
    logits = torch.cat([score(tokens, ids), score(tokens, ids[neg_text]), score(tokens[neg_image], ids)])
    labels = torch.tensor([1] * B + [0] * 2 * B)
    torch.testing.assert_close(itm_loss(score, tokens, ids, neg_text, neg_image), F.cross_entropy(logits, labels))
    with pytest.raises(ValueError, match="neg_image"):
        itm_loss(score, tokens, ids, neg_text, neg_image[:2])
