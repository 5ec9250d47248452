"""TextDecoder: causality, KV-cached generation against full recomputation, search methods, memory, errors."""

import pytest
import torch

from mmcourse.nn import KVCache, TextDecoder, Transformer

V, CTX, W, MEM_DIM, M = 50, 32, 32, 24, 6
EOT, PAD, SOT = 1, 0, 2


def make(memory=True, seed=0, **kw):
    """A tiny decoder with every weight random (the default init's tied head just repeats the last token)."""
    torch.manual_seed(seed)
    decoder = TextDecoder(V, CTX, W, layers=2, heads=4, eot_id=EOT, pad_id=PAD, sot_id=SOT,
                          memory_dim=MEM_DIM if memory else None, **kw)
    with torch.no_grad():
        for name, p in decoder.named_parameters():
            p.normal_(0, 0.5 if p.ndim > 1 else 0.1)
            if name.startswith(("transformer.resblocks", "ln_final")) and "ln" in name and name.endswith("weight"):
                p.add_(1.0)
    return decoder.eval()


def inputs(B=3, L=7, memory=True, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (B, L), generator=g)
    return ids, (torch.randn(B, M, MEM_DIM, generator=g) if memory else None)


def reference_greedy(decoder, ids, memory, n):
    """Greedy written out: re-run the whole sequence, append the argmax; no eot handling. -> (B, n)"""
    seq = ids
    for _ in range(n):
        seq = torch.cat([seq, decoder(seq, memory=memory)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[:, ids.shape[1]:]


def stop_at_eot(tokens, eot):
    """What generate must make of tokens (B, n): each row cut after its first eot, then pad; trimmed width."""
    hit = tokens == eot
    lengths = torch.where(hit.any(1), hit.int().argmax(1) + 1, tokens.shape[1])
    ids = tokens.masked_fill(torch.arange(tokens.shape[1]) >= lengths[:, None], PAD)
    return ids[:, :int(lengths.max())], lengths


def sequence_logprob(decoder, ids, out, memory):
    """log p(generated tokens | prompt) per row, counting each row's tokens up to its eot."""
    full = torch.cat([ids, out.ids], dim=1)
    logp = decoder(full, memory=memory).log_softmax(-1)[:, ids.shape[1] - 1:-1]
    token_logp = logp.gather(-1, out.ids[..., None])[..., 0]
    counted = torch.arange(out.ids.shape[1]) < out.lengths[:, None]
    return (token_logp * counted).sum(1)


def test_causal_later_tokens_never_change_earlier_logits():
    decoder = make()
    ids, memory = inputs()
    changed = ids.clone()
    changed[:, 4:] = (ids[:, 4:] + 7) % V
    before, after = decoder(ids, memory=memory), decoder(changed, memory=memory)
    torch.testing.assert_close(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:], atol=1e-3)
    assert before.shape == (3, 7, V)


def test_cache_fed_in_chunks_equals_one_causal_pass():
    """Chunks of several new tokens after cached ones need the bottom-right causal mask."""
    torch.manual_seed(0)
    model = Transformer(W, 2, 4, cross_dim=MEM_DIM).eval()
    x, ctx = torch.randn(2, 8, W), torch.randn(2, M, MEM_DIM)
    pad, ctx_pad = torch.zeros(2, 8, dtype=torch.bool), torch.zeros(2, M, dtype=torch.bool)
    pad[1, :2], ctx_pad[0, -2:] = True, True  # left padding in row 1, padded memory in row 0
    full = model(x, ctx, key_padding_mask=pad, is_causal=True, context_padding_mask=ctx_pad)
    cache, pieces = KVCache(), []
    for lo, hi in ((0, 3), (3, 6), (6, 7), (7, 8)):
        pieces.append(model(x[:, lo:hi], ctx, key_padding_mask=pad[:, :hi], is_causal=True,
                            context_padding_mask=ctx_pad, cache=cache))
        assert cache.length == hi
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert len(cache.kv) == 4  # self- and cross-attention of both blocks
    top_left = model(x[:, 3:6], ctx, is_causal=True, context_padding_mask=ctx_pad)  # no cache: sees no past
    assert not torch.allclose(top_left, full[:, 3:6], atol=1e-3)


SEARCHES = {"greedy": {}, "sample": dict(do_sample=True, temperature=0.8, top_k=20, top_p=0.9),
            "beam": dict(num_beams=3)}


@pytest.mark.parametrize("memory", [False, True])
@pytest.mark.parametrize("search", list(SEARCHES))
def test_cached_generation_equals_uncached(search, memory):
    decoder = make(memory)
    ids, mem = inputs(memory=memory)
    lengths = torch.tensor([7, 3, 5])
    outs = [decoder.generate(ids, lengths=lengths, memory=mem, max_new_tokens=12, use_cache=use_cache,
                             generator=torch.Generator().manual_seed(0), **SEARCHES[search])
            for use_cache in (True, False)]
    assert outs[0].ids.shape == (3, 12)
    torch.testing.assert_close(outs[0].ids, outs[1].ids, rtol=0, atol=0)
    torch.testing.assert_close(outs[0].lengths, outs[1].lengths, rtol=0, atol=0)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_batched_prompts_of_different_lengths_equal_one_at_a_time(search):
    decoder = make()
    ids, memory = inputs()
    lengths = torch.tensor([7, 3, 5])
    memory_padding_mask = torch.zeros(3, M, dtype=torch.bool)
    memory_padding_mask[1, -3:] = True
    kw = dict(max_new_tokens=10, **SEARCHES[search])
    batched = decoder.generate(ids, lengths=lengths, memory=memory, memory_padding_mask=memory_padding_mask, **kw)
    junk = ids.clone()
    junk[1, 3:], junk[2, 5:] = 4, 5  # whatever fills the padding is ignored
    again = decoder.generate(junk, lengths=lengths, memory=memory, memory_padding_mask=memory_padding_mask, **kw)
    torch.testing.assert_close(again.ids, batched.ids, rtol=0, atol=0)
    for b in range(3):
        one = decoder.generate(ids[b:b + 1, :lengths[b]], memory=memory[b:b + 1, ~memory_padding_mask[b]], **kw)
        n = int(one.lengths[0])
        assert int(batched.lengths[b]) == n
        torch.testing.assert_close(batched.ids[b, :n], one.ids[0, :n], rtol=0, atol=0)


def test_greedy_equals_the_written_out_loop_and_embeds_equal_ids():
    decoder = make()
    ids, memory = inputs()
    ref, ref_lengths = stop_at_eot(reference_greedy(decoder, ids, memory, 8), EOT)
    out = decoder.generate(ids, memory=memory, max_new_tokens=8)
    torch.testing.assert_close(out.ids, ref, rtol=0, atol=0)
    torch.testing.assert_close(out.lengths, ref_lengths, rtol=0, atol=0)
    embeds = decoder.embed(ids)
    torch.testing.assert_close(decoder(embeds=embeds, memory=memory), decoder(ids, memory=memory))
    out = decoder.generate(embeds=embeds, memory=memory, max_new_tokens=8)
    torch.testing.assert_close(out.ids, ref, rtol=0, atol=0)
    spliced = torch.cat([torch.randn(3, 2, W), embeds], dim=1)  # LLaVA: image features before the prompt
    assert decoder.generate(embeds=spliced, memory=memory, max_new_tokens=3).ids.shape == (3, 3)


def test_beam_search_with_one_beam_is_greedy():
    decoder = make()
    ids, memory = inputs()
    greedy = decoder.generate(ids, memory=memory, max_new_tokens=8)  # num_beams=1 takes the greedy loop
    prefix = decoder._start(ids, None, None, memory, None, 8, True)
    one_beam = decoder._beam_search(prefix, num_beams=1, max_new_tokens=8, length_penalty=1.0)
    torch.testing.assert_close(one_beam.ids, greedy.ids, rtol=0, atol=0)


@pytest.mark.parametrize("cut", [dict(top_p=1e-9), dict(top_k=1)])
def test_sampling_cut_to_one_token_is_greedy(cut):
    decoder = make()
    ids, memory = inputs()
    greedy = decoder.generate(ids, memory=memory, max_new_tokens=8)
    sampled = decoder.generate(ids, memory=memory, max_new_tokens=8, do_sample=True, temperature=1.7,
                               generator=torch.Generator().manual_seed(3), **cut)
    torch.testing.assert_close(sampled.ids, greedy.ids, rtol=0, atol=0)


def test_sampling_draws_only_from_top_k_and_the_nucleus():
    decoder = make(memory=False)
    ids = inputs(B=1, memory=False)[0].expand(400, -1)
    probs = decoder(ids[:1])[0, -1].softmax(-1)
    order = probs.argsort(descending=True)
    nucleus = order[: int((probs[order].cumsum(0) < 0.6).sum()) + 1]  # the fewest tokens reaching p = 0.6
    for kw, allowed in ((dict(top_k=3), order[:3]), (dict(top_p=0.6), nucleus)):
        first = decoder.generate(ids, max_new_tokens=1, do_sample=True, generator=torch.Generator().manual_seed(0),
                                 **kw).ids[:, 0]
        assert set(first.tolist()) == set(allowed.tolist())  # every allowed token drawn, nothing else
    g = lambda seed: torch.Generator().manual_seed(seed)
    draw = lambda seed: decoder.generate(ids[:4], max_new_tokens=6, do_sample=True, generator=g(seed)).ids
    assert torch.equal(draw(0), draw(0)) and not torch.equal(draw(0), draw(1))


def test_generation_stops_at_eot_and_pads_after_it():
    decoder = make()
    ids, memory = inputs()
    ref = reference_greedy(decoder, ids, memory, 10)
    decoder.eot_id = eot = int(ref[0, 2])  # a token that row 0 produces at step 2
    expected, lengths = stop_at_eot(ref, eot)
    assert lengths[0] <= 3 and lengths.tolist() != [10] * 3 and (expected == PAD).any()
    out = decoder.generate(ids, memory=memory, max_new_tokens=10)
    torch.testing.assert_close(out.ids, expected, rtol=0, atol=0)
    torch.testing.assert_close(out.lengths, lengths, rtol=0, atol=0)
    alone = decoder.generate(ids[:1], memory=memory[:1], max_new_tokens=10)
    assert alone.ids.shape == (1, lengths[0]) and alone.ids[0, -1] == eot  # the loop stops once all rows ended


def test_beam_search_finds_a_likelier_sequence_than_greedy():
    decoder = make()
    ids, memory = inputs(B=4)
    greedy = decoder.generate(ids, memory=memory, max_new_tokens=6)
    beam = decoder.generate(ids, memory=memory, max_new_tokens=6, num_beams=4, length_penalty=0.0)
    lp_greedy, lp_beam = (sequence_logprob(decoder, ids, o, memory) for o in (greedy, beam))
    assert (lp_beam >= lp_greedy - 1e-5).all()
    assert (lp_beam > lp_greedy + 1e-3).any()  # verified on this model: beam search does find better sequences


def test_cross_attention_sees_the_memory_and_the_mask_hides_padding():
    decoder = make()
    ids, memory = inputs()
    pad = torch.zeros(3, M, dtype=torch.bool)
    pad[:, -2:] = True
    other = memory.clone()
    other[:, -2:] = torch.randn(3, 2, MEM_DIM)  # changes only the padded memory tokens
    assert not torch.allclose(decoder(ids, memory=memory), decoder(ids, memory=other), atol=1e-3)
    torch.testing.assert_close(decoder(ids, memory=memory, memory_padding_mask=pad),
                               decoder(ids, memory=other, memory_padding_mask=pad))
    torch.testing.assert_close(decoder(ids, memory=memory, memory_padding_mask=pad),
                               decoder(ids, memory=memory[:, :-2]))


def test_lm_head_is_tied_by_default_and_untied_on_request():
    tied, untied = TextDecoder(V, CTX, W, 1, 4, eot_id=EOT, pad_id=PAD), make(memory=False, tie_embeddings=False)
    assert tied.lm_head.weight is tied.token_embedding.weight
    assert untied.lm_head.weight is not untied.token_embedding.weight
    n_params = lambda m: sum(p.numel() for p in m.parameters())
    assert n_params(untied) - n_params(make(memory=False)) == V * W
    ids = inputs(memory=False)[0]
    h = tied.ln_final(tied.transformer(tied.embed(ids) + tied.positional_embedding[:7], is_causal=True))
    torch.testing.assert_close(tied(ids), h @ tied.token_embedding.weight.T)


def test_generate_from_sot_alone_takes_the_batch_from_the_memory():
    decoder = make()
    memory = inputs()[1]
    out = decoder.generate(memory=memory, max_new_tokens=5)
    ref, _ = stop_at_eot(reference_greedy(decoder, torch.full((3, 1), SOT), memory, 5), EOT)
    torch.testing.assert_close(out.ids, ref, rtol=0, atol=0)


BAD = [
    (dict(ids=torch.randint(3, V, (1, CTX + 1))), r"prompt: 33 tokens exceed context_length=32"),
    (dict(ids=torch.randint(3, V, (1, 30)), max_new_tokens=5),
     r"prompt \(30 tokens\) \+ max_new_tokens \(5\) = 35 exceed context_length=32"),
    (dict(max_new_tokens=0), r"max_new_tokens: expected >= 1, got 0"),
    (dict(top_p=0.0, do_sample=True), r"top_p: expected in \(0, 1\], got 0.0"),
    (dict(top_p=1.5, do_sample=True), r"top_p: expected in \(0, 1\], got 1.5"),
    (dict(temperature=0.0, do_sample=True), r"temperature: expected > 0, got 0.0"),
    (dict(top_k=0, do_sample=True), r"top_k: expected >= 1 \(or None\), got 0"),
    (dict(num_beams=0), r"num_beams: expected >= 1, got 0"),
    (dict(num_beams=2, do_sample=True), r"num_beams=2 is beam search"),
    (dict(memory=torch.randn(3, M, 16)), r"memory: expected width memory_dim=24, got 16"),
    (dict(memory=None), r"memory: this decoder cross-attends to a memory \(B, M, 24\), got None"),
    (dict(lengths=torch.tensor([7, 0, 5])), r"lengths: expected values in \[1, 7\], got min 0, max 7"),
    (dict(ids=torch.full((3, 7), V)), r"ids: token ids must be in \[0, 50\), got min 50, max 50"),
]


@pytest.mark.parametrize("kw, match", BAD)
def test_generate_bad_input_raises_clear_error(kw, match):
    decoder = make()
    ids, memory = inputs()
    with pytest.raises(ValueError, match=match):
        decoder.generate(**{"ids": ids, "memory": memory, "max_new_tokens": 2, **kw})


def test_forward_bad_input_raises_clear_error():
    decoder, plain = make(), make(memory=False)
    ids, memory = inputs()
    with pytest.raises(ValueError, match="memory given to a decoder built without cross-attention"):
        plain(ids, memory=memory)
    with pytest.raises(ValueError, match=r"ids: 0 cached \+ 33 new positions exceed context_length=32"):
        plain(torch.randint(3, V, (1, 33)))
    with pytest.raises(ValueError, match="exactly one of ids"):
        plain(ids, embeds=plain.embed(ids))
    with pytest.raises(ValueError, match=r"embeds: expected shape \(B, L, 32\), got \(3, 7, 8\)"):
        plain(embeds=torch.randn(3, 7, 8))
    with pytest.raises(ValueError, match=r"memory: expected shape \(3, M, \?\), got \(2, 6, 24\)"):
        decoder(ids, memory=memory[:2])
    with pytest.raises(ValueError, match="generate needs a prompt"):
        TextDecoder(V, CTX, W, 1, 4, eot_id=EOT, pad_id=PAD).generate()
    with pytest.raises(ValueError, match=r"eot_id must be a token id in \[0, 50\), got 50"):
        TextDecoder(V, CTX, W, 1, 4, eot_id=V, pad_id=PAD)


@pytest.mark.parametrize("search", ["greedy", "sample"])
def test_streamer_sees_each_token_as_it_is_chosen(search):
    decoder = make(False)
    ids, _ = inputs(memory=False)
    lengths = torch.tensor([7, 3, 5])
    steps = []
    out = decoder.generate(ids, lengths=lengths, max_new_tokens=12, generator=torch.Generator().manual_seed(0),
                           streamer=lambda tokens: steps.append(tokens.clone()), **SEARCHES[search])
    assert len(steps) == out.ids.shape[1]
    torch.testing.assert_close(torch.stack(steps, dim=1), out.ids, rtol=0, atol=0)
    with pytest.raises(ValueError, match="beam search"):
        decoder.generate(ids, lengths=lengths, num_beams=2, streamer=print)
