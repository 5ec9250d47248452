"""mmcourse.nn.attention against torch: F.scaled_dot_product_attention and nn.MultiheadAttention."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.nn import MultiheadAttention, fast_attention, merge_masks, scaled_dot_product_attention

B, H, LQ, LK, D = 2, 3, 5, 7, 8
ATOL = 1e-5


def qkv(lq=LQ, lk=LK, requires_grad=False):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(B, H, n, D, generator=g, requires_grad=requires_grad) for n in (lq, lk, lk)]


def padding(lk=LK):
    """Key padding (True = padding): sample 0 has 2 padded keys, sample 1 none."""
    pad = torch.zeros(B, lk, dtype=torch.bool)
    pad[0, -2:] = True
    return pad


def mask_cases(lq, lk):
    """(our kwargs, equivalent F.sdpa kwargs) for every kind of mask."""
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(B, H, lq, lk, generator=g) > 0.3
    keep[..., 0] = True  # no fully-masked rows here (those are tested separately)
    bias = torch.randn(B, 1, lq, lk, generator=g)
    causal = torch.ones(lq, lk, dtype=torch.bool).tril()
    pad = padding(lk)
    return {
        "none": ({}, {}),
        "bool (B,H,Lq,Lk)": ({"attn_mask": keep}, {"attn_mask": keep}),
        "bool (Lq,Lk)": ({"attn_mask": keep[0, 0]}, {"attn_mask": keep[0, 0]}),
        "float (B,1,Lq,Lk)": ({"attn_mask": bias}, {"attn_mask": bias}),
        "causal": ({"is_causal": True}, {"is_causal": True}),
        "key padding": ({"key_padding_mask": pad}, {"attn_mask": ~pad[:, None, None, :]}),
        "causal + padding": ({"is_causal": True, "key_padding_mask": pad},
                             {"attn_mask": causal & ~pad[:, None, None, :]}),
        "float + bool padding": ({"attn_mask": bias, "key_padding_mask": pad},
                                 {"attn_mask": bias.masked_fill(pad[:, None, None, :], float("-inf"))}),
    }


@pytest.mark.parametrize("lq,lk", [(LQ, LK), (LK, LK)])
@pytest.mark.parametrize("case", list(mask_cases(LQ, LK)))
def test_functional_equals_sdpa(case, lq, lk):
    ours_kw, ref_kw = mask_cases(lq, lk)[case]
    q, k, v = qkv(lq, lk, requires_grad=True)
    ref = F.scaled_dot_product_attention(q, k, v, **ref_kw)
    out, weights = scaled_dot_product_attention(q, k, v, **ours_kw, return_weights=True)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(fast_attention(q, k, v, **ours_kw), ref, atol=ATOL, rtol=0)
    assert weights.shape == (B, H, lq, lk)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, lq))
    (grad_ref,) = torch.autograd.grad(ref.square().sum(), q)
    (grad_ours,) = torch.autograd.grad(out.square().sum(), q)
    torch.testing.assert_close(grad_ours, grad_ref, atol=ATOL, rtol=0)


def test_masked_keys_get_zero_weight():
    q, k, v = qkv()
    pad = padding()
    kw = dict(is_causal=True, key_padding_mask=pad, return_weights=True)
    _, weights = scaled_dot_product_attention(q, k, v, **kw)
    assert (weights[0, ..., -2:] == 0).all()
    assert (weights.triu(diagonal=1) == 0).all()


@pytest.mark.parametrize("attention", [scaled_dot_product_attention, fast_attention])
def test_fully_masked_rows_give_zeros_not_nan(attention):
    q, k, v = qkv(requires_grad=True)
    keep = torch.ones(LQ, LK, dtype=torch.bool)
    keep[1] = False  # query 1 may attend nothing
    out = attention(q, k, v, attn_mask=keep)
    assert torch.isfinite(out).all()
    assert (out[:, :, 1] == 0).all()
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # other rows are untouched
    torch.testing.assert_close(out[:, :, [0, 2, 3, 4]], ref[:, :, [0, 2, 3, 4]], atol=ATOL, rtol=0)
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and (q.grad[:, :, 1] == 0).all()


def test_causal_with_every_key_padded_is_finite():
    """Left padding + causal: the first query of sample 0 sees only padding."""
    q, k, v = qkv(LK, LK)
    pad = torch.zeros(B, LK, dtype=torch.bool)
    pad[0, :2] = True
    kw = dict(is_causal=True, key_padding_mask=pad, return_weights=True)
    out, weights = scaled_dot_product_attention(q, k, v, **kw)
    assert torch.isfinite(out).all() and (weights[0, :, :2] == 0).all() and (out[0, :, :2] == 0).all()


def test_merge_masks_is_additive_float():
    q, k, _ = qkv()
    mask = merge_masks(torch.ones(LQ, LK, dtype=torch.bool).triu(), padding(), True, q, k)
    assert mask.dtype == q.dtype and mask.shape == (B, 1, LQ, LK)
    assert set(mask.unique().tolist()) == {0.0, float("-inf")}
    assert merge_masks(None, None, False, q, k) is None


def port_from_torch(ref: nn.MultiheadAttention, ours: MultiheadAttention) -> None:
    """The key map a CLIP port needs: in_proj -> qkv (self) or q + kv (cross), out_proj -> out_proj."""
    D = ref.embed_dim
    with torch.no_grad():
        if ours.kv_dim is None:
            ours.qkv.weight.copy_(ref.in_proj_weight)
            ours.qkv.bias.copy_(ref.in_proj_bias)
        else:
            w_q, w_kv = ((ref.in_proj_weight[:D], ref.in_proj_weight[D:]) if ref._qkv_same_embed_dim
                         else (ref.q_proj_weight, torch.cat([ref.k_proj_weight, ref.v_proj_weight])))
            ours.q.weight.copy_(w_q)
            ours.kv.weight.copy_(w_kv)
            ours.q.bias.copy_(ref.in_proj_bias[:D])
            ours.kv.bias.copy_(ref.in_proj_bias[D:])
        ours.out_proj.load_state_dict(ref.out_proj.state_dict())


@pytest.mark.parametrize("case", ["self", "self + padding", "causal", "cross same dim", "cross other dim"])
def test_module_equals_nn_multihead_attention(case):
    torch.manual_seed(0)
    dim, heads, kv_dim = 12, 3, (20 if case == "cross other dim" else 12)
    cross = case.startswith("cross")
    ref = nn.MultiheadAttention(dim, heads, batch_first=True, kdim=kv_dim, vdim=kv_dim).eval()
    ours = MultiheadAttention(dim, heads, kv_dim=kv_dim if cross else None).eval()
    port_from_torch(ref, ours)
    x = torch.randn(B, LK, dim)
    ctx = torch.randn(B, LQ, kv_dim) if cross else x
    pad = padding(ctx.shape[1]) if case != "causal" else None
    # nn.MultiheadAttention's bool attn_mask is True = masked out (the opposite of F.sdpa's and ours)
    causal = torch.ones(LK, LK, dtype=torch.bool).triu(1) if case == "causal" else None
    ref_out, ref_w = ref(x, ctx, ctx, key_padding_mask=pad, attn_mask=causal, average_attn_weights=False)
    kw = dict(key_padding_mask=pad, is_causal=case == "causal")
    out, weights = ours(x, ctx if cross else None, **kw, return_weights=True)
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=0)
    torch.testing.assert_close(weights, ref_w, atol=ATOL, rtol=0)
    _, ref_mean = ref(x, ctx, ctx, key_padding_mask=pad, attn_mask=causal)  # averaged over heads
    torch.testing.assert_close(weights.mean(1), ref_mean, atol=ATOL, rtol=0)
    fast_out, no_weights = ours(x, ctx if cross else None, **kw)
    assert no_weights is None
    torch.testing.assert_close(fast_out, ref_out, atol=ATOL, rtol=0)


def test_module_dropout_only_in_training():
    attn = MultiheadAttention(8, 2, dropout=0.5)
    x = torch.randn(B, LK, 8)
    torch.manual_seed(0)
    train_out = attn(x)[0]
    attn.eval()
    eval_out, eval_weights_out = attn(x)[0], attn(x, return_weights=True)[0]
    assert not torch.allclose(train_out, eval_out)
    torch.testing.assert_close(eval_out, eval_weights_out, atol=ATOL, rtol=0)


def test_masks_are_built_on_the_inputs_device():
    """On the meta device any mask made on the CPU by mistake would fail to combine."""
    q, k, v = (t.to("meta") for t in qkv())
    pad = padding().to("meta")
    keep = torch.ones(LQ, LK, dtype=torch.bool, device="meta")
    assert merge_masks(keep, pad, True, q, k).device.type == "meta"
    attn = MultiheadAttention(D, 2).to("meta")
    out, weights = attn(torch.randn(B, LQ, D, device="meta"), key_padding_mask=padding(LQ).to("meta"),
                        is_causal=True, return_weights=True)
    assert out.device.type == weights.device.type == "meta"


@pytest.mark.parametrize("make, match", [
    (lambda: MultiheadAttention(10, 3), r"dim=10, n_heads=3"),
    (lambda: MultiheadAttention(8, 2)(torch.randn(B, LQ, 6)),
     r"x: expected shape \(B, Lq, 8\), got \(2, 5, 6\)"),
    (lambda: MultiheadAttention(8, 2)(torch.randn(B, LQ, 8), torch.randn(B, LK, 8)), "self-attention"),
    (lambda: MultiheadAttention(8, 2, kv_dim=4)(torch.randn(B, LQ, 8)), r"needs context \(B, Lk, 4\)"),
    (lambda: MultiheadAttention(8, 2, kv_dim=4)(torch.randn(B, LQ, 8), torch.randn(B, LK, 8)),
     r"context: expected shape \(2, Lk, 4\), got \(2, 7, 8\)"),
    (lambda: MultiheadAttention(8, 2)(torch.randn(B, LQ, 8), key_padding_mask=torch.zeros(B, LK, dtype=bool)),
     r"key_padding_mask: expected shape \(2, 5\), got \(2, 7\)"),
    (lambda: MultiheadAttention(8, 2)(torch.randn(B, LQ, 8), key_padding_mask=torch.zeros(B, LQ)),
     "key_padding_mask: expected dtype torch.bool"),
    (lambda: scaled_dot_product_attention(*qkv(), attn_mask=torch.ones(LK, LQ, dtype=bool)),
     r"attn_mask: expected a shape broadcastable to \(B, H, Lq, Lk\) = \(2, 3, 5, 7\), got \(7, 5\)"),
    (lambda: fast_attention(*qkv(), attn_mask=torch.ones(LQ, LK, dtype=torch.int64)), "bool or float"),
    (lambda: scaled_dot_product_attention(*qkv()[:2], torch.randn(B, H, LQ, D)),
     r"v: expected shape \(2, 3, 7, dv\), got \(2, 3, 5, 8\)"),
    (lambda: fast_attention(torch.randn(B, LQ, D), *qkv()[1:]), r"q: expected shape \(B, H, Lq, d\)"),
])
def test_bad_input_raises_clear_error(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
