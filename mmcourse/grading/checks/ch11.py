"""Chapter 11 exercises: the local contrastive loss with the rank offset (build); a gather that drops gradients,
in a simulated world of W ranks (fix); a global batch size for a retrieval bar (experiment); three questions
(quiz)."""

from __future__ import annotations

import contextlib
import functools
import io

import torch
import torch.nn.functional as F

from mmcourse import zoo
from mmcourse.grading.core import devices, expect_close, fail, register, register_quiz
from mmcourse.grading.memo import remembered
from mmcourse.losses import clip_loss
from mmcourse.recipes import scaling_tiny


# ---------------------------------------------------------------- 11.local_clip_loss
def local_clip_loss(x, y, all_x, all_y, scale, rank):
    """Reference: this rank's b images against all N texts and its b texts against all N images, targets
    arange(b) + rank · b, the mean of the two cross-entropies."""
    targets = torch.arange(len(x), device=x.device) + rank * len(x)
    return (F.cross_entropy(scale * x @ all_y.T, targets) + F.cross_entropy(scale * y @ all_x.T, targets)) / 2


def _local_no_offset(x, y, all_x, all_y, scale, rank):
    """uses targets arange(b) on every rank: the positives of rank r sit at columns r·b + i, not i"""
    return local_clip_loss(x, y, all_x, all_y, scale, 0)


def _local_offset_rank(x, y, all_x, all_y, scale, rank):
    """offsets the targets by the rank itself, not by rank × local batch"""
    targets = torch.arange(len(x), device=x.device) + rank
    return (F.cross_entropy(scale * x @ all_y.T, targets) + F.cross_entropy(scale * y @ all_x.T, targets)) / 2


def _local_one_direction(x, y, all_x, all_y, scale, rank):
    """scores only the images against the texts (one direction of the symmetric loss)"""
    targets = torch.arange(len(x), device=x.device) + rank * len(x)
    return F.cross_entropy(scale * x @ all_y.T, targets)


def _local_texts_against_texts(x, y, all_x, all_y, scale, rank):
    """scores the local texts against the gathered texts instead of the gathered images"""
    targets = torch.arange(len(x), device=x.device) + rank * len(x)
    return (F.cross_entropy(scale * x @ all_y.T, targets) + F.cross_entropy(scale * y @ all_y.T, targets)) / 2


def _local_global(x, y, all_x, all_y, scale, rank):
    """computes the global loss over all N rows, not this rank's share"""
    return clip_loss(all_x, all_y, scale)


@register("11.local_clip_loss", local_clip_loss, [_local_no_offset, _local_offset_rank, _local_one_direction,
                                                  _local_texts_against_texts, _local_global])
def _test_local_clip_loss(fn):
    g = torch.Generator().manual_seed(110)
    n = 0
    for device in devices():
        for W, b, D, rank in [(2, 3, 4, 1), (4, 2, 5, 2), (3, 4, 3, 0), (2, 5, 6, 1)]:
            all_x = F.normalize(torch.randn(W * b, D, generator=g), dim=-1).to(device)
            all_y = F.normalize(all_x.cpu() + 0.5 * torch.randn(W * b, D, generator=g), dim=-1).to(device)
            x, y = all_x[rank * b:(rank + 1) * b], all_y[rank * b:(rank + 1) * b]
            case = f"W={W} ranks of b={b} pairs, rank {rank}, scale 10"
            expect_close(fn(x, y, all_x, all_y, 10.0, rank), local_clip_loss(x, y, all_x, all_y, 10.0, rank), case,
                         "your b images against all N texts and your b texts against all N images; the positive of "
                         "row i is column rank·b + i; the mean of the two cross-entropies")
            n += 1
    return n


# ---------------------------------------------------------------- 11.gather (fix)
def gather(parts, rank):
    """Reference: what rank `rank` sees after an all-gather that keeps every part's gradient."""
    return torch.cat(parts)


def _gather_plain(parts, rank):
    """copies the other ranks' features like the plain all_gather (no gradient) and keeps only this rank's own
    slot's gradient"""
    copies = [p.detach().clone() for p in parts]
    copies[rank] = parts[rank]
    return torch.cat(copies)


def _gather_detached(parts, rank):
    """detaches every part: no gradient reaches any encoder"""
    return torch.cat([p.detach() for p in parts])


def simulated_gradients(gather_fn, x_parts, y_parts, scale=10.0):
    """Every simulated rank r computes the global CLIP loss from gather_fn(parts, r); the gradients of each part,
    averaged over the ranks as DistributedDataParallel does. Returns the per-part gradients (W, b, D) of x and y."""
    x_parts = [p.detach().clone().requires_grad_() for p in x_parts]
    y_parts = [p.detach().clone().requires_grad_() for p in y_parts]
    W = len(x_parts)
    total = sum(clip_loss(gather_fn(x_parts, r), gather_fn(y_parts, r), scale) for r in range(W)) / W
    if not total.requires_grad:
        fail("no gradient reaches the features: the loss does not depend on any part with a gradient", None, None,
             "a gather must keep the gradient of what it gathers")
    total.backward()
    zero = lambda p: p.grad if p.grad is not None else torch.zeros_like(p)  # noqa: E731
    return torch.stack([zero(p) for p in x_parts]), torch.stack([zero(p) for p in y_parts])


