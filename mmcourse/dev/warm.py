"""`python -m mmcourse.dev warm`: train the zoo entries the tests share before the tests start, side by side."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

import torch

from .. import zoo


def _warm_one(name: str, threads: int) -> float:
    """Train (or find) one zoo entry on `threads` threads; its wall seconds."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    zoo.load(name)
    return time.perf_counter() - start


def warm_order(names: list[str]) -> list[str]:
    """The named zoo entries and every entry they need, each after its needs, otherwise in the order named."""
    order: list[str] = []

    def add(name: str) -> None:
        for needed in zoo.recipe(name).needs:
            add(needed)
        if name not in order:
            order.append(name)

    for name in names:
        add(name)
    return order


def warm(names: list[str], jobs: int = 1) -> None:
    """Train the named zoo entries (and those they need) into the cache now, unless they are there already.

    jobs=1: one after the other in this process, on all its threads. jobs > 1: that many worker processes train
    side by side on an equal share of the threads. These small models use one thread nearly twice as well as two
    (`benchmarks/bench_train.py --threads 1`), so two trainings side by side finish sooner than one after the
    other. An entry starts once the entries it needs are in the cache, in the order named (name the longest
    first). Only the course's entries: one `zoo.register`ed in this process is unknown to the workers."""
    pending = warm_order(names)
    jobs = max(1, min(jobs, len(pending)))
    if jobs == 1:
        for name in pending:
            print(f"zoo: {name} ready in {_warm_one(name, torch.get_num_threads()):.0f} s")
        return
    threads = max(1, torch.get_num_threads() // jobs)
    print(f"warm: {', '.join(pending)} in {jobs} processes of {threads} thread(s)")
    ready: set[str] = set()
    running: dict = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while pending or running:
            startable = [n for n in pending if set(zoo.recipe(n).needs) <= ready][: jobs - len(running)]
            for name in startable:
                pending.remove(name)
                running[pool.submit(_warm_one, name, threads)] = name
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                print(f"zoo: {name} ready in {future.result():.0f} s")
                ready.add(name)
