"""Chapter 08's bars over training seeds 0-4 (one thread each, as the tests run): the tokenizer's codebook
perplexity (each of its groups, on 1 000 evaluation clips; the bar is half the codebook) and VideoBERT's captions
fully right (colour, shape and direction) on 1 000 new clips, plus the held-out colour-shape pairs. The seed sets
the tokenizer's and VideoBERT's initialisation, training clips and masks; the evaluation clips are the same.

    python benchmarks/bench_seeds_videobert.py [seeds...]
"""

import sys
import time

import torch

from mmcourse.recipes import video_tokenizer as T
from mmcourse.recipes import videobert_tiny as V

torch.set_num_threads(1)
seeds = [int(s) for s in sys.argv[1:]] or [0, 1, 2, 3, 4]
new, held_out = T.clips(1000, evaluation=True), T.clips(1000, split="test", evaluation=True)
for seed in seeds:
    start = time.perf_counter()
    tokenizer = T.build(seed)
    T.train(tokenizer, seed=seed, eval_every=None, progress=False)
    usage = T.codebook_usage(tokenizer, new).float()
    share = usage / usage.sum(1, keepdim=True)
    perplexity = (-(share * share.clamp(min=1e-12).log()).sum(1)).exp()
    bert = V.build(seed)
    history = V.train(bert, tokenizer, seed=seed, progress=False)  # records captions on 200 clips as it goes
    scores = {name: V.evaluate(bert, tokenizer, data) for name, data in (("new", new), ("held-out", held_out))}
    print(f"seed {seed}: perplexity {[round(p, 1) for p in perplexity.tolist()]} (bar {T.NUM_CODES // 2}); "
          + "; ".join(f"{name} clips: " + ", ".join(f"{k} {v:.3f}" for k, v in s.items()) for name, s in scores.items())
          + f"; {time.perf_counter() - start:.0f} s", flush=True)
    print(f"seed {seed}: fully right on 200 clips during training:",
          ", ".join(f"{e['step']}: {e['full']:.3f}" for e in history.evals), flush=True)
