"""TextDecoder speed: generation with and without the KV cache, and forward+backward against nn.TransformerDecoder.

    python benchmarks/bench_decoder.py [--batch 16] [--width 64] [--layers 2] [--reps 3] [--device cpu]

Generation is greedy from an 8-token prompt with a 64-token memory; tokens/s counts every row's new tokens, and
the speed-up is cached / recomputed. Forward+backward (lm_loss on 32-token captions) compares our decoder with
the same configuration built from torch's nn.TransformerDecoder (pre-LN, batch-first, GELU, dropout 0, same
width, heads and FFN, the same embeddings and tied head around it): ratio ours / theirs, above 1 = ours slower.
Timings are medians of `reps` interleaved runs after warm-up (`timing.median_times`).
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from timing import median_times
from torch import nn

from mmcourse.losses import lm_loss
from mmcourse.nn import TextDecoder

PROMPT, MEMORY, CAPTION = 8, 64, 32


class TorchDecoder(nn.Module):
    """Token + positional embedding -> nn.TransformerDecoder (final LayerNorm) -> head tied to the embedding."""

    def __init__(self, vocab_size: int, context_length: int, width: int, layers: int, heads: int):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context_length, width))
        layer = nn.TransformerDecoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers, norm=nn.LayerNorm(width))

    def forward(self, ids, memory):
        L = ids.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(L, device=ids.device)
        x = self.token_embedding(ids) + self.positional_embedding[:L]
        return self.decoder(x, memory, tgt_mask=causal, tgt_is_causal=True) @ self.token_embedding.weight.T


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    dev, B, W, reps = torch.device(args.device), args.batch, args.width, args.reps
    V, context = args.vocab, PROMPT + 256
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}, batch {B}, width {W}, "
          f"{args.layers} layers, {args.heads} heads, vocab {V}, memory {MEMORY} tokens")

    ours = TextDecoder(V, context, W, args.layers, args.heads, eot_id=V - 1, pad_id=0, memory_dim=W).to(dev)
    ids, memory = torch.randint(0, V - 1, (B, PROMPT), device=dev), torch.randn(B, MEMORY, W, device=dev)
    print(f"\n{'greedy generation':<30} {'cached':>14} {'recomputed':>14} {'speed-up':>9}")
    ours.eval()
    for n in (64, 256):
        fns = {"cached": partial(ours.generate, ids, memory=memory, max_new_tokens=n),
               "recomputed": partial(ours.generate, ids, memory=memory, max_new_tokens=n, use_cache=False)}
        steps = fns["cached"]().ids.shape[1]  # fewer than n only if every row met its eot
        t = median_times(fns, reps, 1, dev)
        speed = {k: B * steps / s for k, s in t.items()}
        print(f"{f'{steps} new tokens':<30} {speed['cached']:10.0f} t/s {speed['recomputed']:10.0f} t/s "
              f"{t['recomputed'] / t['cached']:8.1f}x")

    ours.train()
    theirs = TorchDecoder(V, context, W, args.layers, args.heads).to(dev)
    captions = torch.randint(0, V, (B, CAPTION), device=dev)
    params = [*ours.parameters(), *theirs.parameters()]

    def step(model):
        for p in params:
            p.grad = None
        lm_loss(model(captions, memory=memory), captions).backward()

    t = median_times({"ours": lambda: step(ours), "theirs": lambda: step(theirs)}, 2 * reps + 1, 3, dev)
    print(f"\n{'forward+backward':<48} {'ours':>10} {'theirs':>10} {'ratio':>7}")
    print(f"{f'decoder {CAPTION} tokens: ours / nn.TransformerDecoder':<48} {1e3 * t['ours']:7.1f} ms "
          f"{1e3 * t['theirs']:7.1f} ms {t['ours'] / t['theirs']:7.2f}")


if __name__ == "__main__":
    main()
