"""Chapter 06's bar over training seeds 0-4 (one thread each, as the tests run): the unCLIP recipe's prior and
decoder trained from each seed on clip-tiny, then text -> prior -> decoder -> image for the 20 seen colour-shape
pairs (4 samples each, 25 DDIM steps), read by the judge, at several guidance weights; and the held-out pairs.

    python benchmarks/bench_seeds_unclip.py [seeds...]
"""

import sys
import time

import torch

from mmcourse import zoo
from mmcourse.recipes import unclip_tiny as R

torch.set_num_threads(1)
clip, judge = zoo.load("clip-tiny", verbose=False), zoo.load("judge-tiny", verbose=False)
data = R.embed(R.close_ups(R.TRAIN_IMAGES), clip)
WEIGHTS = (0, 1, 3, 8)

for seed in [int(s) for s in sys.argv[1:]] or range(5):
    start = time.perf_counter()
    model = R.build(seed)
    R.train(model, clip, data, seed=seed, progress=False)
    model.eval()
    seconds = time.perf_counter() - start
    row = {f"w={w}": R.text_to_image(model, clip, judge, guidance=w, steps=25, seed=seed)["both"] for w in WEIGHTS}
    row["no prior, w=3"] = R.text_to_image(model, clip, judge, guidance=3, steps=25, seed=seed, use_prior=False)["both"]
    row["held-out, w=3"] = R.text_to_image(model, clip, judge, per_pair=8, split="test", guidance=3, steps=25,
                                           seed=seed)["both"]
    print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()) + f"; trained in {seconds:.0f} s",
          flush=True)
