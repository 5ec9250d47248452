"""Chapter 12's bar over fine-tuning seeds 0-4 (one thread each, as the tests run): chapter 05's assistant
fine-tuned on counting conversations in all three strategies, then each strategy's accuracy on the same new
scenes of 3-5 shapes. With --alone: each strategy trained alone for the exercise's steps (seed 0).

    python benchmarks/bench_seeds_reasoning.py [seeds...]
    python benchmarks/bench_seeds_reasoning.py --alone
"""

import sys
import time

import torch

from mmcourse import zoo
from mmcourse.recipes import reasoning_tiny as R

torch.set_num_threads(1)
base = zoo.load("llava-tiny", verbose=False)
test = R.count_set(base)


def run(seed: int, strategies=R.STRATEGIES, steps: int = R.STEPS) -> dict:
    start = time.perf_counter()
    model = R.build(base)
    R.train(model, strategies, steps=steps, seed=seed, progress=False)
    row = {s: R.accuracy(R.answer(model, test, s), test)["all"] for s in strategies}
    return row | {"seconds": time.perf_counter() - start}


if sys.argv[1:] == ["--alone"]:
    for steps in (200, 400):
        for s in R.STRATEGIES:
            print(f"{s} alone, {steps} steps:", {k: round(v, 3) for k, v in run(0, [s], steps).items()}, flush=True)
    sys.exit()
rows = []
for seed in [int(a) for a in sys.argv[1:]] or range(5):
    rows.append(run(seed))
    print(f"seed {seed}:", {k: round(v, 3) for k, v in rows[-1].items()}, flush=True)
for s in R.STRATEGIES:
    values = [r[s] for r in rows]
    print(f"{s}: {min(values):.3f}-{max(values):.3f} over {len(rows)} seeds")
