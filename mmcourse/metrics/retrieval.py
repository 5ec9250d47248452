"""Cross-modal retrieval metrics from a similarity matrix: Recall@K, MRR, median and mean rank.

Every metric starts from the *rank* of each query: the position, in the full ranking of all items by
similarity, of the first relevant item (1 = the best-scoring item is relevant).

    rank_q = 1 + #{irrelevant items i : s[q, i] >= max over relevant items of s[q, ·]}

Ties are counted **pessimistically**: an irrelevant item that scores exactly as high as the best relevant
item is ranked above it. A model that gives every item the same score therefore gets the worst rank, not the
best, and the rank never depends on the order of the items. (torchmetrics breaks ties by sort order instead,
so compare with it on tie-free scores; its recall and reciprocal rank also ignore a relevant item whose score
is <= 0, so shift cosine similarities to be positive first.)

    Recall@K = mean_q [rank_q <= K]                 (a "hit": at least one relevant item in the top K)
    MRR      = mean_q 1 / rank_q                    (over the FULL ranking)
    MRR@K    = mean_q [rank_q <= K] / rank_q        (misses count 0: a different, smaller number)
    MedR, MeanR = median / mean of rank_q           (lower is better)

Image->text retrieval usually has several relevant captions per image (COCO and Flickr have 5): Recall@K
then asks for *any* of them in the top K, as in the CLIP and VSE papers. torchmetrics' `RetrievalRecall`
instead divides the relevant items found in the top K by all relevant items (the information-retrieval
recall); both agree when each query has exactly one relevant item (text->image). Its `RetrievalHitRate` is
our Recall@K in every case.

Seed bug #2: computing MRR from the hits inside the top k gives MRR@k (and averaging over the queries that
hit, as the seed does, over-scores further); MRR needs the rank in the full ranking.
"""

from __future__ import annotations

import torch

from mmcourse.utils import check_tensor

__all__ = [
    "first_relevant_rank",
    "recall_at_k",
    "mean_reciprocal_rank",
    "mrr_at_k",
    "median_rank",
    "mean_rank",
    "retrieval_metrics",
    "image_text_retrieval",
]


def first_relevant_rank(similarity: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """The 1-based rank of the best-ranked relevant item of each query, over the full ranking.

    similarity: (N_queries, N_items) scores, higher = more similar.
    relevant: (N_queries, N_items) bool mask, or (N_queries,) integer index of the single relevant item.
    Returns a (N_queries,) long tensor. Ties with irrelevant items count against the query (pessimistic).
    """
    relevant = _relevance_mask(similarity, relevant)
    best_relevant = similarity.masked_fill(~relevant, float("-inf")).amax(dim=1, keepdim=True)
    beaten_by = (similarity >= best_relevant) & ~relevant
    return 1 + beaten_by.sum(dim=1)


def recall_at_k(similarity: torch.Tensor, relevant: torch.Tensor, k: int) -> float:
    """Fraction of queries with at least one relevant item in the top k: mean_q [rank_q <= k]."""
    _check_k(k)
    return _recall(_ranks(similarity, relevant), k)


def mean_reciprocal_rank(similarity: torch.Tensor, relevant: torch.Tensor) -> float:
    """MRR over the full ranking: mean_q 1 / rank_q."""
    return _mrr(_ranks(similarity, relevant))


def mrr_at_k(similarity: torch.Tensor, relevant: torch.Tensor, k: int) -> float:
    """MRR truncated at k: mean_q [rank_q <= k] / rank_q. Shown for contrast; it is not MRR."""
    _check_k(k)
    rank = _ranks(similarity, relevant)
    return torch.where(rank <= k, 1.0 / rank, torch.zeros_like(rank)).mean().item()


def median_rank(similarity: torch.Tensor, relevant: torch.Tensor) -> float:
    """Median of rank_q (the mean of the two middle ranks when the number of queries is even)."""
    return _median(_ranks(similarity, relevant))


def mean_rank(similarity: torch.Tensor, relevant: torch.Tensor) -> float:
    """Mean of rank_q."""
    return _ranks(similarity, relevant).mean().item()


def retrieval_metrics(
    similarity: torch.Tensor, relevant: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, float]:
    """All metrics of one retrieval direction: {"R@1", "R@5", "R@10", "MRR", "MedR", "MeanR"} -> float."""
    if not isinstance(ks, (list, tuple)):
        raise TypeError(f"ks: expected a tuple of ints (the k of each Recall@k), got {type(ks).__name__}")
    for k in ks:
        _check_k(k)
    rank = _ranks(similarity, relevant)
    metrics = {f"R@{k}": _recall(rank, k) for k in ks}
    metrics.update(MRR=_mrr(rank), MedR=_median(rank), MeanR=rank.mean().item())
    return metrics


def image_text_retrieval(
    similarity: torch.Tensor, image_ids: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10)
) -> dict[str, dict[str, float]]:
    """Both directions of image-text retrieval, with several captions per image.

    similarity: (N_images, N_texts) image-text scores.
    image_ids: (N_texts,) integer index (row of `similarity`) of the image each text describes.
    Image->text: an image's relevant texts are all its captions. Text->image: one relevant image.
    Returns {"image_to_text": retrieval_metrics(...), "text_to_image": retrieval_metrics(...)}.
    """
    check_tensor(similarity, "similarity", shape=("N_images", "N_texts"), dtype="float")
    check_tensor(image_ids, "image_ids", shape=(similarity.shape[1],), dtype="int")
    if image_ids.numel() and (image_ids.min() < 0 or image_ids.max() >= similarity.shape[0]):
        raise ValueError(f"image_ids: expected rows of similarity in [0, {similarity.shape[0]}), got min "
                         f"{image_ids.min().item()}, max {image_ids.max().item()}")
    text_to_image = retrieval_metrics(similarity.T, image_ids, ks)
    images = torch.arange(similarity.shape[0], device=similarity.device)
    captions_of_image = images[:, None] == image_ids.to(similarity.device)[None, :]
    image_to_text = retrieval_metrics(similarity, captions_of_image, ks)
    return {"image_to_text": image_to_text, "text_to_image": text_to_image}


