"""Contrastive losses over a batch split across processes (`torch.distributed`), as large CLIP runs train.

Each of W ranks holds a local batch of b pairs; the global batch is N = W·b pairs, and every image's negatives are
all N captions. Two choices (open_clip's `ClipLoss` arguments):

- the **gather**: features of every rank are collected with `all_gather`. `gather_with_grad=True` uses
  `AllGather`, whose backward sums the gradients of the gathered rows over the ranks and hands each rank its own
  rows' sum (what `torch.distributed.nn.functional.all_gather` does): every rank's loss reaches every encoder.
  `False` uses the plain `all_gather`, which carries no gradient, and puts this rank's own features back in their
  slot (open_clip's default): the other ranks' losses then never reach this rank's encoder.
- the **loss**: global (every rank scores the whole N × N matrix) or local (this rank's b rows against the N
  columns: b × N, W times less memory; the positives sit at columns rank·b + i).

With `gather_with_grad=True` and gradients averaged over ranks (as DistributedDataParallel does), both give exactly
the single-process loss's gradients on the global batch. Outside a process group (W = 1) the gather is the
identity and the losses are `clip_loss` / `siglip_loss`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from mmcourse.losses.contrastive import _check_scalar, _normalized_pair, symmetric_cross_entropy
from mmcourse.utils import check_tensor

__all__ = ["world", "AllGather", "gather_features", "distributed_clip_loss", "distributed_siglip_loss"]


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class AllGather(torch.autograd.Function):
    """x (b, D) on each of W ranks -> (W·b, D) on every rank; backward: the incoming gradients (W·b, D) summed over
    the ranks (all_reduce), this rank's b rows returned -- each rank's loss used every rank's features."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        b = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * b:(dist.get_rank() + 1) * b]


def gather_features(x: Tensor, gather_with_grad: bool = True) -> Tensor:
    """x (b, D) on every rank -> (W·b, D), rank r's rows at [r·b, (r + 1)·b). Every rank must hold the same b."""
    check_tensor(x, "x", shape=("b", "D"), dtype="float")
    rank, W = world()
    if W == 1:
        return x
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(W)]
    dist.all_gather(sizes, torch.tensor([x.shape[0]], device=x.device))
    if len({int(s) for s in sizes}) > 1:
        raise ValueError(f"gather_features: uneven local batches across ranks {[int(s) for s in sizes]}; every rank "
                         "must hold the same number of pairs (drop the last partial batch: drop_last=True)")
    if gather_with_grad:
        return AllGather.apply(x)
    parts = [torch.empty_like(x) for _ in range(W)]
    dist.all_gather(parts, x.detach())
    parts[rank] = x  # this rank's own rows keep their gradient
    return torch.cat(parts)


def distributed_clip_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor | float, *,
                          local_loss: bool = False, gather_with_grad: bool = True) -> Tensor:
    """CLIP's symmetric InfoNCE over the global batch, from this rank's local (b, D) features."""
    x, y = _normalized_pair(image_features, text_features, logit_scale)
    all_x, all_y = gather_features(x, gather_with_grad), gather_features(y, gather_with_grad)
    if local_loss:  # this rank's rows: its b images against all N texts, its b texts against all N images
        rank, b = world()[0], len(x)
        targets = torch.arange(b, device=x.device) + rank * b
        return symmetric_cross_entropy(logit_scale * x @ all_y.T, logit_scale * y @ all_x.T, targets)
    logits = logit_scale * all_x @ all_y.T
    return symmetric_cross_entropy(logits, logits.T, torch.arange(len(all_x), device=x.device))


def distributed_siglip_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor | float,
                            logit_bias: Tensor | float, *, local_loss: bool = False,
                            gather_with_grad: bool = True) -> Tensor:
    """SigLIP's pairwise sigmoid loss over the global batch: −Σ logsigmoid(labels · (s x̂ ŷᵀ + b)) / N, the local
    version summing this rank's b × N block and dividing by b (the W blocks tile the N × N matrix once)."""
    x, y = _normalized_pair(image_features, text_features, logit_scale)
    _check_scalar(logit_bias, "logit_bias")
    all_y = gather_features(y, gather_with_grad)
    rows = x if local_loss else gather_features(x, gather_with_grad)
    logits = logit_scale * rows @ all_y.T + logit_bias
    first = world()[0] * len(x) if local_loss else 0  # the global index of the first row's positive
    labels = -torch.ones_like(logits)
    i = torch.arange(len(rows), device=logits.device)  # index tensors on the logits' device
    labels[i, first + i] = 1.0
    return -F.logsigmoid(labels * logits).sum() / len(rows)
