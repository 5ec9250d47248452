# %% [markdown]
# # 10 · Exercises: training strategies
#
# Two pieces of a sampler to build, the study guide's balanced sampler to fix, an OGM-GE strength to choose for a
# probe bar, and questions on the chapter — each checked against the course's reference. Write the body of each
# function (or your answer), run its cell, then run the `check` cell below it: it prints ✓ when your answer is
# right, or what was expected, what came out and a hint.
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
import random  # noqa: F401 -- the sampler to fix uses it

import torch

from mmcourse.grading import check

# %% [markdown]
# ## 1. Inverse-frequency weights
#
# `labels` (N,) holds each item's class (0 … C − 1, every class present). Return one weight per item, (N,), such
# that drawing items with probability proportional to the weights draws every class equally often: each item's
# weight is 1 / (the number of items of its class).


# %%
def inverse_frequency_weights(labels):
    """(N,) int -> (N,) positive weights."""
    # BEGIN SOLUTION
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].double()
    # END SOLUTION


# %%
check("10.inverse_frequency_weights", inverse_frequency_weights)

# %% [markdown]
# ## 2. A pacing function
#
# A curriculum draws from the easiest share of the data; the pacing function says how large that share is at
# `step` of `steps`. Return `start` at step 0, doubling every `doubling · steps` steps (`doubling` is a fraction of
# the training), never more than 1.


# %%
def pacing(step, steps, start, doubling):
    """-> the share of the data (easiest first) in the pool at `step`, in (0, 1]."""
    # BEGIN SOLUTION
    return min(1.0, start * 2 ** (step / (doubling * steps)))
    # END SOLUTION


# %%
check("10.pacing", pacing)

# %% [markdown]
# ## 3. Fix the study guide's balanced sampler
#
# The sampler below, condensed from the study guide, is meant to return `n` item indices in which every class is
# equally common. It weights each class by total / count — and then keeps each item *if `random.random()` is below
# its weight*. Run it on a long-tailed label set and count the classes: it changes nothing. Fix it so that it
# returns `n` indices drawn **with replacement**, item i with probability proportional to 1 / (its class's count)
# (`torch.multinomial` with a generator seeded by `seed`, or `torch.utils.data.WeightedRandomSampler`).


# %%
def balanced_indices(labels, n, seed=0):
    """(N,) int labels -> (n,) int64 indices, every class equally likely."""
    # BEGIN SOLUTION
    weights = 1.0 / torch.bincount(labels)[labels].double()
    return torch.multinomial(weights, n, replacement=True, generator=torch.Generator().manual_seed(seed))
    # BUGGY
    # rng = random.Random(seed)
    # counts = torch.bincount(labels).tolist()
    # weight = [len(labels) / c for c in counts]
    # keep = [i for i, y in enumerate(labels.tolist()) if rng.random() < weight[y]]
    # random.shuffle(keep)
    # return torch.tensor(keep)
    # END SOLUTION


# %%
check("10.balanced_indices", balanced_indices)

# %% [markdown]
# What the sampler draws from a long tail (200, 80, 30 and 10 items of four classes):

# %%
tail = torch.cat([torch.full((k,), c) for c, k in enumerate([200, 80, 30, 10])])
drawn = balanced_indices(tail, 8000)
print("class counts in the data:", torch.bincount(tail).tolist(), "| drawn:", torch.bincount(tail[drawn]).tolist(),
      f"({len(drawn)} draws)")

# %% [markdown]
# ## 4. Experiment: OGM-GE's strength
#
# `run_ogm(alpha)` trains the lecture's two-stream model (400 steps, SGD, seed 0) with OGM-GE of strength `alpha`
# — about 10 s per run after a one-off 3 s to make the data — and returns its image-encoder probe and its fused test
# accuracy. `alpha = 0` is no modulation: the joint model of the lecture. Try a few values, then return one for which
# the **image probe is ≥ 0.68** while the **fused accuracy stays ≥ 0.985**.

# %%
from mmcourse.grading.checks.ch10 import run_ogm  # noqa: E402

for alpha in (0.0,):
    print(f"alpha {alpha}:", {k: round(v, 3) for k, v in run_ogm(alpha).items()})


# %%
def my_alpha():
    """-> OGM's alpha (≥ 0) that reaches the bar above."""
    # BEGIN SOLUTION
    return 3.0
    # END SOLUTION


# %%
check("10.ogm_alpha", my_alpha)

# %% [markdown]
# ## 5. Check yourself
#
# **Q1.** Trained with one loss on the fused logits, why does the image encoder learn so much less than when it is
# trained alone?
# (a) the image stream has fewer parameters than the sound stream · (b) the sound lowers the fused loss first,
# leaving the image stream almost no gradient · (c) the fused head ignores the image features by design ·
# (d) batch normalisation in the image encoder cancels its gradient

# %%
answer_why_easy_wins = "b"  # SOLUTION

# %%
check("10.quiz_why_easy_wins", answer_why_easy_wins)

# %% [markdown]
# **Q2.** When is a curriculum (easy examples first) most likely to help?
# (a) always: easy-to-hard is how people learn · (b) when the data set is balanced across difficulties ·
# (c) when the hard examples are too hard or too noisy to learn from at first · (d) when the model is large enough
# to memorise the easy examples

# %%
answer_curriculum = "c"  # SOLUTION

# %%
check("10.quiz_curriculum", answer_curriculum)

# %% [markdown]
# **Q3.** With OGM's k = 1 − tanh(α(ρ − 1)), α = 1, and the sound's score twice the image's (ρ = 2): by what factor
# are the sound stream's gradients multiplied? (3 decimals)

# %%
answer_ogm_k = 0.238  # SOLUTION

# %%
check("10.quiz_ogm_k", answer_ogm_k)
