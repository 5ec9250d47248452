"""Training speed against this machine's limit: every recipe's training step as FLOPs, milliseconds, GFLOP/s and the
fraction of the matmul peak measured in the same run on the same threads; where CLIP-tiny's step time goes; and the
speed-ups tried on it, as paired ratios.

    python benchmarks/bench_train.py [--threads 2] [--reps 15] [--only clip-tiny,tiny-lm] [--no-ab] [--compile]

Each recipe's step is captured from its own `train` function (its model, loss, data and optimiser settings, the
exact call `fit` would make), so the figures follow the recipes as they change. FLOPs are counted by
`torch.utils.flop_counter` over one forward + backward (matmuls, convolutions and attention; element-wise work
is not counted). The peak is a 2048 x 2048 fp32 matmul, measured just before each recipe. The recipes that build on
CLIP-tiny load it from the zoo (trained on first use).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import time
from dataclasses import dataclass

import torch
from timing import median_times
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import mmcourse.nn.attention as attention
from mmcourse import zoo
from mmcourse.recipes import (
    audioclip_tiny,
    avsr_tiny,
    blip_tiny,
    clip_tiny,
    fusion_tiny,
    llava_tiny,
    scaling_tiny,
    tiny_lm,
    unclip_tiny,
    video_tokenizer,
    videobert_tiny,
)
from mmcourse.train import param_groups, to_device


class _Captured(Exception):
    """Raised by the stand-in for `fit`: carries what the recipe would have trained."""

    def __init__(self, model, loss_fn, data, steps, kw):
        super().__init__("captured")
        self.model, self.loss_fn, self.data, self.steps, self.kw = model, loss_fn, data, steps, kw


@contextlib.contextmanager
def _capturing(module):
    """Within: `module.fit(...)` raises _Captured instead of training."""
    real = module.fit

    def fake_fit(model, loss_fn, data, steps, **kw):
        raise _Captured(model, loss_fn, data, steps, kw)

    module.fit = fake_fit
    try:
        yield
    finally:
        module.fit = real


def capture(module, train, *args, **kw) -> _Captured:
    """What `train(*args, **kw)` hands to `module.fit`."""
    with _capturing(module):
        try:
            train(*args, **kw)
        except _Captured as captured:
            return captured
    raise RuntimeError(f"{train.__qualname__} did not call fit")


@dataclass
class Step:
    """One training step of a recipe exactly as `fit` runs it: loss, backward, clipping, AdamW, after_step."""

    name: str
    captured: _Captured
    batches: list
    sync: bool = True  # read the loss back every step (`loss.item()`), as fit does

    def __post_init__(self):
        c, kw = self.captured, self.captured.kw
        self.model = c.model.to("cpu").train()
        self.optimizer = kw.get("optimizer") or torch.optim.AdamW(
            param_groups(self.model, kw.get("weight_decay", 0.0)), lr=kw.get("lr", 1e-3),
            betas=kw.get("betas", (0.9, 0.999)))
        self.i = 0

    def loss(self, batch):
        out = self.captured.loss_fn(self.model, batch)
        return out[0] if isinstance(out, tuple) else out

    def __call__(self):
        batch = self.batches[self.i % len(self.batches)]
        self.i += 1
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.captured.kw.get("grad_clip") is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.captured.kw["grad_clip"])
        self.optimizer.step()
        if self.captured.kw.get("after_step") is not None:
            self.captured.kw["after_step"](self.model)
        return loss.item() if self.sync else None

    def flops(self) -> int:
        """FLOPs of one forward + backward (the optimiser's element-wise work is not counted)."""
        with FlopCounterMode(display=False) as counter:
            self.loss(self.batches[0]).backward()
        self.optimizer.zero_grad(set_to_none=True)
        return counter.get_total_flops()


def make_step(name: str, captured: _Captured, n_batches: int = 4) -> tuple[Step, float]:
    """The Step and the median seconds its data source takes per batch."""
    data = captured.data
    source = (data(s) for s in itertools.count()) if callable(data) else itertools.cycle(data)
    seconds = []
    batches = []
    for _ in range(n_batches):
        start = time.perf_counter()
        batches.append(to_device(next(source), torch.device("cpu")))
        seconds.append(time.perf_counter() - start)
    return Step(name, captured, batches), statistics.median(seconds)


def recipes(only: set[str] | None) -> dict:
    """name (chapter) -> a function returning the recipe's captured training call. Data sizes are cut down where
    the recipe precomputes a data set (batch shapes are the recipe's own)."""
    def clip_(loss):
        return lambda: capture(clip_tiny, clip_tiny.train, clip_tiny.build(loss), clip_tiny.caption_data(2048))

    def blip():
        pairs = blip_tiny.web_data(zoo.load("clip-tiny", verbose=False).visual, n=2048).pairs
        return capture(blip_tiny, blip_tiny.train, blip_tiny.build(), pairs)

    def lm():
        return capture(tiny_lm, tiny_lm.train, tiny_lm.build(), tiny_lm.corpus(2048))

    def llava(stage):
        def run():
            model = llava_tiny.build(zoo.load("clip-tiny", verbose=False).visual, zoo.load("tiny-lm", verbose=False))
            return capture(llava_tiny, llava_tiny.train, model, stage)
        return run

    def fusion():
        visual = zoo.load("clip-tiny", verbose=False).visual
        sound, _ = fusion_tiny.train_sound_encoder(progress=False)
        data = fusion_tiny.features(fusion_tiny.task_data("interaction", 1024), visual, sound)
        return capture(fusion_tiny, fusion_tiny.train, "cross", data, device="cpu")

    def lit():
        data = scaling_tiny.lit_data(zoo.load("clip-tiny", verbose=False))
        return capture(scaling_tiny, scaling_tiny.train, data, 256)

    def tokenizer():
        return capture(video_tokenizer, video_tokenizer.train, video_tokenizer.build(), eval_every=None)

    def videobert():
        tok = zoo.load("video-tokenizer", verbose=False)
        return capture(videobert_tiny, videobert_tiny.train, videobert_tiny.build(), tok, eval_every=None)

    def unclip():
        data = unclip_tiny.embed(unclip_tiny.close_ups(2048), zoo.load("clip-tiny", verbose=False))
        return capture(unclip_tiny, unclip_tiny.train_decoder, unclip_tiny.build().decoder, data)

    def avsr():
        data = avsr_tiny.utterances(512, seed=7)
        return capture(avsr_tiny, avsr_tiny.train_one, avsr_tiny.build()["gated"], data, avsr_tiny.babble_bank(data))

    def audioclip():
        data = audioclip_tiny.sounding_objects(1024, clip=zoo.load("clip-tiny", verbose=False))
        return capture(audioclip_tiny, audioclip_tiny.train, audioclip_tiny.build(), data)

    table = {"clip-tiny (02)": clip_("clip"), "siglip-tiny (02)": clip_("siglip"), "blip-tiny (04)": blip,
             "tiny-lm (05)": lm, "llava stage 1 (05)": llava(1), "llava stage 2 (05)": llava(2),
             "unclip decoder (06)": unclip, "avsr gated (07)": avsr, "audioclip (07)": audioclip,
             "video-tokenizer (08)": tokenizer, "videobert-tiny (08)": videobert,
             "fusion cross (09)": fusion, "LiT batch 256 (11)": lit}
    return {k: v for k, v in table.items() if only is None or any(o in k for o in only)}


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    """GFLOP/s of an n x n fp32 matmul on the current threads (median of reps)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_times({"mm": lambda: a @ b}, reps, 2)["mm"] / 1e9


def utilisation(steps: dict[str, Step], data_s: dict[str, float], reps: int) -> dict[str, dict]:
    """Each recipe's FLOPs and median step time; the peak is the median of matmul peaks measured before each
    recipe (one figure for the table: the machine's speed drifts, and a single peak per row would add its noise)."""
    rows, peaks = {}, [matmul_peak()]
    for name, step in steps.items():
        flops = step.flops()
        peaks.append(matmul_peak())
        seconds = median_times({name: step}, reps, 3)[name]
        rows[name] = dict(gflop=flops / 1e9, ms=1e3 * seconds, data_ms=1e3 * data_s[name], rate=flops / seconds / 1e9)
    peak = statistics.median(peaks)
    print(f"matmul peak {peak:.0f} GFLOP/s (median of {len(peaks)}, from {min(peaks):.0f} to {max(peaks):.0f})\n")
    print(f"{'recipe':<22} {'GFLOP/step':>10} {'ms/step':>8} {'data ms':>8} {'GFLOP/s':>8} {'of peak':>8}")
    for name, r in rows.items():
        print(f"{name:<22} {r['gflop']:10.2f} {r['ms']:8.1f} {r['data_ms']:8.1f} {r['rate']:8.1f} "
              f"{r['rate'] / peak:8.0%}")
    return rows


def phases(step: Step, reps: int) -> None:
    """Where one step's time goes: data (fetched beforehand here), forward, backward, optimiser; then top ops."""
    times = {k: [] for k in ("forward", "backward", "clip + optimiser")}
    for i in range(reps + 3):
        t0 = time.perf_counter()
        loss = step.loss(step.batches[i % len(step.batches)])
        t1 = time.perf_counter()
        step.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        if step.captured.kw.get("grad_clip") is not None:
            torch.nn.utils.clip_grad_norm_(step.model.parameters(), step.captured.kw["grad_clip"])
        step.optimizer.step()
        t3 = time.perf_counter()
        if i >= 3:
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                times[k].append(v)
    print(f"\n{step.name}: " + ", ".join(f"{k} {1e3 * statistics.median(v):.1f} ms" for k, v in times.items()))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=48))


