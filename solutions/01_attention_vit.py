# %% [markdown]
# # 01 · Exercises: attention and the Vision Transformer
#
# Four small pieces of the chapter, each written by you and checked against the course's reference on random and
# edge-case inputs. Write the body of each function, run its cell, then run the `check` cell below it: it prints
# ✓ when your answer is right, or what was expected, what came out and a hint.
#
# (`solutions/` holds the worked answers; `exercises/` is generated from it with the answers removed.)

# %%
# Setup: on Colab, install the course's helper package only (Colab's torch, numpy, ipywidgets stay).
import sys

if "google.colab" in sys.modules:
    import subprocess

    url = "git+https://github.com/mmcourse/mmcourse@main"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"mmcourse @ {url}"], check=True)

# %%
import torch

from mmcourse.grading import check

# %% [markdown]
# ## 1. Scaled dot-product attention with a mask
#
# `q` is (B, H, Lq, d), `k` is (B, H, Lk, d), `v` is (B, H, Lk, dv). `mask` is None or a bool tensor
# broadcastable to (B, H, Lq, Lk) where **True means "may attend"** (the convention of
# `F.scaled_dot_product_attention`). Return the output (B, H, Lq, dv) and the attention weights (B, H, Lq, Lk).
# You may assume every query keeps at least one key.


# %%
def attention(q, k, v, mask=None):
    """softmax(q kᵀ / √d with masked scores set to −inf) v. Returns (output, weights)."""
    # BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights
    # END SOLUTION


# %%
check("01.attention", attention)

# %% [markdown]
# ## 2. Patchify
#
# Cut images (B, C, H, W) into non-overlapping p × p patches and flatten each: (B, N, C·p·p) with
# N = (H/p)·(W/p). Order the patches row by row (left to right, then top to bottom) and flatten each patch as
# (C, p, p), the same order as a conv's weight `(out, C, p, p)`, so that `patchify(x, p) @ conv.weight.flatten(1).T`
# equals the patch-embedding convolution.


# %%
def patchify(images, patch_size):
    """(B, C, H, W) -> (B, N, C·p·p)."""
    # BEGIN SOLUTION
    B, C, H, W = images.shape
    p = patch_size
    x = images.reshape(B, C, H // p, p, W // p, p)  # (B, C, rows, p, cols, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)
    # END SOLUTION


# %%
check("01.patchify", patchify)

# %% [markdown]
# ## 3. The causal mask
#
# A decoder's query i may attend to keys 0 … i only. Return a (length, length) **bool** mask, True where attending
# is allowed, created on `device` (so it sits next to the scores it masks — the study guide's snippets create such
# tensors on the CPU whatever the model's device).


# %%
def causal_mask(length, device=None):
    """(length, length) bool: True where query i may attend key j, i.e. j <= i."""
    # BEGIN SOLUTION
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()
    # END SOLUTION


# %%
check("01.causal_mask", causal_mask)

# %% [markdown]
# ## 4. Attention rollout
#
# Given each layer's attention weights (B, H, L, L), first layer first: average the heads, add the identity (the
# residual path), renormalise each row to sum to 1, and multiply the layers together, later layers on the left:
# R = Â_last ⋯ Â_1. Return R (B, L, L).


# %%
def attention_rollout(attentions):
    """[(B, H, L, L)] * layers -> (B, L, L)."""
    # BEGIN SOLUTION
    rollout = None
    for attn in attentions:
        a = attn.mean(dim=1) + torch.eye(attn.shape[-1], device=attn.device)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    return rollout
    # END SOLUTION


# %%
check("01.attention_rollout", attention_rollout)
