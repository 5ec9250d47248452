"""Batch samplers: which items go into each training batch.

A sampler here is a function step -> batch (what `mmcourse.train.fit` accepts as `data`), deterministic in the
seed and the step, so a run can be repeated or resumed at any step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from mmcourse.utils import make_generator

__all__ = ["epoch_batches"]


def epoch_batches(dataset: Dataset, batch_size: int, seed: int = 0) -> Callable[[int], dict]:
    """step -> `dataset.collate` of batch_size items: epochs of shuffled items without repeats, the last partial
    batch of an epoch dropped. A dataset with `set_epoch` (e.g. `CaptionDataset`, which re-words every caption) is
    told each new epoch, so an item comes back described differently.

    A dataset of twins (`twins=True`: items i and i + n/2 are a scene and its twin) is shuffled by pairs: each
    batch is batch_size/2 scenes and their twins.
    """
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
