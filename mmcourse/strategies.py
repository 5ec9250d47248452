"""Gradient modulation for a two-modality model that one modality dominates (chapter 10): OGM-GE, on-the-fly
gradient modulation with generalisation enhancement (Peng et al., CVPR 2022).

    ogm = OGMGE(alpha=3.0)

    def loss_fn(model, batch):
        logits = model.stream_logits(batch["image"], batch["sound"])   # {"image": (B, C), "sound": (B, C)}
        ogm.observe(logits, batch["labels"])                           # model.image, model.sound: the branches
        return F.cross_entropy(sum(logits.values()), batch["labels"])

    fit(model, loss_fn, data, steps, before_step=ogm, optimizer=torch.optim.SGD(...))

Each step, s_m = Σ over the batch of softmax(logits_m)[label] says how well stream m alone fits the batch. The stream
ahead by ρ = s_m / s_other > 1 has every gradient of its branch scaled by k = 1 − tanh(α(ρ − 1)) (the other
keeps k = 1) and, with `noise`, Gaussian noise of its gradient's own std added back (the "GE" part). Use SGD:
Adam divides each gradient by its running scale, so a factor k that changes slowly barely changes Adam's steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.utils import check_number, check_tensor, describe, make_generator

__all__ = ["ogm_coefficients", "OGMGE"]


def ogm_coefficients(logits: dict[str, Tensor], labels: Tensor, alpha: float) -> dict[str, float]:
    """OGM's k per stream from two streams' logits (B, C): 1 − tanh(α(ρ − 1)) for the stream ahead, 1 for the other."""
    if not isinstance(logits, dict) or len(logits) != 2:
        raise ValueError(f"logits: expected two streams {{name: (B, C) logits}}, got {describe(logits)}")
    check_number(alpha, "alpha", low=0)
    check_tensor(labels, "labels", shape=("B",), dtype="int")
    scores = {}
    for name, z in logits.items():
        check_tensor(z, f"logits[{name!r}]", shape=(len(labels), "C"), dtype="float")
        if len(labels) and (labels.min() < 0 or labels.max() >= z.shape[1]):
            raise IndexError(f"labels: expected class ids in [0, {z.shape[1]}), got {labels.tolist()[:10]}")
        scores[name] = F.softmax(z.detach().float(), dim=-1).gather(1, labels[:, None]).sum().item()
    (a, s_a), (b, s_b) = scores.items()
    ratio = s_a / max(s_b, 1e-12)
    k = {a: 1.0, b: 1.0}
    if ratio > 1:
        k[a] = 1 - math.tanh(alpha * (ratio - 1))
    elif ratio < 1:
        k[b] = 1 - math.tanh(alpha * (1 / max(ratio, 1e-12) - 1))
    return k


class OGMGE:
    """Call `observe(logits, labels)` in the loss and pass the object as fit's `before_step`: it scales the gradients
    of the dominant stream's branch -- the model's submodule of that stream's name (model.image, model.sound) -- by
    k, and adds noise when `noise`. `history` holds each step's {stream: k}."""

    def __init__(self, alpha: float, noise: bool = True, seed: int = 0):
        self.alpha, self.noise = check_number(alpha, "alpha", low=0), noise
        self.generator = make_generator(seed, "ogm-ge")
        self.history: list[dict[str, float]] = []
        self._k: dict[str, float] | None = None

    def observe(self, logits: dict[str, Tensor], labels: Tensor) -> dict[str, float]:
        self._k = ogm_coefficients(logits, labels, self.alpha)
        self.history.append(self._k)
        return self._k

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> None:
        if self._k is None:
            raise RuntimeError("OGMGE: call observe(logits, labels) in the loss before each step")
        for name, k in self._k.items():
            branch = getattr(model, name, None)
            if not isinstance(branch, nn.Module):
                raise AttributeError(f"OGMGE: the model has no submodule {name!r} for the stream of that name")
            if k == 1.0:
                continue
            for p in branch.parameters():
                if p.grad is None:
                    continue
                noise = torch.randn(p.grad.shape, generator=self.generator).to(p.grad) * p.grad.std() \
                    if self.noise and p.grad.numel() > 1 else 0.0
                p.grad.mul_(k).add_(noise)
        self._k = None
