"""Chapter 01's ViT recipe over seeds 0–4, one thread per run: the spread of its headline number.

    python benchmarks/bench_seeds_vit.py [--seeds 0 1 2 3 4] [--jobs 2]

The recipe is the lecture's (20 000 single-object 32x32 images, width 64, 3 layers, 4 heads, 700 AdamW steps of
128, lr 3e-3, warm-up 30). Seed s draws the training, test and held-out-pair images from data seeds 3s, 3s + 1,
3s + 2, the model's initialisation from `seed_everything(s)` and the batches from s · 100 000 + step, so seed 0 is
exactly the lecture's run. Prints one line per seed and the spread; the lecture quotes these numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F

from mmcourse.data import COLOUR_NAMES, SHAPES, render, sample_scenes
from mmcourse.nn import VisionTransformer
from mmcourse.train import fit
from mmcourse.utils import seed_everything

STEPS = 700


def labels(scenes) -> torch.Tensor:
    return torch.stack([scenes.shape[:, 0], scenes.colour[:, 0]], dim=1)  # (N, 2): shape, colour


@torch.no_grad()
def shape_accuracy(model, images, y) -> float:
    logits = torch.cat([model(chunk) for chunk in images.split(500)])
    return (logits[:, :3].argmax(1) == y[:, 0]).float().mean().item()


def run(seed: int, steps: int = STEPS) -> dict[str, float]:
    torch.set_num_threads(1)
    train = sample_scenes(20_000, seed=3 * seed, max_objects=1, split="train")
    test = sample_scenes(2_000, seed=3 * seed + 1, max_objects=1, split="train")
    novel = sample_scenes(2_000, seed=3 * seed + 2, max_objects=1, split="test")
    x_train, y_train = render(train, 32, seed=3 * seed), labels(train)
    x_test, y_test = render(test, 32, seed=3 * seed + 1), labels(test)
    x_novel, y_novel = render(novel, 32, seed=3 * seed + 2), labels(novel)
    seed_everything(seed)
    vit = VisionTransformer(image_size=32, patch_size=4, width=64, layers=3, heads=4,
                            output_dim=len(SHAPES) + len(COLOUR_NAMES))

    def loss_fn(model, batch):
        images, y = batch
        logits = model(images)
        return F.cross_entropy(logits[:, :3], y[:, 0]) + F.cross_entropy(logits[:, 3:], y[:, 1])

    def batches(step, batch_size=128):
        idx = torch.randint(len(x_train), (batch_size,), generator=torch.Generator().manual_seed(seed * 100_000 + step))
        return x_train[idx], y_train[idx]

    start = time.perf_counter()
    fit(vit, loss_fn, batches, steps=steps, lr=3e-3, betas=(0.9, 0.98), weight_decay=0.05, warmup=30,
        device="cpu", progress=False, desc=f"seed {seed}")
    seconds = time.perf_counter() - start
    result = {"seed": seed, "shape": shape_accuracy(vit, x_test, y_test),
              "novel_shape": shape_accuracy(vit, x_novel, y_novel), "seconds": seconds}
    print(f"seed {seed} done: shape accuracy {result['shape']:.4f}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one thread each")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps (the lecture's recipe: %(default)s)")
    args = parser.parse_args()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, args.seeds, [args.steps] * len(args.seeds)))
    for r in results:
        print(f"seed {r['seed']}: shape accuracy {r['shape']:.4f} (held-out pairs {r['novel_shape']:.4f}), "
              f"{r['seconds']:.0f} s on one thread")
    acc = [r["shape"] for r in results]
    print(f"shape accuracy over {len(acc)} seeds: min {min(acc):.4f}, median {statistics.median(acc):.4f}, "
          f"max {max(acc):.4f}")


if __name__ == "__main__":
    main()
