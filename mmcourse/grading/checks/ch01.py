"""Chapter 01 exercises: attention with masks, patchify, the causal mask, attention rollout."""

from __future__ import annotations

import torch

from mmcourse import nn as mnn
from mmcourse.grading.core import devices, expect_close, expect_equal, fail, register


# ---------------------------------------------------------------- 01.attention
def attention(q, k, v, mask=None):
    """Reference: softmax(q kᵀ / √d, masked where mask is False) v, and the weights."""
    return mnn.scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=True)


def _attn_no_scale(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


def _attn_softmax_wrong_dim(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    w = scores.softmax(-2)
    return w @ v, w


def _attn_mask_inverted(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    w = scores.softmax(-1)
    return w @ v, w


def _attn_ignores_mask(q, k, v, mask=None):
    w = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(-1)
    return w @ v, w


@register("01.attention", attention, [_attn_no_scale, _attn_softmax_wrong_dim, _attn_mask_inverted, _attn_ignores_mask])
def _test_attention(fn):
    g = torch.Generator().manual_seed(1)
    n = 0
    for device in devices():
        for B, H, Lq, Lk, d, masked in [(2, 3, 5, 7, 8, False), (1, 1, 4, 4, 16, False), (2, 2, 6, 6, 8, True),
                                        (3, 2, 4, 9, 4, True)]:
            q, k, v = (torch.randn(B, H, L, d, generator=g).to(device) for L in (Lq, Lk, Lk))
            q.requires_grad_(True)
            mask = None
            if masked:
                mask = torch.rand(B, 1, Lq, Lk, generator=g).to(device) > 0.3
                mask[..., 0] = True  # every query keeps at least one key
            case = f"q {tuple(q.shape)}, k {tuple(k.shape)}" + (", with a mask" if masked else "")
            got = fn(q, k, v, mask)
            if not (isinstance(got, tuple) and len(got) == 2):
                fail(f"{case}: return (output, weights)", "a tuple of 2 tensors", type(got).__name__)
            out, w = got
            ref_out, ref_w = attention(q, k, v, mask)
            expect_close(w, ref_w, f"{case}: weights", "softmax over the keys (last dim) of q·kᵀ/√d; "
                         "mask: False means 'may not attend' → −inf before the softmax")
            expect_close(out, ref_out, f"{case}: output", "output = weights @ v")
            if out.grad_fn is None:
                fail(f"{case}: no gradient flows from the output back to q", "out.grad_fn set", None,
                     "avoid .detach(), .item() or numpy in the computation")
            n += 2
    return n


# ---------------------------------------------------------------- 01.patchify
def patchify(images, patch_size):
    """Reference: (B, C, H, W) -> (B, N, C·p·p), patches row by row, each flattened (C, p, p)."""
    return mnn.patchify(images, patch_size)


def _patchify_channels_last(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // p) * (W // p), -1)


def _patchify_no_permute(images, patch_size):
    B, C, H, W = images.shape
    return images.reshape(B, (H // patch_size) * (W // patch_size), -1)


def _patchify_column_major(images, patch_size):
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 4, 2, 1, 3, 5)
    return x.reshape(B, (H // p) * (W // p), -1)


@register("01.patchify", patchify, [_patchify_channels_last, _patchify_no_permute, _patchify_column_major])
def _test_patchify(fn):
    g = torch.Generator().manual_seed(2)
    n = 0
    for B, C, H, W, p in [(2, 3, 8, 8, 4), (1, 3, 32, 32, 8), (2, 1, 6, 12, 3), (3, 2, 4, 4, 4)]:
        images = torch.randn(B, C, H, W, generator=g)
        expect_equal(fn(images, p), patchify(images, p), f"images {(B, C, H, W)}, patch {p}",
                     "patch n is row n // (W/p), column n % (W/p); flatten each patch as (C, p, p), like conv1.weight")
        n += 1
    conv = torch.nn.Conv2d(3, 5, 4, stride=4, bias=False)
    images = torch.randn(2, 3, 8, 12, generator=g)
    want = conv(images).flatten(2).transpose(1, 2)
    expect_close(fn(images, 4) @ conv.weight.flatten(1).T, want, "patchify(x) @ conv.weight.flatten(1).T vs conv(x)",
                 "a patch embedding is a Linear layer on your patches", atol=1e-5)
    return n + 1


# ---------------------------------------------------------------- 01.causal_mask
def causal_mask(length, device=None):
    """Reference: (length, length) bool, True where query i may attend key j (j <= i)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def _causal_future(length, device=None):
    return torch.ones(length, length, dtype=torch.bool, device=device).triu()


def _causal_strict(length, device=None):
    return torch.ones(length, length, dtype=torch.bool, device=device).tril(-1)


def _causal_float(length, device=None):
    return torch.ones(length, length, device=device).tril()


def _causal_cpu_only(length, device=None):
    return torch.ones(length, length, dtype=torch.bool).tril()


@register("01.causal_mask", causal_mask, [_causal_future, _causal_strict, _causal_float, _causal_cpu_only])
def _test_causal_mask(fn):
    n = 0
    for device in devices():
        for length in (1, 2, 5, 16):
            got = fn(length, device=device)
            want = causal_mask(length, device)
            if isinstance(got, torch.Tensor) and got.device.type != device.type:
                fail(f"length {length}: the mask is on the wrong device", device, got.device,
                     "create it with device=device so it lives next to the scores (a common tutorial mistake: "
                     "index tensors made on the CPU)")
            if isinstance(got, torch.Tensor) and got.dtype != torch.bool:
                fail(f"length {length}: expected a bool mask (True = may attend)", torch.bool, got.dtype)
            expect_equal(got, want, f"length {length}", "query i may look at keys 0..i, itself included")
            n += 1
    # The check can only tell a CPU-only mask apart on an accelerator; on a CPU-only machine also ask for "meta".
    got = fn(3, device=torch.device("meta"))
    if not isinstance(got, torch.Tensor) or got.device.type != "meta":
        fail("device='meta': the mask must be created on the device you are given",
             "meta", getattr(got, "device", got), "pass device=device to torch.ones / torch.tril")
    return n + 1


# ---------------------------------------------------------------- 01.attention_rollout
def attention_rollout(attentions):
    """Reference: per-layer weights [(B, H, L, L)] -> rollout (B, L, L)."""
    return mnn.attention_rollout(attentions)


def _rollout_variant(attentions, heads="mean", identity=True, renorm=True, last_on_left=True):
    """Rollout with one step done differently: the mutants below each change exactly one thing."""
    r = None
    for attn in attentions:
        a = attn.mean(1) if heads == "mean" else attn.amax(1)
        if identity:
            a = a + torch.eye(a.shape[-1])
        if renorm:
            a = a / a.sum(-1, keepdim=True)
        r = a if r is None else (a @ r if last_on_left else r @ a)
    return r


def _rollout_no_identity(attentions):
    return _rollout_variant(attentions, identity=False)


def _rollout_no_renorm(attentions):
    return _rollout_variant(attentions, renorm=False)


def _rollout_wrong_order(attentions):
    return _rollout_variant(attentions, last_on_left=False)


def _rollout_max_heads(attentions):
    return _rollout_variant(attentions, heads="max")


@register("01.attention_rollout", attention_rollout,
          [_rollout_no_identity, _rollout_no_renorm, _rollout_wrong_order, _rollout_max_heads])
def _test_rollout(fn):
    g = torch.Generator().manual_seed(3)
    n = 0
    for B, H, L, layers in [(2, 4, 5, 3), (1, 1, 3, 1), (1, 2, 7, 4)]:
        attns = [torch.randn(B, H, L, L, generator=g).softmax(-1) for _ in range(layers)]
        expect_close(fn(attns), attention_rollout(attns), f"{layers} layers of weights {(B, H, L, L)}",
                     "per layer: mean over heads, + identity, rows renormalised; then R = Â_l … Â_1 (last on the left)")
        n += 1
    return n
