"""Chapter 10's bars over seeds 0-4 (one thread each, as the tests run; the seed draws the model and the batches, the
data are the lecture's): the image-encoder probe and the fused accuracy of the joint model and of each fix, and
the gains over the joint model; then balanced sampling's largest deviation from uniform.

    python benchmarks/bench_seeds_strategies.py [--seeds 0 1 2 3 4] [--jobs 2]
"""

import argparse
import time
from concurrent.futures import ProcessPoolExecutor


def run(seed: int) -> dict:
    import torch

    from mmcourse.data import balanced_batches, class_frequencies
    from mmcourse.recipes import strategies_tiny as S

    torch.set_num_threads(1)
    start = time.perf_counter()
    train, test = S.task_data(S.N_TRAIN, 0), S.task_data(S.N_TEST, 1)
    image_model, _ = S.train("image", train, seed=seed)
    models = {mode: S.train(mode, train, seed=seed)[0] for mode in ("joint", "ogm-ge", "alternating")}
    models["gradual"] = S.gradual(train, image_model=image_model, seed=seed)[0]
    row = {"seed": seed}
    for name, model in models.items():
        row[f"{name} probe"] = S.probe(model, "image", train, test)
        row[f"{name} fused"] = S.fused_accuracy(model, test)
    for name in ("ogm-ge", "alternating", "gradual"):
        row[f"{name} gain"] = row[f"{name} probe"] - row["joint probe"]
    row["largest fused drop"] = row["joint fused"] - min(row[f"{n} fused"] for n in ("ogm-ge", "alternating",
                                                                                         "gradual"))
    labels = train.labels[S.long_tailed(train.labels, seed=seed)]
    draws = torch.cat([balanced_batches(labels, 128, seed)(s) for s in range(4000)])
    row["balanced deviation"] = (class_frequencies(draws, labels, 24) * 24 - 1).abs().max().item()
    row["seconds"] = time.perf_counter() - start
    return row


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(run, args.seeds))
    keys = list(rows[0])
    for k in keys[1:]:
        values = [r[k] for r in rows]
        spread = f"(min {min(values):.3f}, max {max(values):.3f})"
        print(f"{k:>20}: " + "  ".join(f"{v:.3f}" for v in values) + "   " + spread)
