# %% [markdown]
# # 09 · Exercises: fusion and missing modalities
#
# Two fusions to build, a late fusion from a tutorial to fix, a modality-dropout rate to choose for a
# missing-modality bar, and questions on the chapter — each checked against the course's reference. Write the body
# of each function (or your answer), run its cell, then run the `check` cell below it: it prints ✓ when your answer
# is right, or what was expected, what came out and a hint.
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
import math

import torch

from mmcourse.grading import check

# %% [markdown]
# ## 1. Tensor fusion
#
# `za` (B, Da) and `zb` (B, Db) are the two modalities' pooled, projected features. Return the tensor-fusion vector
# of each example, (B, (Da + 1) · (Db + 1)): append a 1 to each vector, take the outer product [za; 1] ⊗ [zb; 1]
# (rows indexed by za's entries, columns by zb's) and flatten it row by row. The 1s keep za and zb themselves in the
# result beside every product za_i · zb_j.


# %%
def tensor_fusion(za, zb):
    """(B, Da), (B, Db) -> (B, (Da + 1) * (Db + 1))."""
    raise NotImplementedError("exercise: write the body of `tensor_fusion`")


# %%
check("09.tensor_fusion", tensor_fusion)

# %% [markdown]
# ## 2. Cross-attention fusion, one head
#
# `a` (B, La, D) are the tokens of the modality that asks (the sound), `b` (B, Lb, D) those of the modality that
# answers (the image); `w_q`, `w_k`, `w_v` (D, d) are projection matrices. Compute q = a w_q, k = b w_k, v = b w_v,
# the weights softmax(q kᵀ / √d) over b's tokens (B, La, Lb), the attended tokens weights · v (B, La, d), and return
# `(fused, weights)` with `fused` (B, d) the mean of the attended tokens over a's tokens.


# %%
def cross_attention_fusion(a, b, w_q, w_k, w_v):
    """-> (fused (B, d), weights (B, La, Lb))."""
    raise NotImplementedError("exercise: write the body of `cross_attention_fusion`")


# %%
check("09.cross_attention_fusion", cross_attention_fusion)

# %% [markdown]
# ## 3. Fix a late fusion
#
# Two classifiers were trained apart: the image classifier's logits (B, C) follow `image_classes`, the sound
# classifier's follow `sound_classes` — the same class names in another order. The function below, in the style of
# tutorials, is meant to return each example's fused probabilities (B, C) in `image_classes` order:
# `weights[0]` × the image's class probabilities + `weights[1]` × the sound's. It runs, and it is wrong twice. Fix it.


# %%
def late_fusion(image_logits, image_classes, sound_logits, sound_classes, weights):
    """-> (B, C) fused probabilities, columns in image_classes order."""
    # this code has a bug: find it and fix it
    p_image = image_logits.softmax(dim=0)
    p_sound = sound_logits.softmax(dim=0)
    return weights[0] * p_image + weights[1] * p_sound


# %%
check("09.late_fusion", late_fusion)

# %% [markdown]
# ## 4. Experiment: a modality-dropout rate
#
# `run_dropout(rate)` trains concatenation fusion on the chapter's control task (one object, name it from its image
# and its sound) for 200 steps with modality dropout `rate` — about a second per run after a one-off 10 s to
# prepare the data — and returns its test accuracy with both modalities, without the image and without the sound.
# The single-modality models' accuracies are in `ceiling`. Try a few rates, then return one for which the model
# keeps **≥ 95 % of the remaining modality's ceiling** whichever modality is missing, with **≥ 97 % accuracy**
# when both are there.

# %%
from mmcourse.grading.checks.ch09 import experiment_data, run_dropout  # noqa: E402

_, _, ceiling = experiment_data()
print(f"single-modality ceilings: image {ceiling['image']:.3f}, sound {ceiling['sound']:.3f}")
for rate in (0.0, 0.1):
    print(f"rate {rate}:", {k: round(v, 3) for k, v in run_dropout(rate).items()})


# %%
def my_dropout_rate():
    """-> a rate in [0, 1] that reaches the bar above."""
    raise NotImplementedError("exercise: write the body of `my_dropout_rate`")


# %%
check("09.dropout_rate", my_dropout_rate)

# %% [markdown]
# ## 5. Check yourself
#
# **Q1.** A model must answer "is the object you hear small or large?" from an image of two objects and the sound
# of one of them. Which fusion would you choose? (a) late fusion with learned weights; (b) late fusion averaging
# probabilities; (c) cross-attention from the sound's tokens to the image's; (d) any: with frozen encoders the
# fusion does not matter.

# %%
answer_which_fusion = ...  # your answer

# %%
check("09.quiz_which_fusion", answer_which_fusion)

# %% [markdown]
# **Q2.** Why does a fused model trained on both modalities fail when one is missing at test time, and how does
# modality dropout fix it? (a) the missing modality's encoder has no weights; dropout adds them; (b) it never saw a
# zeroed stream and leans on one; dropout trains it on zeroed streams; (c) dropout regularises the fusion layer,
# which reduces overfitting in general; (d) it fails because of batch normalisation; dropout replaces it.

# %%
answer_dropout = ...  # your answer

# %%
check("09.quiz_dropout", answer_dropout)

# %% [markdown]
# **Q3.** Tensor fusion projects each pooled modality to 16 numbers, appends a 1 to each and takes the outer
# product. How many numbers does the fused vector have? Answer with a number.

# %%
answer_tfn_size = ...  # your answer

# %%
check("09.quiz_tfn_size", answer_tfn_size)
