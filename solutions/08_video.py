# %% [markdown]
# # 08 · Exercises: video tokens
#
# Vector quantization to build, the study guide's quantization layer to fix, a codebook size and a dead-code reset to
# choose for a perplexity bar, and questions on the chapter — each checked against the course's reference. Write the
# body of each function (or your answer), run its cell, then run the `check` cell below it: it prints ✓ when your
# answer is right, or what was expected, what came out and a hint.
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
import torch.nn.functional as F

from mmcourse.grading import check

# %% [markdown]
# ## 1. Vector quantization
#
# `z` (N, D) holds N encoder outputs, `codebook` (K, D) the K codes (a learnable tensor: it requires grad). Return
# `(quantized, codes, loss)`, as in VQ-VAE (van den Oord et al., 2017):
#
# - `codes` (N,): for each row of `z`, the index of its nearest code (smallest squared Euclidean distance);
# - `quantized` (N, D): the chosen codes e, passed **straight through**: `z + (e - z).detach()` has the value of e
#   and the gradient of z, so the decoder's gradient reaches the encoder as if quantization were the identity;
# - `loss`: the codebook term plus `beta` times the commitment term,
#   `mse(e, z.detach()) + beta * mse(z, e.detach())`. The first moves the codes towards the vectors that chose
#   them; the second keeps z close to its code.
#
# The check compares the codes, the values and the loss, and then the gradients: through `quantized`, z must receive
# the decoder's gradient unchanged and the codebook nothing; through `loss`, the codebook must receive the codebook
# term's gradient and z the commitment term's.


# %%
def quantize(z, codebook, beta):
    """z (N, D), codebook (K, D) -> quantized (N, D), codes (N,) int64, loss (a scalar)."""
    # BEGIN SOLUTION
    d = (z.detach()[:, None, :] - codebook.detach()[None]).pow(2).sum(-1)  # (N, K) squared distances
    codes = d.argmin(1)
    e = codebook[codes]  # (N, D), with the codebook's gradient
    loss = F.mse_loss(e, z.detach()) + beta * F.mse_loss(z, e.detach())
    return z + (e - z).detach(), codes, loss
    # END SOLUTION


# %%
check("08.quantize", quantize)

# %% [markdown]
# ## 2. Fix the study guide's quantization layer
#
# A video encoder returns channels-first features `z` (B, D, T, H, W): a D-vector at each of the T × H × W
# positions of each clip. The layer below, condensed from the study guide, is meant to return `quantized`
# (B, D, T, H, W), one code per position `codes` (B, T, H, W), and the VQ-VAE loss. It runs, and its shapes are
# right — but it has two bugs. One is in how it turns `z` into rows of D numbers (look at which numbers
# `z.view(-1, D)` puts in one row when the channels come second); the other is in its loss (which parameters does
# it train?). Fix both: a row must be one position's D-vector, the loss must have both terms, and `quantized` must
# come back channels-first with each position's code in its place.


# %%
def vq_layer(z, codebook, beta):
    """z (B, D, T, H, W), codebook (K, D) -> quantized (B, D, T, H, W), codes (B, T, H, W) int64, loss."""
    # BEGIN SOLUTION
    z_last = z.movedim(1, -1)  # (B, T, H, W, D): each position's D-vector together
    flat = z_last.reshape(-1, z.shape[1])  # (B·T·H·W, D), one row per position
    d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
    codes = d.argmin(1)
    e = codebook[codes].view(z_last.shape)
    loss = F.mse_loss(e, z_last.detach()) + beta * F.mse_loss(z_last, e.detach())
    quantized = z_last + (e - z_last).detach()
    return quantized.movedim(-1, 1), codes.view(z_last.shape[:-1]), loss
    # BUGGY
    # B, D = z.shape[:2]
    # flat = z.view(-1, D)  # one row per position
    # d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
    # codes = d.argmin(1)
    # e = codebook[codes]
    # loss = F.mse_loss(flat, e.detach())
    # quantized = flat + (e - flat).detach()
    # return quantized.view(z.shape), codes.view(B, *z.shape[2:]), loss
    # END SOLUTION


# %%
check("08.vq_layer", vq_layer)

