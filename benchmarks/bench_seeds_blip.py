"""Chapter 04's bars over training seeds 0-4 (one thread each, as the tests run): ITM accuracy on one-attribute
hard negatives, greedy captions fully correct, and the share of the noisy-to-clean R@1 gap that CapFilt
recovers; plus the random-negative ablation. The data (images, captions, noise) are the same for every seed.

    python benchmarks/bench_seeds_blip.py [seeds...]
"""

import sys
import time

import torch

from mmcourse import zoo
from mmcourse.recipes import blip_tiny as R

torch.set_num_threads(1)
seeds = [int(s) for s in sys.argv[1:]] or [0, 1, 2, 3, 4]
visual = zoo.load("clip-tiny", verbose=False).visual
clean, noisy = R.web_data(visual), R.web_data(visual, noise_fraction=0.4)
human, test = R.web_data(visual, R.HUMAN_IMAGES, seed=7), R.test_data(visual)
rows = []
for seed in seeds:
    start = time.perf_counter()
    runs = {}
    for name, pairs, kw in [("clean", clean.pairs, {}), ("random negatives", clean.pairs, {"hard_negatives": False}),
                            ("noisy", noisy.pairs, {})]:
        runs[name] = R.build(seed)
        R.train(runs[name], pairs, seed=seed, progress=False, **kw)
    captioner = R.finetune(runs["noisy"], human.pairs, ("lm",), seed, progress=False)
    judge = R.finetune(runs["noisy"], human.pairs, ("itc", "itm"), seed, progress=False)
    result = R.capfilt(captioner, judge, noisy.pairs, seed=seed)
    runs["capfilt"] = R.build(seed)
    R.train(runs["capfilt"], result.pairs, seed=seed, progress=False)
    scores = {name: R.evaluate(m, test) for name, m in runs.items()}
    gap = (scores["capfilt"]["R@1"] - scores["noisy"]["R@1"]) / (scores["clean"]["R@1"] - scores["noisy"]["R@1"])
    web = R.filter_quality(result.web_kept, noisy.dataset.clean)
    rows.append({"seed": seed, "itm_hard": scores["clean"]["itm_hard"], "captions": scores["clean"]["captions"],
                 "itm_hard (random negatives)": scores["random negatives"]["itm_hard"], "gap recovered": gap,
                 "filter precision": web["precision"], "filter recall": web["recall"],
                 **{f"R@1 {k}": v["R@1"] for k, v in scores.items() if k != "random negatives"}})
    print(rows[-1], f"{time.perf_counter() - start:.0f} s", flush=True)
for key in rows[0]:
    if key != "seed":
        values = [r[key] for r in rows]
        print(f"{key:28s} min {min(values):.3f}  max {max(values):.3f}  mean {sum(values) / len(values):.3f}")