def _relevance_mask(similarity: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """Validate the inputs; return a (N_queries, N_items) bool mask on the device of `similarity`."""
    check_tensor(similarity, "similarity", shape=("N_queries", "N_items"), dtype="float")
    n_queries, n_items = similarity.shape
    if n_queries == 0 or n_items == 0:
        raise ValueError(f"similarity: expected at least one query and one item, got {(n_queries, n_items)}")
    if torch.isnan(similarity).any() or torch.isposinf(similarity).any():
        raise ValueError("similarity: contains NaN or +inf; ranks are undefined (-inf is allowed: it ranks an item "
                         "last, as a re-ranking that scores only its top candidates does)")
    if not isinstance(relevant, torch.Tensor):
        raise TypeError(
            "relevant: expected a bool mask (N_queries, N_items) or an index tensor "
            f"(N_queries,), got {type(relevant).__name__}"
        )
    relevant = relevant.to(similarity.device)
    if relevant.dtype == torch.bool:
        check_tensor(relevant, "relevant", shape=(n_queries, n_items))
    else:
        check_tensor(relevant, "relevant", shape=(n_queries,), dtype="int")
        if relevant.min() < 0 or relevant.max() >= n_items:
            raise ValueError(
                f"relevant: expected item indices in [0, {n_items - 1}], "
                f"got min {relevant.min().item()}, max {relevant.max().item()}"
            )
        relevant = relevant[:, None] == torch.arange(n_items, device=similarity.device)[None, :]
    no_relevant = (~relevant.any(dim=1)).nonzero().flatten()
    if no_relevant.numel():
        raise ValueError(
            f"relevant: every query needs at least one relevant item; queries "
            f"{no_relevant[:5].tolist()} have none"
        )
    return relevant


def _ranks(similarity: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """first_relevant_rank as float64 on the CPU (the summaries are Python floats; MPS has no float64)."""
    return first_relevant_rank(similarity, relevant).cpu().double()


def _recall(rank: torch.Tensor, k: int) -> float:
    return (rank <= k).double().mean().item()


def _mrr(rank: torch.Tensor) -> float:
    return (1.0 / rank).mean().item()


def _median(rank: torch.Tensor) -> float:
    rank = rank.sort().values
    n = rank.numel()
    return ((rank[(n - 1) // 2] + rank[n // 2]) / 2).item()


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k: expected a positive int, got {k!r}")
