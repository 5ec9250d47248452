"""Chapter 02's CLIP recipe (`mmcourse.recipes.clip_tiny`) over seeds 0–4, one thread per run: the spread of its
headline numbers (zero-shot accuracy on seen and on held-out colour-shape pairs).

    python benchmarks/bench_seeds_clip.py [--seeds 0 1 2 3 4] [--jobs 2] [--loss clip|siglip]

Seed s initialises the model (`clip_tiny.build(seed=s)`) and orders the batches (`clip_tiny.train(seed=s)`); the
training images and the evaluation images are the recipe's own, so seed 0 is the lecture's run. Prints one line
per seed and the spread; the lecture quotes these numbers.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from mmcourse.recipes import clip_tiny


def run(seed: int, loss: str) -> dict[str, float]:
    torch.set_num_threads(1)
    model = clip_tiny.build(loss=loss, seed=seed)
    start = time.perf_counter()
    clip_tiny.train(model, clip_tiny.caption_data(), seed=seed, device="cpu", eval_every=None, progress=False,
                    desc=f"seed {seed}")
    seconds = time.perf_counter() - start
    return {"seed": seed, "seconds": seconds, **clip_tiny.evaluate(model, clip_tiny.zero_shot_sets())}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--loss", default="clip", choices=["clip", "siglip"])
    args = parser.parse_args()
    print(f"clip_tiny v{clip_tiny.VERSION} ({args.loss}): {clip_tiny.STEPS} steps of {clip_tiny.BATCH_SIZE}, "
          f"one thread per run, {args.jobs} runs at a time")
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, args.seeds, [args.loss] * len(args.seeds)))
    for r in rows:
        print(f"seed {r['seed']}: seen {r['seen']:.1%}  held-out {r['held-out']:.1%}  ({r['seconds']:.0f} s)")
    for key in ("seen", "held-out"):
        values = [r[key] for r in rows]
        print(f"{key:8s}: min {min(values):.1%}  max {max(values):.1%}")


if __name__ == "__main__":
    main()
