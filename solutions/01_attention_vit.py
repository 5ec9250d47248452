# %% [markdown]
# # 01 · Exercises: attention and the Vision Transformer
#
# Four pieces of the chapter to **build** (attention, patchify, the causal mask, attention rollout), two snippets to
# **fix**, one **experiment** (beat the colour shortcut with an augmentation; about 20 s of training on a laptop)
# and three graded questions. Write the body of each function (or repair it), run its cell, then run the `check`
# cell below it: it prints ✓ when your answer is right, or what was expected, what came out and a hint.
#
# (`solutions/` holds the worked answers; `exercises/` is generated from it with the answers removed.)

# %%
# Setup: on Colab, install the course's helper package only (Colab's torch, numpy, ipywidgets stay).
import sys

if "google.colab" in sys.modules:
    import subprocess

    url = "git+https://github.com/mmcourse/mmcourse@v0.1.0"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"mmcourse @ {url}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise SystemExit(f"Could not install the course package from {url}:\n{pip.stderr[-1500:]}\n"
                         "Check that the runtime is connected to the internet, then run this cell again.")

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


# %% [markdown]
# ## 5. Fix: a block that is not pre-LN
#
# A snippet you will meet in tutorials calls this "the pre-LN transformer block" of the chapter. `ln_1`, `ln_2` are
# LayerNorms, `attn` maps (B, L, D) to (B, L, D) (self-attention), `mlp` is the block's MLP. Compare it with the
# block of the lecture (section 5), find what is wrong and fix it. The check compares with the course's
# `ResidualAttentionBlock` carrying the same weights.


# %%
def pre_ln_block(x, ln_1, attn, ln_2, mlp):
    """One pre-LN transformer block on x (B, L, D): attention sub-layer, then MLP sub-layer, each residual."""
    # BEGIN SOLUTION
    x = x + attn(ln_1(x))
    return x + mlp(ln_2(x))
    # BUGGY
    # x = ln_1(x + attn(x))
    # return ln_2(x + mlp(x))
    # END SOLUTION


# %%
check("01.pre_ln_block", pre_ln_block)

# %% [markdown]
# ## 6. Fix: examples that talk to each other
#
# Another snippet runs self-attention over a batch x of shape (B, L, D) — B examples of L tokens — with a layer
# built as `nn.MultiheadAttention(D, heads)`, its defaults unchanged. Nothing crashes, yet it is wrong. Fix the
# function (the layer `mha` is given as it is: do not rebuild it). The output must be (B, L, D), and changing one
# example must not change another's output.


# %%
def self_attend(x, mha):
    """Self-attention over the L tokens of each example of x (B, L, D); returns (B, L, D)."""
    # BEGIN SOLUTION
    seq_first = x.transpose(0, 1)  # the layer reads (L, B, D) unless built with batch_first=True
    return mha(seq_first, seq_first, seq_first, need_weights=False)[0].transpose(0, 1)
    # BUGGY
    # return mha(x, x, x, need_weights=False)[0]
    # END SOLUTION


# %%
check("01.self_attend", self_attend)

# %% [markdown]
# ## 7. Experiment: break the colour shortcut
#
# In the lecture the ViT named the shape of unseen colour–shape pairs poorly: colour had become evidence about
# shape. Here the shortcut is made as strong as it gets: in the experiment's training set every colour comes with
# one shape only (red, green and purple objects are always circles; orange, cyan and pink always squares; yellow and
# blue always triangles), so colour alone predicts the shape on every training image. Trained on that, the model is
# tested on the 16 other colour–shape pairs.
#
# Write an **augmentation** `augment(images, generator)` that changes each training image's colours at random, so
# that colour stops predicting shape, without moving any pixel (the shape is what must be learned). Rules the check
# enforces: same shape (B, 3, H, W), values in [0, 1], a new random change for each image, every random number
# drawn from `generator` (so a run repeats), and the object stays where it is: the pixels that stand out from the
# dark grey background (some channel above 0.4) stay the same.
#
# The check then trains the experiment's recipe with your augmentation — a small ViT (width 32, 2 layers, a
# convolutional stem) learns the shape of single objects from 8 000 training images, 300 steps of 64 — and
# measures its shape accuracy on 1 000 new images of the unseen pairs. The bar is 90 %. Training takes about 20 s
# on one CPU thread. (Without augmentation the recipe names almost no unseen pair right; try a random permutation
# of the RGB channels first and see whether it is enough.)


# %%
def augment(images, generator):
    """(B, 3, H, W) in [0, 1] -> the same images with their colours changed at random, one change per image."""
    # BEGIN SOLUTION
    background = images[:, :, :1, :1]  # the corner pixel
    distance = (images - background).amax(1, keepdim=True)  # how far each pixel stands out: (B, 1, H, W)
    coverage = distance / distance.amax((2, 3), keepdim=True).clamp_min(1e-6)  # 1 inside the object
    colour = torch.rand(len(images), 3, 1, 1, generator=generator).to(images.device)  # a new colour per image...
    colour = colour / colour.amax(1, keepdim=True)  # ...as bright as the world's colours
    return (background + coverage * (colour - background)).clamp(0, 1)
    # END SOLUTION


# %%
check("01.colour_shortcut", augment)

# %% [markdown]
# ## 8. Check yourself
#
# **Question 1.** How many tokens does the chapter's ViT feed its first transformer block for one 32 × 32 image
# cut into 4 × 4 patches? Answer with a number.

# %%
answer_tokens = 65  # SOLUTION

# %%
check("01.quiz_tokens", answer_tokens)

# %% [markdown]
# **Question 2.** Drop the positional embedding from a ViT (conv patch embedding, CLS token, transformer, head on
# the CLS token). Shuffle the patches of an image. What happens to the prediction?
#
# - (a) it changes a lot: the shape is spread over several patches
# - (b) it changes a little: attention weights depend on where a key sits in the sequence
# - (c) it stays exactly the same
# - (d) the model raises an error: the patch order no longer matches the weights

# %%
answer_no_positions = "c"  # SOLUTION

# %%
check("01.quiz_no_positions", answer_no_positions)

# %% [markdown]
# **Question 3.** In a post-LN block (x = LN(x + attn(x)); x = LN(x + mlp(x))), what does the gradient from the
# loss meet on its way down the residual path to the first layer that it does not meet in a pre-LN block?
#
# - (a) nothing: both layouts have the same residual path
# - (b) a LayerNorm after every sub-layer
# - (c) a softmax
# - (d) the MLP's activation function

# %%
answer_post_ln = "b"  # SOLUTION

# %%
check("01.quiz_post_ln", answer_post_ln)
