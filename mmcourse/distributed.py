"""Run a function on W processes joined by `torch.distributed`, from a notebook or from `torchrun`.

    results = launch(gradient_check, world_size=2)        # one result per rank, gloo on CPU
    torchrun --nproc_per_node 2 -m mmcourse.distributed   # the same check under torchrun (any backend)

`launch` spawns fresh Python processes (never fork: a notebook's threads and CUDA state do not survive a fork), so
the function must be importable from a module (defined in the package, not in the notebook). Each process gets
MASTER_ADDR / MASTER_PORT (a free port), joins the group, runs the function, sends back its result and leaves the
group; if one process fails, the others are stopped and the error is raised here. Many machines: run `torchrun
--nnodes N --node_rank i --master_addr HOST --master_port PORT --nproc_per_node G -m your.module` on each.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

from mmcourse.losses.contrastive import clip_loss, siglip_loss
from mmcourse.losses.distributed import distributed_clip_loss, distributed_siglip_loss, world
from mmcourse.models.clip import CLIP, CLIPConfig
from mmcourse.utils import check_number, check_sizes

__all__ = ["free_port", "launch", "shard", "gradient_check", "loss_memory", "check_all", "main"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no process listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_backend(backend: str, world_size: int) -> None:
    if backend not in ("gloo", "nccl") or not dist.is_backend_available(backend):
        available = [b for b in ("gloo", "nccl") if dist.is_backend_available(b)]
        raise ValueError(f"backend {backend!r} is not available here; available: {available} (gloo runs on CPUs)")
    if backend == "nccl" and torch.cuda.device_count() < world_size:
        raise ValueError(f"backend 'nccl' needs one GPU per process: world_size {world_size}, "
                         f"{torch.cuda.device_count()} GPU(s); use backend='gloo' on CPUs")


def _worker(rank: int, fn: Callable, args: tuple, world_size: int, port: int, backend: str, timeout: float,
            out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)  # W processes share the cores
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout))
    try:
        result = fn(*args)
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    except BaseException:  # kept for the parent: the first rank to fail is the cause, the others its echo
        (Path(out_dir) / f"rank{rank}.error").write_text(f"{time.time()}\n{traceback.format_exc()}")
        raise
    finally:
        dist.destroy_process_group()


def launch(fn: Callable, world_size: int = 2, args: tuple = (), backend: str = "gloo",
           timeout: float = 120.0) -> list:
    """fn(*args) on `world_size` spawned processes in one process group; their return values, by rank.

    fn must be a module-level function (spawned processes import it); return values must be `torch.save`-able."""
    check_number(world_size, "world_size", integer=True, low=1)
    check_number(timeout, "timeout", low=0, low_open=True)
    _check_backend(backend, world_size)
    if not callable(fn) or getattr(fn, "__module__", "__main__") == "__main__" or \
            "<locals>" in getattr(fn, "__qualname__", ""):
        raise ValueError(f"fn: {getattr(fn, '__qualname__', fn)!r} is no function, or one defined in __main__ or "
                         "inside a function; spawned processes can only run functions importable from a module")
    with tempfile.TemporaryDirectory(prefix="mmcourse-launch-") as out_dir:
        try:
            mp.start_processes(_worker, args=(fn, args, world_size, free_port(), backend, timeout, out_dir),
                               nprocs=world_size, join=True, start_method="spawn")
        except Exception as error:  # the other processes are stopped by now; report the rank that failed first
            errors = sorted((float(t), int(p.stem[4:]), tb) for p in Path(out_dir).glob("rank*.error")
                            for t, tb in [p.read_text().split("\n", 1)])
            if not errors:
                raise
            _, rank, tb = errors[0]
            raise RuntimeError(f"launch: rank {rank} of {world_size} failed first (the others were stopped):\n"
                               f"{tb}") from error
        return [torch.load(Path(out_dir) / f"rank{r}.pt", weights_only=False) for r in range(world_size)]


def shard(n: int, batch_size: int, seed: int = 0, epoch: int = 0) -> list[list[int]]:
    """This rank's batches of one epoch over n examples: a `DistributedSampler` (shuffled by seed and epoch, the
    tail dropped so that every rank gets as many) cut into batches of batch_size. No two ranks share an example."""
    check_sizes(n=n, batch_size=batch_size)
    check_number(seed, "seed", integer=True)
    check_number(epoch, "epoch", integer=True, low=0)
    rank, W = world()
    sampler = DistributedSampler(range(n), num_replicas=W, rank=rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def gradient_check(global_batch: int = 16, loss: str = "clip", local_loss: bool = False,
                   gather_with_grad: bool = True, seed: int = 0) -> dict[str, float]:
    """Inside a process group: the tiny CLIP's loss and gradients from this rank's share of a global batch (the
    gradients averaged over ranks, as DistributedDataParallel does) against one process on the whole batch.

    Every rank builds the same model and batch from `seed`. BatchNorm runs in eval mode: with per-rank batch
    statistics the forward itself would differ from one process's (SyncBatchNorm is the cure).
    Returns the largest absolute differences of the loss and of any gradient entry, and the largest gradient."""
    check_number(global_batch, "global_batch", integer=True, low=1)
    if loss not in ("clip", "siglip"):
        raise ValueError(f"loss: expected 'clip' or 'siglip', got {loss!r}")
    rank, W = world()
    if global_batch % W:
        raise ValueError(f"global_batch {global_batch} must be a multiple of the world size {W}")
    nccl = W > 1 and dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    torch.manual_seed(seed)
    model = CLIP(CLIPConfig.tiny(vocab_size=30, eot_id=2, context_length=8, loss=loss)).eval().to(device)
    images = torch.randn(global_batch, 3, 32, 32).to(device)
    ids = torch.cat([torch.randint(3, 30, (global_batch, 7)), torch.full((global_batch, 1), 2)], 1).to(device)
    extra = (model.logit_bias,) if loss == "siglip" else ()

    def losses(images, ids, distributed: bool):
        x, y, s = model.encode_image(images), model.encode_text(ids), model.logit_scale.exp()
        if not distributed:
            return siglip_loss(x, y, s, *extra) if loss == "siglip" else clip_loss(x, y, s)
        kw = dict(local_loss=local_loss, gather_with_grad=gather_with_grad)
        return distributed_siglip_loss(x, y, s, *extra, **kw) if loss == "siglip" else \
            distributed_clip_loss(x, y, s, **kw)

    reference = losses(images, ids, distributed=False)
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    b = global_batch // W
    mine = slice(rank * b, (rank + 1) * b)
    value = losses(images[mine], ids[mine], distributed=True)
    value.backward()
    for p in model.parameters():  # what DistributedDataParallel does after backward: average the gradients
        p.grad = _mean_over_ranks(p.grad)
    # a local loss is this rank's share: the global loss is the mean over ranks
    loss_value = _mean_over_ranks(value.detach()) if local_loss else value.detach()
    grad_diff = max((p.grad - expected[n]).abs().max().item() for n, p in model.named_parameters())
    reference = reference.detach()
    return {"loss": float(reference), "loss_diff": abs(float(loss_value - reference)), "grad_diff": grad_diff,
            "grad_max": max(g.abs().max().item() for g in expected.values())}


def loss_memory(local_batch: int, dim: int = 64, local_loss: bool = False) -> int:
    """Bytes that `distributed_clip_loss` keeps for its backward on this rank (its saved tensors: the logits
    matrices above all), for random (local_batch, dim) features."""
    check_sizes(local_batch=local_batch, dim=dim)
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(local_batch, dim, generator=g, requires_grad=True) for _ in range(2))
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        distributed_clip_loss(x, y, 10.0, local_loss=local_loss)
    return total


def check_all(global_batch: int = 16, memory_batch: int = 256) -> dict:
    """Chapter 11's measurements in one process group: `gradient_check` for CLIP and SigLIP, global and local loss,
    with and without gradients through the gather; each rank's `shard` of 50 examples in batches of 4; and
    `loss_memory` of a local batch of memory_batch pairs, global and local."""
    out = {(loss, local, grad): gradient_check(global_batch, loss, local, grad)
           for loss in ("clip", "siglip") for local in (False, True) for grad in (True, False)}
    out["shards"] = shard(50, batch_size=4)
    out["memory"] = {local: loss_memory(memory_batch, local_loss=local) for local in (False, True)}
    return out


def _mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    if world()[1] == 1:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()


def main() -> None:
    """`torchrun --nproc_per_node W -m mmcourse.distributed`: the gradient check for every loss variant."""
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("MMCOURSE_BACKEND") != "gloo" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend)
    try:
        for loss in ("clip", "siglip"):
            for local_loss in (False, True):
                r = gradient_check(loss=loss, local_loss=local_loss)
                if dist.get_rank() == 0:
                    print(f"{loss:>6} {'local' if local_loss else 'global'} loss: loss diff {r['loss_diff']:.2e}, "
                          f"largest gradient diff {r['grad_diff']:.2e}", flush=True)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
