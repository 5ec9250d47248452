"""Throughput of the procedural world: images/s at 32 and 64 px, seconds of speech per second, clips/s.

    python benchmarks/bench_data.py [--threads N]
"""

import argparse
import time

import torch

from mmcourse.data import (
    CaptionDataset,
    babble_noise,
    log_mel_spectrogram,
    moving_shapes,
    random_sentences,
    render,
    sample_scenes,
    speak,
    talking_mouth,
)


def timed(fn, repeats: int = 3) -> float:
    """Best wall time of `repeats` runs, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")

    n = 20_000
    t = timed(lambda: sample_scenes(n, 0, max_objects=3))
    print(f"scenes (1-3 objects)       {n / t:12,.0f} scenes/s")
    scenes = sample_scenes(n, 0, max_objects=3)
    for resolution in (32, 64):
        t = timed(lambda r=resolution: render(scenes, r))
        label = f"render {resolution}x{resolution}"
        print(f"{label:<27}{n / t:12,.0f} images/s   ({n:,} in {t:.2f} s)")
    t = timed(lambda: CaptionDataset(5000, seed=0, max_objects=2), repeats=1)
    print(f"CaptionDataset (build)     {5000 / t:12,.0f} items/s")

    sentences = random_sentences(500, 0)
    speech = speak(sentences, 0)
    seconds = speech.lengths.sum().item() / speech.sample_rate
    t = timed(lambda: speak(sentences, 0))
    print(f"speech synthesis           {seconds / t:12,.0f} s of audio / s")
    t = timed(lambda: babble_noise(500, speech.wave.shape[1], 0))
    print(f"babble noise               {500 * speech.wave.shape[1] / 8000 / t:12,.0f} s of audio / s")
    t = timed(lambda: log_mel_spectrogram(speech.wave))
    print(f"log-mel (256 / 80 / 40)    {seconds / t:12,.0f} s of audio / s")
    t = timed(lambda: talking_mouth(speech))
    print(f"talking mouth (16 px)      {seconds / t:12,.0f} s of video / s")
    t = timed(lambda: moving_shapes(1000, 0, frames=8))
    print(f"moving-shape clips (8x32)  {1000 / t:12,.0f} clips/s")


if __name__ == "__main__":
    main()
