"""Pre-LN blocks and the Transformer stack against hand-written and torch references (seed bugs #7, #8)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.nn import MLP, QuickGELU, ResidualAttentionBlock, Transformer, TransformerOutput

B, L, LC, W, HEADS = 3, 6, 4, 16, 4


def ref_attention(x, ctx, attn, pad=None, causal=False):
    """Multi-head attention written out with plain tensor ops, from our module's weights."""
    if attn.kv_dim is None:
        q, k, v = F.linear(x, attn.qkv.weight, attn.qkv.bias).chunk(3, -1)
    else:
        q = F.linear(x, attn.q.weight, attn.q.bias)
        k, v = F.linear(ctx, attn.kv.weight, attn.kv.bias).chunk(2, -1)
    split = lambda t: t.reshape(t.shape[0], t.shape[1], HEADS, -1).permute(0, 2, 1, 3)
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if pad is not None:
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
    if causal:
        future = torch.ones(x.shape[1], k.shape[2], dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    out = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(x.shape)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


def ref_block(x, block, ctx=None, pad=None, causal=False, act=F.gelu):
    """x + attn(LN(x)); x + cross(LN(x), ctx); x + MLP(LN(x)): the pre-LN block by hand."""
    ln = lambda t, m: F.layer_norm(t, (W,), m.weight, m.bias, m.eps)
    x = x + ref_attention(ln(x, block.ln_1), None, block.attn, pad, causal)
    if ctx is not None:
        x = x + ref_attention(ln(x, block.ln_cross), ctx, block.cross_attn)
    h = act(F.linear(ln(x, block.ln_2), block.mlp.c_fc.weight, block.mlp.c_fc.bias))
    return x + F.linear(h, block.mlp.c_proj.weight, block.mlp.c_proj.bias)


def randomise(module):
    """Random LayerNorm affine parameters too, so that a swapped LayerNorm cannot go unnoticed."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3 + (1.0 if p.ndim == 1 and p.shape[0] == W else 0.0))
    return module.eval()


@pytest.mark.parametrize("act", ["gelu", "quick_gelu"])
@pytest.mark.parametrize("cross", [False, True])
def test_block_equals_hand_written_pre_ln(act, cross):
    block = ResidualAttentionBlock(W, HEADS, mlp_ratio=2.5, act=act, cross_dim=10 if cross else None)
    block = randomise(block)
    x, ctx = torch.randn(B, L, W), (torch.randn(B, LC, 10) if cross else None)
    pad = torch.zeros(B, L, dtype=torch.bool)
    pad[0, -2:] = True
    ref_act = F.gelu if act == "gelu" else (lambda t: t * torch.sigmoid(1.702 * t))
    assert block.mlp.c_fc.out_features == 40  # mlp_ratio 2.5
    for kw in ({}, {"key_padding_mask": pad}, {"is_causal": True}):
        ref = ref_block(x, block, ctx, kw.get("key_padding_mask"), kw.get("is_causal", False), ref_act)
        torch.testing.assert_close(block(x, ctx, **kw), ref, atol=1e-5, rtol=1e-5)


def test_block_without_context_skips_cross_attention():
    block = randomise(ResidualAttentionBlock(W, HEADS, cross_dim=10))
    x = torch.randn(B, L, W)
    torch.testing.assert_close(block(x), ref_block(x, block), atol=1e-5, rtol=1e-5)


def torch_layer(block, **kw):
    """nn.TransformerEncoderLayer carrying our block's weights."""
    layer = nn.TransformerEncoderLayer(W, HEADS, **kw).eval()
    sd = block.state_dict()
    keys = {"self_attn.in_proj_": "attn.qkv.", "self_attn.out_proj.": "attn.out_proj.",
            "linear1.": "mlp.c_fc.", "linear2.": "mlp.c_proj.", "norm1.": "ln_1.", "norm2.": "ln_2."}
    layer.load_state_dict({k + p: sd[v + p] for k, v in keys.items() for p in ("weight", "bias")})
    return layer


def test_seed_bug_7_encoder_layer_defaults_are_not_our_block():
    block = randomise(ResidualAttentionBlock(W, HEADS))
    x = torch.randn(B, L, W)
    right = torch_layer(block, dim_feedforward=4 * W, dropout=0.0, activation="gelu", norm_first=True,
                        batch_first=True)
    torch.testing.assert_close(right(x), block(x), atol=1e-5, rtol=1e-5)
    post_ln = torch_layer(block, dim_feedforward=4 * W, dropout=0.0, activation="gelu", batch_first=True)
    assert not torch.allclose(post_ln(x), block(x), atol=1e-3)
    defaults = nn.TransformerEncoderLayer(W, HEADS, batch_first=True)
    assert defaults.linear1.out_features == 2048 and defaults.dropout.p == 0.1 and not defaults.norm_first


def test_post_ln_block_equals_torch_post_ln_layer_and_default_stays_pre_ln():
    post = randomise(ResidualAttentionBlock(W, HEADS, norm_first=False))
    x = torch.randn(B, L, W)
    ref = torch_layer(post, dim_feedforward=4 * W, dropout=0.0, activation="gelu", norm_first=False, batch_first=True)
    torch.testing.assert_close(post(x), ref(x), atol=1e-5, rtol=1e-5)
    pre = ResidualAttentionBlock(W, HEADS).eval()
    pre.load_state_dict(post.state_dict())  # same parameters, same names
    assert pre.norm_first and not torch.allclose(pre(x), post(x), atol=1e-3)
    torch.testing.assert_close(pre(x), ref_block(x, pre), atol=1e-5, rtol=1e-5)
    stack = Transformer(W, 2, HEADS, norm_first=False, cross_dim=10).eval()
    assert all(not b.norm_first for b in stack.resblocks)
    ctx = torch.randn(B, LC, 10)
    out, attn, cross = stack.resblocks[0](x, ctx, return_weights=True)
    assert out.shape == x.shape and cross.shape == (B, HEADS, L, LC)
    torch.testing.assert_close(out.std(-1), torch.ones(B, L), atol=0.05, rtol=0)  # ends in a LayerNorm


def test_seed_bug_8_without_batch_first_samples_leak_into_each_other():
    block = randomise(ResidualAttentionBlock(W, HEADS))
    seq_first = torch_layer(block, dim_feedforward=4 * W, dropout=0.0, activation="gelu", norm_first=True)
    x = torch.randn(B, L, W)
    x2 = x.clone()
    x2[1] = torch.randn(L, W)  # change sample 1 only
    assert torch.allclose(block(x)[0], block(x2)[0])  # ours: sample 0 unaffected
    assert not torch.allclose(seq_first(x)[0], seq_first(x2)[0])  # (B, L, D) read as (L, B, D): leaks


def test_quick_gelu_and_mlp():
    t = torch.linspace(-4, 4, 50)
    torch.testing.assert_close(QuickGELU()(t), t / (1 + torch.exp(-1.702 * t)))
    assert (QuickGELU()(t) - F.gelu(t)).abs().max() < 0.03  # close to GELU, not equal
    with pytest.raises(ValueError, match=r"act: expected one of \['gelu', 'quick_gelu'\], got 'relu'"):
        MLP(W, act="relu")


def test_transformer_returns_every_layer():
    torch.manual_seed(0)
    model = Transformer(W, 3, HEADS, cross_dim=10).eval()
    x, ctx = torch.randn(B, L, W), torch.randn(B, LC, 10)
    plain = model(x, ctx, is_causal=True)
    out = model(x, ctx, is_causal=True, return_attn=True, return_hidden=True)
    assert isinstance(out, TransformerOutput)
    torch.testing.assert_close(out.x, plain)
    assert len(out.hidden_states) == 4 and out.hidden_states[0] is x
    for i, block in enumerate(model.resblocks):
        h, a, c = block(out.hidden_states[i], ctx, is_causal=True, return_weights=True)
        torch.testing.assert_close(out.hidden_states[i + 1], h)
        torch.testing.assert_close(out.attentions[i], a)
        torch.testing.assert_close(out.cross_attentions[i], c)
    assert out.attentions[0].shape == (B, HEADS, L, L) and out.cross_attentions[0].shape == (B, HEADS, L, LC)
    only_hidden = model(x, ctx, return_hidden=True)
    assert only_hidden.attentions is None and only_hidden.cross_attentions is None
    assert model(x, return_attn=True).cross_attentions == (None, None, None)


def test_causal_and_padding_hide_what_they_should():
    torch.manual_seed(0)
    model = Transformer(W, 2, HEADS).eval()
    x = torch.randn(B, L, W)
    changed = x.clone()
    changed[:, -2:] = torch.randn(B, 2, W)  # change the last two tokens
    causal = model(x, is_causal=True), model(changed, is_causal=True)
    torch.testing.assert_close(causal[0][:, :-2], causal[1][:, :-2])  # earlier tokens cannot see them
    pad = torch.zeros(B, L, dtype=torch.bool)
    pad[:, -2:] = True
    padded = model(x, key_padding_mask=pad), model(changed, key_padding_mask=pad)
    torch.testing.assert_close(padded[0][:, :-2], padded[1][:, :-2])
    assert not torch.allclose(model(x)[:, :-2], model(changed)[:, :-2])  # unmasked: they matter


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = Transformer(W, 2, HEADS, dropout=0.3)
    x = torch.randn(B, L, W)
    assert not torch.allclose(model(x), model(x))
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_transformer_bad_input():
    model = Transformer(W, 1, HEADS)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, L, 16\), got \(3, 6, 8\)"):
        model(torch.randn(B, L, 8))
    with pytest.raises(ValueError, match="without cross-attention"):
        model(torch.randn(B, L, W), torch.randn(B, LC, W))
    with pytest.raises(ValueError, match="divisible"):
        Transformer(W, 1, 5)
