"""Retrieval metrics: equal to torchmetrics on tie-free random cases, hand-worked ranks, ties, bad input."""

import pytest
import torch

from mmcourse.metrics import (
    first_relevant_rank,
    image_text_retrieval,
    mean_rank,
    mean_reciprocal_rank,
    median_rank,
    mrr_at_k,
    recall_at_k,
    retrieval_metrics,
)

tm_retrieval = pytest.importorskip("torchmetrics.retrieval")

DEVICES = (
    ["cpu"]
    + (["cuda"] if torch.cuda.is_available() else [])
    + (["mps"] if torch.backends.mps.is_available() else [])
)


def _random_image_text(seed, n_images=12, captions_per_image=(1, 5)):
    """Random (N_images, N_texts) scores (float64: no ties) and a random number of captions per image."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(captions_per_image[0], captions_per_image[1] + 1, (n_images,), generator=g)
    image_ids = torch.repeat_interleave(torch.arange(n_images), counts)
    image_ids = image_ids[torch.randperm(len(image_ids), generator=g)]
    # correlated with the truth so that ranks spread over 1..N instead of being uniform noise
    similarity = torch.randn(n_images, len(image_ids), generator=g, dtype=torch.float64)
    similarity += 1.5 * (image_ids[None, :] == torch.arange(n_images)[:, None])
    return similarity, image_ids


def _torchmetrics(metric, similarity, relevant):
    """Run a torchmetrics retrieval metric with one query per row (scores shifted to be > 0, see below)."""
    # torchmetrics' recall and reciprocal rank treat an item with preds <= 0 as not relevant: shift first.
    preds = similarity - similarity.min() + 1.0
    indexes = torch.arange(similarity.shape[0])[:, None].expand_as(similarity)
    return metric(preds.flatten(), relevant.flatten(), indexes=indexes.flatten()).item()


@pytest.mark.parametrize("seed", range(5))
def test_equal_to_torchmetrics_on_random_cases(seed):
    similarity, image_ids = _random_image_text(seed)
    text_to_image = image_ids[:, None] == torch.arange(similarity.shape[0])[None, :]  # one relevant image
    image_to_text = text_to_image.T  # several relevant captions
    for sim, relevant in ((similarity.T, text_to_image), (similarity, image_to_text)):
        assert (relevant.sum(1) >= 1).all()
        assert mean_reciprocal_rank(sim, relevant) == pytest.approx(
            _torchmetrics(tm_retrieval.RetrievalMRR(), sim, relevant), abs=1e-6
        )
        for k in (1, 3, 5, 10):
            # Recall@K ("any relevant item in the top K") is torchmetrics' hit rate in both directions ...
            assert recall_at_k(sim, relevant, k) == pytest.approx(
                _torchmetrics(tm_retrieval.RetrievalHitRate(top_k=k), sim, relevant), abs=1e-6
            )
            assert mrr_at_k(sim, relevant, k) == pytest.approx(
                _torchmetrics(tm_retrieval.RetrievalMRR(top_k=k), sim, relevant), abs=1e-6
            )
    for k in (1, 3, 5, 10):
        # ... and its RetrievalRecall when each query has a single relevant item (text -> image).
        assert recall_at_k(similarity.T, text_to_image, k) == pytest.approx(
            _torchmetrics(tm_retrieval.RetrievalRecall(top_k=k), similarity.T, text_to_image), abs=1e-6
        )


def test_recall_is_a_hit_not_torchmetrics_recall_with_several_relevant_items():
    # one image, captions 0 and 1 relevant; ranking 0 > 2 > 1: caption 0 is first, caption 1 third
    similarity = torch.tensor([[0.9, 0.1, 0.5]])
    relevant = torch.tensor([[True, True, False]])
    assert recall_at_k(similarity, relevant, 1) == 1.0  # a relevant caption is at rank 1
    tm_recall = _torchmetrics(tm_retrieval.RetrievalRecall(top_k=1), similarity, relevant)
    assert tm_recall == pytest.approx(0.5)  # torchmetrics: 1 of the 2 relevant captions found


def test_ranks_equal_a_sort_based_reference():
    similarity, image_ids = _random_image_text(7, n_images=20)
    relevant = image_ids[None, :] == torch.arange(20)[:, None]
    order = similarity.argsort(dim=1, descending=True)  # no ties in float64 random scores
    expected = relevant.gather(1, order).float().argmax(dim=1) + 1  # first relevant position, 1-based
    assert torch.equal(first_relevant_rank(similarity, relevant), expected)


def test_hand_worked_ranks_and_summaries():
    # relevant item = column 0; its rank is 1 + the number of items scoring at least as high
    similarity = torch.tensor(
        [
            [9.0, 1.0, 2.0, 3.0],  # rank 1
            [5.0, 6.0, 1.0, 2.0],  # rank 2
            [1.0, 4.0, 3.0, 2.0],  # rank 4
            [2.0, 1.0, 3.0, 0.0],  # rank 2
        ]
    )
    relevant = torch.zeros(4, dtype=torch.long)
    assert first_relevant_rank(similarity, relevant).tolist() == [1, 2, 4, 2]
    assert recall_at_k(similarity, relevant, 1) == 0.25
    assert recall_at_k(similarity, relevant, 2) == 0.75
    assert mean_reciprocal_rank(similarity, relevant) == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 2) / 4)
    # MRR@2 drops the query at rank 4: (1 + 1/2 + 0 + 1/2) / 4 = 0.5, smaller than MRR (0.5625)
    assert mrr_at_k(similarity, relevant, 2) == pytest.approx(0.5)
    assert median_rank(similarity, relevant) == 2.0  # sorted ranks 1, 2, 2, 4
    assert mean_rank(similarity, relevant) == 2.25
    assert retrieval_metrics(similarity, relevant, ks=(1, 2)) == {
        "R@1": 0.25,
        "R@2": 0.75,
        "MRR": pytest.approx(0.5625),
        "MedR": 2.0,
        "MeanR": 2.25,
    }
    assert median_rank(similarity[:3], relevant[:3]) == 2.0  # odd count: the middle of 1, 2, 4


def test_mrr_uses_the_full_ranking_not_only_hits_in_the_top_k():
    # seed bug #2: ranks 1 and 20; MRR = (1 + 1/20) / 2 = 0.525, MRR@10 = (1 + 0) / 2 = 0.5
    similarity = torch.stack([torch.arange(20.0, 0, -1), torch.arange(1.0, 21)])
    relevant = torch.zeros(2, dtype=torch.long)
    assert first_relevant_rank(similarity, relevant).tolist() == [1, 20]
    assert mean_reciprocal_rank(similarity, relevant) == pytest.approx(0.525)
    assert mrr_at_k(similarity, relevant, 10) == pytest.approx(0.5)


def test_ties_are_pessimistic():
    # a relevant item tied with an irrelevant one is ranked below it, whatever the column order
    assert first_relevant_rank(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([0])).item() == 2
    assert first_relevant_rank(torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([1])).item() == 2
    # a constant score gives the worst rank, not the best
    assert first_relevant_rank(torch.zeros(1, 5), torch.tensor([0])).item() == 5
    # relevant items tied with each other do not push each other down
    both_relevant = torch.tensor([[True, True, False]])
    assert first_relevant_rank(torch.tensor([[1.0, 1.0, 0.0]]), both_relevant).item() == 1


def test_image_text_retrieval_both_directions():
    similarity, image_ids = _random_image_text(3)
    out = image_text_retrieval(similarity, image_ids, ks=(1, 5))
    text_to_image = image_ids[:, None] == torch.arange(similarity.shape[0])[None, :]
    assert out["image_to_text"] == retrieval_metrics(similarity, text_to_image.T, ks=(1, 5))
    assert out["text_to_image"] == retrieval_metrics(similarity.T, text_to_image, ks=(1, 5))
    assert set(out["image_to_text"]) == {"R@1", "R@5", "MRR", "MedR", "MeanR"}


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_the_device_of_the_inputs(device):
    similarity, image_ids = _random_image_text(1)
    expected = image_text_retrieval(similarity, image_ids)
    got = image_text_retrieval(similarity.float().to(device), image_ids.to(device))
    for direction in expected:
        assert got[direction] == pytest.approx(expected[direction])


def test_bad_input_raises_clear_errors():
    similarity = torch.randn(3, 4)
    with pytest.raises(ValueError, match="NaN"):
        recall_at_k(torch.tensor([[float("nan"), 1.0]]), torch.tensor([0]), 1)
    with pytest.raises(ValueError, match=r"queries \[1\] have none"):
        mean_reciprocal_rank(similarity, torch.tensor([[True] * 4, [False] * 4, [True] * 4]))
    with pytest.raises(ValueError, match=r"relevant: expected shape \(3, 4\), got \(3, 3\)"):
        recall_at_k(similarity, torch.ones(3, 3, dtype=torch.bool), 1)
    with pytest.raises(ValueError, match=r"item indices in \[0, 3\]"):
        recall_at_k(similarity, torch.tensor([0, 1, 4]), 1)
    with pytest.raises(ValueError, match="k: expected a positive int"):
        recall_at_k(similarity, torch.tensor([0, 1, 2]), 0)
    with pytest.raises(ValueError, match="at least one query"):
        mean_rank(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"similarity: expected shape \(N_queries, N_items\)"):
        mean_rank(torch.randn(4), torch.tensor([0]))
    with pytest.raises(TypeError, match="floating-point"):
        mean_rank(torch.ones(2, 2, dtype=torch.long), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"image_ids: expected shape \(4\), got \(3,\)"):
        image_text_retrieval(similarity, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"image_ids: expected rows of similarity in \[0, 3\)"):
        image_text_retrieval(similarity, torch.tensor([0, 1, 2, 3]))


def test_minus_inf_ranks_an_item_last_as_a_re_ranking_of_the_top_candidates_does():
    """BLIP re-ranks only the top candidates and gives the others -inf: a valid ranking, not bad input."""
    similarity = torch.tensor([[float("-inf"), 0.2, 0.9], [0.1, float("-inf"), float("-inf")]])
    assert first_relevant_rank(similarity, torch.tensor([2, 0])).tolist() == [1, 1]
    assert first_relevant_rank(similarity, torch.tensor([0, 0])).tolist() == [3, 1]
