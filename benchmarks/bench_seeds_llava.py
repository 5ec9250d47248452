"""Chapter 05's bars over training seeds 0-4 (one thread each, as the tests run): the tiny LLaVA of the recipe
(merge2x2 projector, stage 1 then stage 2) on new images of the training pairs ("seen") and of the held-out
pairs. The test questions are the same for every seed. With --variants: the lecture's section-6 comparisons
(projector, stages, frozen language model) trained for the full recipe, seed 0.

    python benchmarks/bench_seeds_llava.py [seeds...]
    python benchmarks/bench_seeds_llava.py --variants
"""

import sys
import time

import torch

from mmcourse import zoo
from mmcourse.recipes import llava_tiny as R

torch.set_num_threads(1)
visual, lm = zoo.load("clip-tiny", verbose=False).visual, zoo.load("tiny-lm", verbose=False)
sets = R.vqa_sets(visual)
VARIANTS = {  # name: (projector, stage 1, tune the language model in stage 2)
    "merge2x2, two stages, LM tuned": ("merge2x2", True, True), "linear, two stages": ("linear", True, True),
    "mlp2x_gelu, two stages": ("mlp2x_gelu", True, True), "merge2x2, stage 2 only": ("merge2x2", False, True),
    "merge2x2, two stages, LM frozen": ("merge2x2", True, False)}


def run(seed: int, projector: str = "merge2x2", stage1: bool = True, tune_lm: bool = True) -> dict:
    start = time.perf_counter()
    model = R.build(visual, lm, projector, seed=seed)
    if stage1:
        R.train(model, 1, seed=seed, progress=False)
    R.train(model, 2, tune_lm=tune_lm, seed=seed, progress=False)
    row = {}
    for name, s in R.evaluate(model, sets).items():
        row |= {f"{name} {k}": v for k, v in s.items() if k != "by type"}
        row |= {f"{name} {k}": v for k, v in s["by type"].items()}
    return row | {"seconds": time.perf_counter() - start}


if sys.argv[1:] == ["--variants"]:
    for name, (projector, stage1, tune_lm) in VARIANTS.items():
        row = run(0, projector, stage1, tune_lm)
        print(f"{name:34s} exact {row['seen exact']:.3f}, all but relations {row['seen no relations']:.3f}, "
              f"held-out pairs {row['held-out exact']:.3f}, {row['seconds']:.0f} s", flush=True)
    sys.exit()
rows = []
for seed in [int(s) for s in sys.argv[1:]] or [0, 1, 2, 3, 4]:
    rows.append({"seed": seed} | run(seed))
    print({k: round(v, 3) for k, v in rows[-1].items()}, flush=True)
for key in rows[0]:
    if key != "seed":
        values = [r[key] for r in rows]
        print(f"{key:28s} min {min(values):.3f}  max {max(values):.3f}  mean {sum(values) / len(values):.3f}")