def _math_attention(q, k, v, attn_mask=None, is_causal=False, key_padding_mask=None, dropout_p=0.0):
    return attention.scaled_dot_product_attention(q, k, v, attn_mask, is_causal, key_padding_mask,
                                                  dropout_p=dropout_p)


def ab(make: callable, reps: int, with_compile: bool) -> None:
    """Speed-ups tried on CLIP-tiny's step, one at a time, each against the same step as the recipe runs it:
    fresh models from the same seed, steps interleaved (alternating who goes first), ratio = variant / recipe."""
    base = make()

    def variant(configure):
        step = make()
        configure(step)
        return step

    def fused(step):
        step.optimizer = torch.optim.AdamW(param_groups(step.model, 0.05), lr=3e-3, betas=(0.9, 0.98), fused=True)

    def foreach(step):
        step.optimizer = torch.optim.AdamW(param_groups(step.model, 0.05), lr=3e-3, betas=(0.9, 0.98), foreach=True)

    def channels_last(step):
        step.model.visual.conv1.to(memory_format=torch.channels_last)
        step.batches = [{**b, "images": b["images"].contiguous(memory_format=torch.channels_last)}
                        for b in step.batches]

    def no_sync(step):
        step.sync = False

    variants = {"AdamW fused": variant(fused), "AdamW foreach": variant(foreach),
                "channels-last conv stem": variant(channels_last), "no loss.item()": variant(no_sync)}
    explicit = variant(lambda s: None)

    def with_math(step):
        def run():
            fast, attention.fast_attention = attention.fast_attention, _math_attention
            try:
                return step()
            finally:
                attention.fast_attention = fast
        return run

    fns = {"recipe": base, **variants, "attention written out (no SDPA)": with_math(explicit)}
    if with_compile:
        compiled = make()  # the two towers' transformers, whole graphs (the token-id check outside reads .item())
        compiled.model.visual.compile(fullgraph=True)
        compiled.model.text.transformer.compile(fullgraph=True)
        import torch._inductor.config

        torch._inductor.config.force_disable_caches = True  # the compile time a first run pays
        start = time.perf_counter()
        compiled()
        compiled()
        print(f"torch.compile: {time.perf_counter() - start:.0f} s to compile (first two steps)")
        fns["torch.compile"] = compiled
    times = {name: [] for name in fns}
    items = list(fns.items())
    for r in range(reps + 3):
        for name, fn in items if r % 2 == 0 else items[::-1]:
            start = time.perf_counter()
            fn()
            if r >= 3:
                times[name].append(time.perf_counter() - start)
    print(f"\n{'CLIP-tiny step, variant':<36} {'ms':>7} {'ratio':>7}  (paired median of variant / recipe)")
    for name, t in times.items():
        ratio = statistics.median(a / b for a, b in zip(t, times["recipe"], strict=True))
        print(f"{name:<36} {1e3 * statistics.median(t):7.1f} {ratio:7.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("--only", type=lambda s: set(s.split(",")), default=None,
                        help="comma-separated parts of recipe names")
    parser.add_argument("--no-ab", action="store_true", help="skip the A/B of speed-ups on CLIP-tiny")
    parser.add_argument("--compile", action="store_true", help="add torch.compile to the A/B (about a minute)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32 on CPU")
    steps, data_s = {}, {}
    for name, get in recipes(args.only).items():
        steps[name], data_s[name] = make_step(name, get())
    utilisation(steps, data_s, args.reps)
    first = next(iter(steps.values()))
    phases(first, args.reps)
    if not args.no_ab:
        make = recipes({"clip-tiny"})["clip-tiny (02)"]
        ab(lambda: make_step("clip-tiny", make())[0], args.reps, args.compile)


if __name__ == "__main__":
    main()
