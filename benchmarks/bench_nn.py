"""Forward+backward speed of mmcourse.nn against torch's production blocks, as ratios (ours / theirs).

    python benchmarks/bench_nn.py [--batch 128] [--reps 7]

A ratio of 1.00 means as fast; above 1 means ours is slower. CPU fp32 by default; timings are the median of
`reps` runs after warm-up, interleaved (alternating who goes first) so that noise hits both alike.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from timing import median_times
from torch import nn
from torchvision.models import VisionTransformer as TorchvisionViT

from mmcourse.nn import MultiheadAttention, VisionTransformer, fast_attention, scaled_dot_product_attention


def step(fn, params):
    """One forward+backward of fn(); gradients of `params` cleared before."""
    for p in params:
        p.grad = None
    fn().float().square().mean().backward()


DEVICE = torch.device("cpu")  # set from --device in main()


def compare(name, ours, theirs, params=(), reps=7, warmup=3):
    """Time two zero-argument callables (forward+backward), print and return ours / theirs."""
    fns = {"ours": lambda: step(ours, params), "theirs": lambda: step(theirs, params)}
    t = median_times(fns, reps, warmup, DEVICE)
    print(f"{name:<58} {1e3 * t['ours']:9.1f} ms {1e3 * t['theirs']:9.1f} ms {t['ours'] / t['theirs']:7.2f}")
    return t["ours"] / t["theirs"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    global DEVICE
    DEVICE = dev = torch.device(args.device)
    B, reps = args.batch, args.reps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, batch {B}")
    print(f"{'forward+backward':<58} {'ours':>12} {'theirs':>12} {'ratio':>7}")

    images = torch.randn(B, 3, 32, 32, device=dev)
    for width in (64, 128):
        cfg = dict(image_size=32, patch_size=4, layers=4, heads=4)
        ours = VisionTransformer(**cfg, width=width, output_dim=10).to(dev)
        theirs = TorchvisionViT(32, 4, num_layers=4, num_heads=4, hidden_dim=width, mlp_dim=4 * width,
                                num_classes=10).to(dev)
        params = [*ours.parameters(), *theirs.parameters()]
        compare(f"ViT w{width} L4 H4 p4 32px: ours / torchvision", lambda m=ours: m(images),
                lambda m=theirs: m(images), params, reps)

    D, H, L = 128, 4, 65
    x = torch.randn(B, L, D, device=dev, requires_grad=True)
    pad = torch.zeros(B, L, dtype=torch.bool, device=dev)
    pad[:, L // 2:] = True
    ours, theirs = MultiheadAttention(D, H).to(dev), nn.MultiheadAttention(D, H, batch_first=True).to(dev)
    params = [x, *ours.parameters(), *theirs.parameters()]
    compare("MHA self: ours / nn.MultiheadAttention", lambda: ours(x)[0],
            lambda: theirs(x, x, x, need_weights=False)[0], params, reps)
    compare("MHA self + key padding: ours / nn.MultiheadAttention", lambda: ours(x, key_padding_mask=pad)[0],
            lambda: theirs(x, x, x, key_padding_mask=pad, need_weights=False)[0], params, reps)
    compare("MHA self, weights returned: ours / nn.MultiheadAttention",
            lambda: ours(x, return_weights=True)[0],
            lambda: theirs(x, x, x, average_attn_weights=False)[0], params, reps)

    q, k, v = (torch.randn(B, H, L, D // H, device=dev, requires_grad=True) for _ in range(3))
    sdpa = F.scaled_dot_product_attention
    for label, kw, ref_kw in (("no mask", {}, {}), ("causal", {"is_causal": True}, {"is_causal": True}),
                              ("key padding", {"key_padding_mask": pad}, {"attn_mask": ~pad[:, None, None]})):
        compare(f"fast_attention / F.sdpa, {label}", lambda kw=kw: fast_attention(q, k, v, **kw),
                lambda kw=ref_kw: sdpa(q, k, v, **kw), [q, k, v], reps)
        compare(f"from-scratch attention / F.sdpa, {label}",
                lambda kw=kw: scaled_dot_product_attention(q, k, v, **kw),
                lambda kw=ref_kw: sdpa(q, k, v, **kw), [q, k, v], reps)


if __name__ == "__main__":
    main()
