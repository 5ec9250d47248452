"""A GPT-style text decoder, shared by the captioning and vision-language chapters, with KV-cached generation.

    ids (B, L) -> token embedding (or embeds (B, L, width)) + learned positional embedding
      -> pre-LN blocks: causal self-attention [+ cross-attention to a memory (B, M, memory_dim), e.g. patches]
      -> ln_final -> LM head -> logits (B, L, vocab_size)

The LM head shares the token embedding matrix E by default (logits = h Eᵀ, Press & Wolf 2017).
`generate` feeds the prompt once, then one token per step: a `KVCache` keeps every layer's keys and values, so a
step attends its one query to the cached keys instead of re-running the whole prefix (use_cache=False does that,
for comparison). Right-padded prompts of different `lengths` are moved to the right (left padding), the padding
is masked as keys and positions are counted per row, so each row gets the tokens it would get on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmcourse.nn.attention import KVCache
from mmcourse.nn.transformer import Transformer, check_heads
from mmcourse.utils import check_number, check_sizes, check_tensor, check_token_id

__all__ = ["TextDecoder", "GenerateOutput"]


class GenerateOutput(NamedTuple):
    """What `TextDecoder.generate` returns."""

    ids: Tensor  # (B, N ≤ max_new_tokens) generated tokens, pad_id after a row's eot_id
    lengths: Tensor  # (B,) generated tokens per row, its eot_id included


class TextDecoder(nn.Module):
    """Token + positional embedding -> `Transformer` (causal, optional cross-attention) -> ln_final -> lm_head.

    The special ids come from the tokenizer: generation stops a row at `eot_id` and pads it with `pad_id`;
    `sot_id` starts a prompt-less generation (captioning from the memory alone).
    """

    def __init__(self, vocab_size: int, context_length: int, width: int, layers: int, heads: int, *,
                 eot_id: int, pad_id: int, sot_id: int | None = None, memory_dim: int | None = None,
                 mlp_ratio: float = 4.0, act: str = "gelu", dropout: float = 0.0, tie_embeddings: bool = True):
        super().__init__()
        check_sizes(vocab_size=vocab_size, context_length=context_length)
        if memory_dim is not None:
            check_sizes(memory_dim=memory_dim)
        check_heads(width, heads)
        for name, token in (("eot_id", eot_id), ("pad_id", pad_id), ("sot_id", sot_id)):
            if token is not None or name != "sot_id":
                check_token_id(token, name, vocab_size)
        self.vocab_size, self.context_length, self.width = vocab_size, context_length, width
        self.memory_dim, self.eot_id, self.pad_id, self.sot_id = memory_dim, eot_id, pad_id, sot_id
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act, cross_dim=memory_dim, dropout=dropout)
        self.ln_final = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab_size, bias=False)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        if tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight

    @torch.no_grad()
    def add_tokens(self, n: int) -> None:
        """Grow the vocabulary by n tokens, ids vocab_size .. vocab_size + n - 1 (new words a fine-tuning needs):
        their embedding rows (and head rows, when untied) start at the mean of the old rows, a neutral start."""
        check_number(n, "n", integer=True, low=1)

        def grown(w: nn.Parameter) -> nn.Parameter:  # a frozen weight stays frozen
            return nn.Parameter(torch.cat([w, w.mean(0, keepdim=True).expand(n, -1)]), requires_grad=w.requires_grad)

        tied = self.lm_head.weight is self.token_embedding.weight
        self.token_embedding.weight = grown(self.token_embedding.weight)
        self.lm_head.weight = self.token_embedding.weight if tied else grown(self.lm_head.weight)
        self.vocab_size += n
        self.token_embedding.num_embeddings = self.lm_head.out_features = self.vocab_size

    def embed(self, ids: Tensor) -> Tensor:
        """ids (B, L) -> token embeddings (B, L, width), no position yet: what `forward(embeds=...)` takes."""
        check_tensor(ids, "ids", shape=("B", "L"), dtype="int")
        lo, hi = torch.stack(ids.aminmax()).tolist() if ids.numel() else (0, 0)
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(f"ids: token ids must be in [0, {self.vocab_size}), got min {lo}, max {hi}")
        return self.token_embedding(ids)

    def forward(self, ids: Tensor | None = None, *, embeds: Tensor | None = None, memory: Tensor | None = None,
                memory_padding_mask: Tensor | None = None, padding_mask: Tensor | None = None,
                cache: KVCache | None = None) -> Tensor:
        """ids (B, L) or embeds (B, L, width) -> logits (B, L, vocab_size); logits at t score token t + 1.

        memory (B, M, memory_dim) with memory_padding_mask (B, M), True = padding. padding_mask (B, P + L),
        True = padding, covers the P positions of `cache` too; a token's position is then the number of
        non-padding tokens before it in its row. With a cache, (ids / embeds) are the L positions after those P,
        and the memory's keys / values are those of the first call.
        """
        x, name = self._inputs(ids, embeds)
        (B, L, _), P = x.shape, cache.length if cache is not None else 0
        if P + L > self.context_length:
            raise ValueError(f"{name}: {P} cached + {L} new positions exceed context_length={self.context_length}")
        self._check_memory(memory, memory_padding_mask, B)
        if padding_mask is None:
            x = x + self.positional_embedding[P:P + L]
        else:
            check_tensor(padding_mask, "padding_mask", shape=(B, P + L), dtype=torch.bool)
            x = x + self.positional_embedding[((~padding_mask).cumsum(1) - 1).clamp(min=0)[:, P:]]
        h = self.transformer(x, memory, key_padding_mask=padding_mask, is_causal=True,
                             context_padding_mask=memory_padding_mask, cache=cache)
        return self.lm_head(self.ln_final(h))

    @torch.no_grad()
    def generate(self, ids: Tensor | None = None, *, embeds: Tensor | None = None, lengths: Tensor | None = None,
                 memory: Tensor | None = None, memory_padding_mask: Tensor | None = None, max_new_tokens: int = 20,
                 do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0,
                 num_beams: int = 1, length_penalty: float = 1.0, generator: torch.Generator | None = None,
                 use_cache: bool = True, streamer: Callable[[Tensor], None] | None = None) -> GenerateOutput:
        """Continue each prompt until eot_id or max_new_tokens; stop when every row has ended.

        Prompt: ids (B, L) or embeds (B, L, width), right-padded with `lengths` (B,) real tokens per row;
        neither: one sot_id per row (B = len(memory)). Greedy by default. do_sample: draw from
        softmax(logits / temperature) cut to the top_k tokens and to the nucleus, the fewest most likely tokens
        whose probability reaches top_p (Holtzman et al. 2020). num_beams > 1: beam search on
        log p / length^length_penalty (0: the sequence's log-probability itself). streamer(tokens (B,)) is
        called with each step's tokens as they are chosen (greedy and sampling; pad_id for rows that ended), to
        show an answer while it is written.
        """
        _check_search(max_new_tokens, temperature, top_k, top_p, num_beams, length_penalty, do_sample)
        prefix = self._start(ids, embeds, lengths, memory, memory_padding_mask, max_new_tokens, use_cache)
        if num_beams > 1:
            if streamer is not None:
                raise ValueError("streamer: beam search only knows its answer at the end; stream greedy or sampling")
            return self._beam_search(prefix, num_beams, max_new_tokens, length_penalty)
        B, dev = len(prefix.x), prefix.x.device
        done, lengths = torch.zeros(B, dtype=torch.bool, device=dev), torch.zeros(B, dtype=torch.long, device=dev)
        tokens = []
        for _ in range(max_new_tokens):
            logits = prefix.next_logits()
            token = _sample(logits, temperature, top_k, top_p, generator) if do_sample else logits.argmax(-1)
            tokens.append(token.masked_fill(done, self.pad_id))
            if streamer is not None:
                streamer(tokens[-1])
            lengths += ~done
            done |= tokens[-1] == self.eot_id
            if done.all():
                break
            prefix.extend(tokens[-1])
        return GenerateOutput(torch.stack(tokens, dim=1), lengths)

    def _beam_search(self, prefix: _Prefix, num_beams: int, max_new_tokens: int,
                     length_penalty: float) -> GenerateOutput:
        """Keep the K best hypotheses per row by score = log p / length^length_penalty over the K·V extensions.

        A finished hypothesis stays in the beam, extended by pad_id at log-probability 0, until all have ended.
        """
        B, K, V, dev = len(prefix.x), num_beams, self.vocab_size, prefix.x.device
        prefix.reorder(torch.arange(B, device=dev).repeat_interleave(K))
        logp_sum = torch.full((B, K), float("-inf"), device=dev)
        logp_sum[:, 0] = 0.0  # one live hypothesis at first, so that the K first picks differ
        lengths = torch.zeros(B * K, dtype=torch.long, device=dev)
        done = torch.zeros(B * K, dtype=torch.bool, device=dev)
        tokens = torch.empty(B * K, 0, dtype=torch.long, device=dev)
        ended = torch.full((V,), float("-inf"), device=dev)
        ended[self.pad_id] = 0.0  # log-probabilities that continue a finished hypothesis
        for _ in range(max_new_tokens):
            logp = torch.where(done[:, None], ended, prefix.next_logits().float().log_softmax(-1))  # (B K, V)
            new_lengths = lengths + ~done
            total = logp_sum.view(-1, 1) + logp
            best = (total / new_lengths[:, None] ** length_penalty).view(B, K * V).topk(K, dim=1).indices
            rows, token = (torch.arange(B, device=dev)[:, None] * K + best // V).view(-1), (best % V).view(-1)
            logp_sum = total.view(B, K * V).gather(1, best)
            lengths, tokens = new_lengths[rows], torch.cat([tokens[rows], token[:, None]], dim=1)
            done = done[rows] | (token == self.eot_id)
            if done.all():
                break
            prefix.reorder(rows)
            prefix.extend(token)
        pick = torch.arange(B, device=dev) * K  # topk sorts: each row's hypothesis 0 scores best
        return GenerateOutput(tokens[pick, :int(lengths[pick].max())], lengths[pick])

    def _start(self, ids, embeds, lengths, memory, memory_padding_mask, max_new_tokens, use_cache) -> _Prefix:
        """The checked prompt, left-aligned when `lengths` are given, ready to generate from."""
        if ids is None and embeds is None:
            if self.sot_id is None:
                raise ValueError("generate needs a prompt (ids or embeds), or a decoder built with sot_id=...")
            ids = torch.full((1 if memory is None else len(memory), 1), self.sot_id,
                             device=self.positional_embedding.device)
        x, name = self._inputs(ids, embeds)
        if len(x) == 0:
            raise ValueError(f"{name}: an empty batch, no prompt to continue")
        if x.shape[1] > self.context_length:
            raise ValueError(f"prompt: {x.shape[1]} tokens exceed context_length={self.context_length}")
        x, pad = (x, None) if lengths is None else self._left_align(x, lengths)
        if x.shape[1] + max_new_tokens > self.context_length:
            raise ValueError(f"prompt ({x.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) = "
                             f"{x.shape[1] + max_new_tokens} exceed context_length={self.context_length}")
        return _Prefix(self, x, pad, memory, memory_padding_mask, use_cache)

    def _left_align(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor | None]:
        """Right-padded x (B, L, width) with `lengths` (B,) -> left-padded (B, max length, width), its padding."""
        B, L, _ = x.shape
        check_tensor(lengths, "lengths", shape=(B,), dtype="int")
        if lengths.min() < 1 or lengths.max() > L:
            raise ValueError(f"lengths: expected values in [1, {L}], got min {int(lengths.min())}, "
                             f"max {int(lengths.max())}")
        L = int(lengths.max())
        shift = L - lengths.to(x.device)[:, None]  # (B, 1): row b moves right by L - lengths[b]
        position = torch.arange(L, device=x.device)
        x = x.gather(1, ((position - shift) % L)[..., None].expand(B, L, self.width))
        pad = position < shift
        return x, (pad if pad.any() else None)

    def _inputs(self, ids: Tensor | None, embeds: Tensor | None) -> tuple[Tensor, str]:
        """Exactly one of ids (B, L) or embeds (B, L, width) -> embeddings (B, L, width) and the argument's name."""
        if (ids is None) == (embeds is None):
            raise ValueError("give exactly one of ids (B, L) or embeds (B, L, width)")
        if embeds is None:
            return self.embed(ids), "ids"
        check_tensor(embeds, "embeds", shape=("B", "L", self.width), dtype="float")
        return embeds, "embeds"

    def _check_memory(self, memory: Tensor | None, memory_padding_mask: Tensor | None, B: int) -> None:
        if memory is None:
            if self.memory_dim is not None:
                raise ValueError(f"memory: this decoder cross-attends to a memory (B, M, {self.memory_dim}), got None")
            if memory_padding_mask is not None:
                raise ValueError("memory_padding_mask given without a memory")
            return
        if self.memory_dim is None:
            raise ValueError("memory given to a decoder built without cross-attention; build it with memory_dim=...")
        check_tensor(memory, "memory", shape=(B, "M", None), dtype="float")
        if memory.shape[-1] != self.memory_dim:
            raise ValueError(f"memory: expected width memory_dim={self.memory_dim}, got {memory.shape[-1]} "
                             f"(shape {tuple(memory.shape)})")


class _Prefix:
    """What generation feeds the decoder: the embeddings so far (B, T, width), their padding (B, T) or None, the
    memory, and the KVCache (None: every step re-runs the whole prefix)."""

    def __init__(self, decoder: TextDecoder, x: Tensor, pad: Tensor | None, memory: Tensor | None,
                 memory_padding_mask: Tensor | None, use_cache: bool):
        self.decoder, self.x, self.pad = decoder, x, pad
        self.memory, self.memory_padding_mask = memory, memory_padding_mask
        self.cache = KVCache() if use_cache else None

    def next_logits(self) -> Tensor:
        """Logits (B, vocab_size) of the token after the prefix; with a cache only the unseen positions are fed."""
        start = self.cache.length if self.cache is not None else 0
        return self.decoder(embeds=self.x[:, start:], memory=self.memory, memory_padding_mask=self.memory_padding_mask,
                            padding_mask=self.pad, cache=self.cache)[:, -1]

    def extend(self, tokens: Tensor) -> None:
        """Append one token (B,) to every row."""
        self.x = torch.cat([self.x, self.decoder.embed(tokens[:, None])], dim=1)
        if self.pad is not None:
            self.pad = F.pad(self.pad, (0, 1), value=False)

    def reorder(self, rows: Tensor) -> None:
        """Keep (or repeat) rows (B',) of everything: beam search's surviving hypotheses."""
        pick = lambda t: None if t is None else t.index_select(0, rows)
        self.x, self.pad, self.memory, self.memory_padding_mask = map(
            pick, (self.x, self.pad, self.memory, self.memory_padding_mask))
        if self.cache is not None:
            self.cache.reorder(rows)


def _sample(logits: Tensor, temperature: float, top_k: int | None, top_p: float, generator) -> Tensor:
    """One token (B,) per row of logits (B, V) from softmax(logits / temperature), cut to top_k and top_p."""
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        outside = probs.cumsum(-1) - probs >= top_p  # the more likely tokens already reach p (the top one stays)
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(outside, float("-inf")))
    probs = logits.softmax(-1)
    if generator is not None and generator.device != probs.device:  # e.g. a CPU generator for a model on a GPU
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _check_search(max_new_tokens, temperature, top_k, top_p, num_beams, length_penalty, do_sample) -> None:
    for name, value in (("max_new_tokens", max_new_tokens), ("num_beams", num_beams), ("top_k", top_k or 1)):
        check_number(value, name, integer=True)
    for name, value in (("temperature", temperature), ("top_p", top_p), ("length_penalty", length_penalty)):
        check_number(value, name)
    checks = [("max_new_tokens", max_new_tokens, max_new_tokens >= 1, ">= 1"),
              ("temperature", temperature, temperature > 0, "> 0"),
              ("top_k", top_k, top_k is None or top_k >= 1, ">= 1 (or None)"),
              ("top_p", top_p, 0 < top_p <= 1, "in (0, 1]"),
              ("num_beams", num_beams, num_beams >= 1, ">= 1")]
    for name, value, ok, want in checks:
        if not ok:
            raise ValueError(f"{name}: expected {want}, got {value}")
    if num_beams > 1 and do_sample:
        raise ValueError(f"num_beams={num_beams} is beam search, which does not sample: use do_sample=False")
