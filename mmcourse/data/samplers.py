"""Batch samplers: which items go into each training batch.

A sampler here is a function step -> batch (what `mmcourse.train.fit` accepts as `data`), deterministic in the
seed and the step, so a run can be repeated or resumed at any step.

    epoch_batches(dataset, 128)                     # shuffled epochs (scenes with their twins)
    balanced_batches(labels, 128)                   # every class equally often: inverse-frequency weights
    curriculum_batches(difficulty, 128, steps)      # easiest items first, the pool growing by `pacing`
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset, WeightedRandomSampler

from mmcourse.utils import check_number, check_tensor, describe, make_generator

__all__ = ["epoch_batches", "inverse_frequency_weights", "balanced_batches", "class_frequencies", "pacing",
           "curriculum_batches"]


def epoch_batches(dataset: Dataset, batch_size: int, seed: int = 0) -> Callable[[int], dict]:
    """step -> `dataset.collate` of batch_size items: epochs of shuffled items without repeats, the last partial
    batch of an epoch dropped. A dataset with `set_epoch` (e.g. `CaptionDataset`, which re-words every caption) is
    told each new epoch, so an item comes back described differently.

    A dataset of twins (`twins=True`: items i and i + n/2 are a scene and its twin) is shuffled by pairs: each
    batch is batch_size/2 scenes and their twins.
    """
    if not all(hasattr(dataset, a) for a in ("__len__", "__getitem__", "collate")):
        raise TypeError(f"dataset: expected a dataset with a collate method, got {describe(dataset)}")
    group = 2 if getattr(dataset, "twins", False) else 1  # a scene, or a scene and its twin
    units = len(dataset) // group
    if not isinstance(batch_size, int) or not 1 <= batch_size <= len(dataset) or batch_size % group:
        raise ValueError(f"batch_size must be an int in [1, {len(dataset)}] (the dataset size)"
                         + (" and even (scenes with their twins)" if group == 2 else "") + f", got {batch_size!r}")
    per_batch = batch_size // group
    per_epoch = units // per_batch

    def batch(step: int) -> dict:
        epoch, i = divmod(step, per_epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        order = torch.randperm(units, generator=make_generator(seed, f"batches/{epoch}"))
        chosen = order[i * per_batch:(i + 1) * per_batch]
        chosen = torch.cat([chosen, chosen + units]) if group == 2 else chosen
        return dataset.collate([dataset[j] for j in chosen.tolist()])

    return batch


def inverse_frequency_weights(labels: Tensor, num_classes: int | None = None) -> Tensor:
    """Per-item weights (N,) = 1 / (count of the item's class): drawn with these weights, every class is drawn
    equally often whatever its share of the data. Every class in range(num_classes) must have an item."""
    check_tensor(labels, "labels", shape=("N",), dtype="int")
    if num_classes is not None:
        check_number(num_classes, "num_classes", integer=True, low=1)
    if len(labels) == 0:
        raise ValueError("labels: empty, there is nothing to weight")
    if labels.min() < 0:
        raise ValueError(f"labels: class ids must be >= 0, got {labels.min().item()}")
    counts = torch.bincount(labels, minlength=num_classes or 0)
    if num_classes is not None and len(counts) > num_classes:
        raise ValueError(f"labels: ids must be < num_classes={num_classes}, got {labels.max().item()}")
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0)[:, 0].tolist()
        raise ValueError(f"labels: classes {missing} have no example, so no weight can make them appear: drop "
                         "them from the label set or add examples")
    return 1.0 / counts[labels].double()


def balanced_batches(labels: Tensor, batch_size: int, seed: int = 0) -> Callable[[int], Tensor]:
    """step -> batch_size item indices drawn with replacement by `WeightedRandomSampler` with inverse-frequency
    weights: each class equally likely in every batch."""
    weights = inverse_frequency_weights(labels)
    check_number(batch_size, "batch_size", integer=True, low=1)

    def batch(step: int) -> Tensor:
        sampler = WeightedRandomSampler(weights, batch_size, replacement=True,
                                        generator=make_generator(seed, f"balanced/{step}"))
        return torch.tensor(list(sampler))

    return batch


def class_frequencies(indices: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """The share (num_classes,) of drawn items `indices` that belong to each class."""
    check_tensor(indices, "indices", dtype="int")
    check_tensor(labels, "labels", shape=("N",), dtype="int")
    check_number(num_classes, "num_classes", integer=True, low=1)
    if indices.numel() == 0:
        raise ValueError("indices: nothing was drawn")
    if len(labels) == 0:
        raise ValueError("labels: empty, no item to count")
    if indices.min() < 0 or indices.max() >= len(labels):
        raise IndexError(f"indices: expected item indices in [0, {len(labels)}), got min {indices.min().item()}, "
                         f"max {indices.max().item()}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels: expected class ids in [0, {num_classes}), got min {labels.min().item()}, "
                         f"max {labels.max().item()}")
    return torch.bincount(labels[indices.flatten()], minlength=num_classes).double() / indices.numel()


def pacing(step: int, steps: int, start: float = 0.2, doubling: float = 0.25) -> float:
    """Fraction of the data (easiest first) a curriculum may draw from at `step`: `start` at step 0, doubling every
    `doubling` * steps steps, capped at 1 (the fixed exponential pacing of Hacohen & Weinshall, 2019)."""
    check_number(step, "step", integer=True, low=0)
    check_number(steps, "steps", integer=True, low=1)
    check_number(start, "start", low=0, high=1, low_open=True)
    check_number(doubling, "doubling", low=0, low_open=True)
    return min(1.0, start * 2 ** (step / (doubling * steps)))


def curriculum_batches(difficulty: Tensor, batch_size: int, steps: int, seed: int = 0,
                       pace: Callable[[int, int], float] = pacing) -> Callable[[int], Tensor]:
    """step -> batch_size indices drawn uniformly from the pace(step, steps) easiest share of the items
    (difficulty (N,), lower is easier; ties broken at random once). pace(steps - 1, steps) should reach 1."""
    check_tensor(difficulty, "difficulty", shape=("N",))
    check_number(batch_size, "batch_size", integer=True, low=1)
    check_number(steps, "steps", integer=True, low=1)
    n = len(difficulty)
    if n == 0:
        raise ValueError("difficulty: empty, there is nothing to draw")
    if difficulty.isnan().any():
        raise ValueError("difficulty: contains NaN, which has no place in an order from easy to hard")
    g = make_generator(seed, "curriculum")
    order = torch.randperm(n, generator=g)
    order = order[torch.sort(difficulty[order].double(), stable=True).indices]  # easiest first, ties shuffled

    def batch(step: int) -> Tensor:
        share = pace(step, steps)
        if not 0 < share <= 1:
            raise ValueError(f"pace({step}, {steps}) must be a share in (0, 1], got {share!r}")
        pool = max(1, math.ceil(share * n))
        return order[torch.randint(pool, (batch_size,), generator=make_generator(seed, f"curriculum/{step}"))]

    return batch
