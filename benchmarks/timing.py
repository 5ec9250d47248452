"""The one timing helper the benchmarks share."""

from __future__ import annotations

import statistics
import time

import torch


def median_times(fns: dict, reps: int = 7, warmup: int = 2, device: torch.device | None = None) -> dict[str, float]:
    """Median wall seconds of each zero-argument callable over `reps` runs after `warmup` runs.

    The callables are interleaved and their order alternates from one round to the next, so that noise from the
    rest of the machine hits all of them alike; CUDA work is synchronised before the clock stops.
    """
    times = {name: [] for name in fns}
    items = list(fns.items())
    for i in range(warmup + reps):
        for name, fn in items if i % 2 == 0 else items[::-1]:
            start = time.perf_counter()
            fn()
            if device is not None and device.type == "cuda":
                torch.cuda.synchronize(device)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}