@register("11.gather", gather, [_gather_plain, _gather_detached])
def _test_gather(fn):
    g = torch.Generator().manual_seed(111)
    n = 0
    for device in devices():
        for W, b, D in [(2, 3, 4), (4, 2, 3), (3, 2, 5)]:
            x = [torch.randn(b, D, generator=g).to(device) for _ in range(W)]
            y = [torch.randn(b, D, generator=g).to(device) for _ in range(W)]
            case = f"{W} simulated ranks of {b} pairs"
            for r in range(W):
                out = fn([p.clone().requires_grad_() for p in x], r)
                if not isinstance(out, torch.Tensor) or tuple(out.shape) != (W * b, D):
                    fail(f"{case}: what rank {r} sees after the gather", (W * b, D), getattr(out, "shape", out))
            got = simulated_gradients(fn, x, y)
            single = [torch.cat(x).requires_grad_(), torch.cat(y).requires_grad_()]
            clip_loss(*single, 10.0).backward()
            for name, grads, ref in zip(("image", "text"), got, single, strict=True):
                expected = ref.grad.view(W, b, D)
                error = ((grads - expected).abs().max() / expected.abs().max()).item()
                expect_close(grads, expected, f"{case}: the {name} features' gradients, averaged over the ranks, "
                             f"against one process on the whole batch (relative error {error:.0%})",
                             "every rank's loss uses every rank's features: the gather must keep the gradient of "
                             "all of them, in rank order", atol=1e-6)
            n += 1
    return n


# ---------------------------------------------------------------- 11.batch_size (experiment)
BAR_R1, BATCH_RANGE = 0.45, (8, 2048)


@functools.cache
def experiment_data() -> scaling_tiny.LiTData:
    """Chapter 11's LiT data (frozen CLIP image embeddings, captions, test pairs), once per session (about 8 s)."""
    return scaling_tiny.lit_data(zoo.load("clip-tiny", verbose=False))


@remembered
def run_batch_size(batch_size: int) -> dict[str, float]:
    """A fresh text tower trained on scaling_tiny.EXAMPLES pairs in batches of batch_size (seed 0); its zero-shot
    accuracy and text -> image R@1."""
    with contextlib.redirect_stdout(io.StringIO()):
        text, _ = scaling_tiny.train(experiment_data(), batch_size, progress=False)
    return scaling_tiny.evaluate(experiment_data(), text)


def _batch_reference():
    return 64


def _batch_huge():
    """a batch so large that the fixed number of examples leaves too few steps"""
    return 1024


def _batch_large():
    """a large batch: still too few steps"""
    return 512


@register("11.batch_size", _batch_reference, [_batch_huge, _batch_large])
def _test_batch_size(fn):
    B = fn()
    lo, hi = BATCH_RANGE
    if isinstance(B, bool) or not isinstance(B, int) or not lo <= B <= hi:
        fail("my_batch_size() must return a batch size", f"an int in [{lo}, {hi}]", B)
    r1 = run_batch_size(B)["R@1"]
    if r1 < BAR_R1:
        fail(f"batch size {B}: text → image R@1 {r1:.3f} after {scaling_tiny.EXAMPLES} pairs", f"≥ {BAR_R1}",
             round(r1, 3), "too small a batch gives few negatives per step; too large a batch leaves few steps")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("11.quiz_local_loss", "What does the local loss save, and what does it cost?", "a",
              "each rank computes b × N logits instead of N × N, so the loss's memory grows linearly with the world "
              "size instead of quadratically; with gradients through the gather, the gradients are exactly the "
              "global loss's (section 3's table). The gather itself is the same.",
              choices={"a": "memory (b × N logits per rank instead of N × N), at no cost in exactness",
                       "b": "memory, at the cost of approximate gradients",
                       "c": "communication: no all_gather is needed",
                       "d": "encoder compute: each rank encodes fewer examples"},
              wrong={"b": "section 3 measured the local loss's gradients equal to one process's to float rounding.",
                     "c": "the local loss still scores its rows against all N gathered columns: the gather stays.",
                     "d": "every rank encodes its own b examples in both cases; only the loss differs."})
register_quiz("11.quiz_plain_gather", "With the global loss and the plain all_gather (no gradient; this rank's own "
              "features put back in their slot), what do the averaged gradients become on W ranks?", "c",
              "each rank's encoder gets only its own loss's gradient of its own rows; the other W − 1 ranks' losses "
              "use those rows too but never send their part back. Averaged over the ranks: 1/W of the true gradient.",
              choices={"a": "exactly right: the loss is the same on every rank",
                       "b": "zero: no gradient flows at all",
                       "c": "the true gradient divided by W",
                       "d": "W times the true gradient"},
              wrong={"a": "the loss is right, its gradient is not: section 3's table.",
                     "b": "this rank's own slot keeps its gradient; only the other ranks' contributions are lost.",
                     "d": "that would need every rank's contribution counted W times; here most are missing."})
register_quiz("11.quiz_logits", "8 ranks of 512 pairs each use the local loss. How many image-to-text logits does "
              "one rank compute per step?", 512 * 4096,
              "b × N = 512 × (8 · 512) = 2 097 152; the global loss would compute N × N = 16 777 216 on every rank.",
              wrong={4096 * 4096: "that is the global loss's N × N.", 512 * 512: "that scores only the local texts; "
                     "the local loss scores its rows against all N gathered texts."})