# %% [markdown]
# What the two ways of flattening put in a row, on features whose value names its place: channel c at frame t and
# pixel p holds 100·c + 10·t + p (one clip, 3 channels, 2 frames of 1 × 2 pixels):

# %%
c, t, p = torch.meshgrid(torch.arange(3), torch.arange(2), torch.arange(2), indexing="ij")
z = (100 * c + 10 * t + p).view(1, 3, 2, 1, 2).float()  # (B, D, T, H, W)
print("z.view(-1, D):\n", z.view(-1, 3).long())
print("z.movedim(1, -1).reshape(-1, D):\n", z.movedim(1, -1).reshape(-1, 3).long())

# %% [markdown]
# ## 3. Experiment: dead codes
#
# A codebook starts with its K codes drawn within 1/K of the origin. Feed it points of 48 well-separated Gaussian
# clusters in 8-D that all lie some way from the origin, and a few codes win every point at the first step; they
# move towards the data, and the other codes, never chosen, never receive a gradient: they are *dead*. A reset
# repairs this: `VectorQuantizer(..., reset_threshold=r)` keeps each code's running share of the assignments (an
# unused code's share shrinks by 1 % a step) and, once it falls below r / K, replaces that code by a vector of the
# batch, drawn with probability proportional to its squared distance from its code (as k-means++ seeds its
# centres): new codes go where the codebook fits the data worst.
#
# `run_reset(num_codes, beta, reset_threshold)` trains a bare `VectorQuantizer(num_codes, 8, beta,
# reset_threshold=...)` — a learnable codebook, no encoder, trained on its own loss — for 400 steps on the clusters
# (under a second), then returns the **perplexity** of the codes of held-out points, exp(entropy of the code
# shares): the number of codes in effective use. (With no encoder, `beta` weighs a term whose gradient has nowhere
# to go here: it changes nothing in this experiment.) Try a few settings, then return ones for which the
# **perplexity is ≥ 40**, with **at most 64 codes**.

# %%
from mmcourse.grading.checks.ch08 import run_reset  # noqa: E402

for threshold in (None,):
    print(f"64 codes, reset_threshold {threshold}:", run_reset(64, 0.25, threshold))


# %%
def my_reset_settings():
    """-> {"num_codes": int ≤ 64, "beta": float, "reset_threshold": float or None} that reach the bar above."""
    # BEGIN SOLUTION
    return {"num_codes": 64, "beta": 0.25, "reset_threshold": 0.1}
    # END SOLUTION


# %%
check("08.reset_settings", my_reset_settings)

# %% [markdown]
# ## 4. Check yourself
#
# **Q1.** In the VQ-VAE loss mse(e, sg[z]) + β · mse(z, sg[e]) (sg: stop-gradient, `.detach()`), what does the
# commitment term β · mse(z, sg[e]) prevent?
# (a) the codes drifting away from the encoder's outputs · (b) the encoder's outputs drifting away from the codes,
# growing without bound · (c) two codes becoming identical · (d) the decoder ignoring the quantized vectors

# %%
answer_commitment = "b"  # SOLUTION

# %%
check("08.quiz_commitment", answer_commitment)

# %% [markdown]
# **Q2.** argmin has no useful gradient. Why can the encoder still be trained through the quantizer?
# (a) argmin is replaced by a softmax over the distances in the backward pass · (b) the codebook term's gradient
# reaches the encoder · (c) the decoder's gradient at the quantized vector is copied to the encoder's output, as if
# quantization were the identity · (d) the encoder is trained by the commitment term alone

# %%
answer_straight_through = "c"  # SOLUTION

# %%
check("08.quiz_straight_through", answer_straight_through)

# %% [markdown]
# **Q3.** A codebook's codes are used with shares 1/2, 1/4 and 1/4 (the rest never). What is its perplexity exp(H)?
# (2 decimals)

# %%
answer_perplexity_shares = 2.83  # SOLUTION

# %%
check("08.quiz_perplexity_shares", answer_perplexity_shares)

# %% [markdown]
# **Q4.** A codebook of 512 codes: 32 of them are used equally often, the other 480 never. What is its perplexity?

# %%
answer_perplexity_dead = 32  # SOLUTION

# %%
check("08.quiz_perplexity_dead", answer_perplexity_dead)
