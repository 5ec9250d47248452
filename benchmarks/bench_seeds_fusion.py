"""Chapter 09's bars over seeds 0-4 (one thread each, as the tests run; the seed draws the data and the training):
on the interaction task late fusion near chance and cross-attention fusion near perfect (all six methods shown);
with one modality missing, modality dropout keeping most of the single-modality model's accuracy.

    python benchmarks/bench_seeds_fusion.py [--seeds 0 1 2 3 4] [--jobs 2]
"""

import argparse
import time
from concurrent.futures import ProcessPoolExecutor


def run(seed: int) -> dict:
    import torch

    from mmcourse import zoo
    from mmcourse.models.fusion import METHODS
    from mmcourse.recipes import fusion_tiny as R

    torch.set_num_threads(1)
    start = time.perf_counter()
    visual = zoo.load("clip-tiny", verbose=False).visual
    sound_encoder, _ = R.train_sound_encoder(seed, progress=False)
    sets = {task: [R.features(R.task_data(task, n, s), visual, sound_encoder)
                   for n, s in ((R.N_TRAIN, seed), (R.N_TEST, 100 + seed))] for task in R.TASKS}
    train, test = sets["interaction"]
    row = {"seed": seed}
    for method in METHODS:
        row[method] = R.accuracy(R.train(method, train, seed, progress=False)[0], test)
    train, test = sets["control"]
    ceiling = {m: R.accuracy(R.train("late", train, seed, modalities=(m,), progress=False)[0], test)
               for m in ("image", "sound")}
    for p in (0.0, 0.5):
        model = R.train("cross", train, seed, modality_dropout=p, progress=False)[0]
        # kept share of the ceiling of the modality that remains
        row[f"kept p={p:g}"] = min(R.accuracy(model, test, missing="image") / ceiling["sound"],
                                   R.accuracy(model, test, missing="sound") / ceiling["image"])
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
    print(" | ".join(f"{k:>10}" for k in keys))
    for row in rows:
        print(" | ".join(f"{row[k]:>10.3f}" if isinstance(row[k], float) else f"{row[k]:>10}" for k in keys))
    for k in keys[1:-1]:
        values = [r[k] for r in rows]
        print(f"{k}: min {min(values):.3f}, max {max(values):.3f}")
