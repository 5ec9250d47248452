"""Chapter 07's bars over training seeds 0-4 (one thread each, as the tests run): the four recognisers of the
avsr-tiny recipe (audio, video, concatenation, gated fusion) trained from each seed, their WER at each babble SNR on
the same 300 new utterances; then the audio tower bound to clip-tiny's images, its emergent audio -> text accuracy.

    python benchmarks/bench_seeds_avsr.py [seeds...]
"""

import sys
import time

import torch

from mmcourse import zoo
from mmcourse.recipes import audioclip_tiny as A
from mmcourse.recipes import avsr_tiny as R

torch.set_num_threads(1)
data = R.utterances(R.POOL, seed=7)
test, babble = R.test_set()
clip = zoo.load("clip-tiny", verbose=False)
sounds = A.sounding_objects(A.TRAIN_SOUNDS, clip=clip)
new_sounds = A.sounding_objects(1000, seed=1001, clip=clip)

for seed in [int(s) for s in sys.argv[1:]] or range(5):
    start = time.perf_counter()
    models = R.build(seed)
    R.train(models, data, seed=seed, progress=False)
    seconds = time.perf_counter() - start
    wers = R.wer_by_snr(models, test, babble)
    print(f"seed {seed} (trained in {seconds:.0f} s), WER at {R.SNRS} dB:", flush=True)
    for name, row in wers.items():
        print(f"  {name:7s} " + " ".join(f"{w:.3f}" for w in row), flush=True)
    best_single = [min(a, v) for a, v in zip(wers["audio"], wers["video"], strict=True)]
    margin = max(g - b for g, b in zip(wers["gated"], best_single, strict=True))
    zero = R.SNRS.index(0)
    print(f"  gated / audio at 0 dB {wers['gated'][zero] / wers['audio'][zero]:.3f} (bar <= 0.5); gated minus the "
          f"better single stream, worst SNR: {100 * margin:+.1f} points (bar <= +2)", flush=True)
    audio = A.build(seed)
    A.train(audio, sounds, seed=seed, progress=False)
    print(f"  audio -> CLIP: {A.evaluate(audio, clip, new_sounds)}", flush=True)
