"""One small training loop for every chapter: fixed step count, warm-up + cosine schedule, progress bar, periodic
evaluation, optional early stop, and a History of what it saw (`mmcourse.viz.plot_history` draws it)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from mmcourse.utils import check_device, check_number, describe, get_device

__all__ = ["fit", "History", "param_groups", "to_device", "warmup_cosine"]


@dataclass
class History:
    """What `fit` saw: the loss at every step, evaluation dicts every `eval_every` steps, and the wall time."""

    loss: list[float] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)  # each has "step" plus eval_fn's metrics
    seconds: float = 0.0

    @property
    def last(self) -> dict[str, float]:
        return self.evals[-1] if self.evals else {}


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside a (nested) dict / list / tuple to `device`."""
    device = check_device(device, "device")
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up for `warmup` steps, then cosine decay to 0 at `steps`."""
    check_number(step, "step", integer=True, low=0)
    check_number(steps, "steps", integer=True, low=1)
    check_number(warmup, "warmup", integer=True, low=0)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups as CLIP trains (and open_clip): weight decay on the weight matrices, kernels and embedding
    tables (ndim ≥ 2), none on gains, biases, norms' parameters, class tokens and the logit scale (ndim < 2)."""
    check_number(weight_decay, "weight_decay", low=0)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    decay = [p for p in trainable if p.ndim >= 2]
    rest = [p for p in trainable if p.ndim < 2]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0})
            if g["params"]]


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor | tuple[torch.Tensor, dict]],
    data: Iterable | Callable[[int], Any],
    steps: int,
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    warmup: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    grad_clip: float | None = None,
    eval_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int | None = None,
    stop_when: Callable[[dict[str, float]], bool] | None = None,
    before_step: Callable[[torch.nn.Module], None] | None = None,
    after_step: Callable[[torch.nn.Module], None] | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train `model` for `steps` optimiser steps and return its History.

    loss_fn(model, batch) -> loss, or (loss, {name: value}) to show extra numbers in the progress bar.
    data: an iterable of batches (re-iterated when exhausted, e.g. a DataLoader) or a function step -> batch.
    The optimiser defaults to AdamW(lr, betas) with `weight_decay` on the weight matrices only (`param_groups`),
    and warm-up + cosine decay. eval_fn(model) runs every
    `eval_every` steps and at the end (model in eval mode, no grad); `stop_when(metrics)` ends training early.
    before_step(model) runs after backward, before clipping and the optimiser step (e.g. to modulate gradients,
    `mmcourse.strategies.OGMGE`); after_step(model) runs after each optimiser step (e.g. to clamp CLIP's logit
    scale).
    """
    check_number(steps, "steps", integer=True, low=1)
    check_number(lr, "lr", low=0, low_open=True)
    check_number(weight_decay, "weight_decay", low=0)
    check_number(warmup, "warmup", integer=True, low=0)
    if grad_clip is not None:
        check_number(grad_clip, "grad_clip", low=0, low_open=True)  # 0 stops learning, < 0 climbs the loss
    if eval_every is not None:
        check_number(eval_every, "eval_every", integer=True, low=1)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas: expected two numbers (beta1, beta2), got {describe(betas)}")
    for beta in betas:
        check_number(beta, "betas", low=0, high=1)
    device = check_device(device, "device") if device is not None else get_device()
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps, warmup))
    batches = (data(s) for s in itertools.count()) if callable(data) else _cycle(data)
    history = History()
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, disable=not progress, mininterval=0.5)
    for step in bar:
        model.train()
        out = loss_fn(model, to_device(next(batches), device))
        loss, extra = out if isinstance(out, tuple) else (out, {})
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ValueError(f"{desc}: loss_fn must return a scalar tensor (or (loss, dict)), got {describe(loss)}")
        if not loss.requires_grad:
            raise ValueError(f"{desc}: the loss is a scalar tensor without a gradient (computed under no_grad, "
                             "or detached?): it must depend on the trainable parameters")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: the loss is {loss.item()} at step {step}; lower the learning rate?")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if before_step is not None:
            before_step(model)
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        schedule.step()
        if after_step is not None:
            after_step(model)
        history.loss.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}", **{k: f"{float(v):.3f}" for k, v in extra.items()})
        last = step == steps - 1
        if eval_fn is not None and (last or (eval_every and (step + 1) % eval_every == 0)):
            metrics = _evaluate(model, eval_fn)
            history.evals.append({"step": step + 1, **metrics})
            if stop_when is not None and stop_when(metrics):
                break
    bar.close()
    history.seconds = time.perf_counter() - start
    model.eval()
    summary = ", ".join(f"{k} {v:.4g}" for k, v in history.last.items() if k != "step")
    print(f"{desc}: {len(history.loss)} steps in {history.seconds:.0f} s, final loss {history.loss[-1]:.4f}"
          + (f", {summary}" if summary else ""))
    return history


def _evaluate(model: torch.nn.Module, eval_fn) -> dict[str, float]:
    was_training = model.training
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in eval_fn(model).items()}
    model.train(was_training)
    return metrics


def _cycle(iterable: Iterable):
    """The batches of `iterable` again and again; a one-shot iterator that runs out is a clear error."""
    seen = 0
    while True:
        before = seen
        for batch in iterable:
            seen += 1
            yield batch
        if seen == before:
            if seen == 0:
                raise ValueError("fit: the data iterable yielded no batches")
            raise ValueError(f"fit: the data ran out after {seen} batches and cannot be iterated again (an iterator "
                             "or generator?): pass a list, a DataLoader, or a function step -> batch")
