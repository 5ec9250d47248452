# %% [markdown]
# # 11 · Exercises: scaling contrastive training
#
# The local loss to build, a gather to fix, a global batch size to choose for a retrieval bar, and questions on the
# chapter — each checked against the course's reference. Write the body of each function (or your answer), run its
# cell, then run the `check` cell below it: it prints ✓ when your answer is right, or what was expected, what came
# out and a hint.
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
# ## 1. The local loss
#
# This rank (`rank`, counted from 0) holds b pairs: normalised features `x` (images) and `y` (texts), (b, D). The
# gather gave it every rank's features in rank order, `all_x` and `all_y` (N, D), N = W·b. Return this rank's share
# of CLIP's loss: cross-entropy of `scale * x @ all_y.T` (b, N) and of `scale * y @ all_x.T`, each row's positive
# at its **global** index, averaged over the two directions.


# %%
def local_clip_loss(x, y, all_x, all_y, scale, rank):
    """-> scalar loss."""
    # BEGIN SOLUTION
    b = len(x)
    targets = torch.arange(b, device=x.device) + rank * b  # row i of this rank is pair rank·b + i
    return (F.cross_entropy(scale * x @ all_y.T, targets) + F.cross_entropy(scale * y @ all_x.T, targets)) / 2
    # END SOLUTION


# %%
check("11.local_clip_loss", local_clip_loss)

# %% [markdown]
# ## 2. Fix a gather
#
# One process can simulate W ranks: `parts` is the list of the W ranks' local features (each (b, D), each with a
# gradient), and `gather(parts, rank)` returns what rank `rank` sees after the all-gather, (W·b, D) in rank order.
# The version below copies the other ranks' features the way the plain `torch.distributed.all_gather` does. The
# check lets every simulated rank compute the global CLIP loss from its gather, averages the gradients over the
# ranks (as `DistributedDataParallel` does) and compares them with one process's on the whole batch. Fix the gather
# so that they are equal.


# %%
def gather(parts, rank):
    """-> (W * b, D): the features of every rank, in rank order."""
    # BEGIN SOLUTION
    return torch.cat(parts)  # every part keeps its gradient: each rank's loss reaches every rank's encoder
    # BUGGY
    # copies = [p.detach().clone() for p in parts]  # what the plain all_gather hands back: no gradient
    # copies[rank] = parts[rank]
    # return torch.cat(copies)
    # END SOLUTION


# %%
check("11.gather", gather)

# %% [markdown]
# ## 3. Experiment: a global batch size for a retrieval bar
#
# `run_batch_size(B)` trains the chapter's fresh text tower against CLIP's frozen image tower on 16 384 pairs in
# batches of B (16 384 / B steps, a few seconds each; the data take about 8 s once) and returns its zero-shot
# accuracy and text → image R@1 among 1 000 test images. The cell below runs two batch sizes. Try others between 8
# and 2048, then return one that reaches **R@1 ≥ 0.45**.

# %%
from mmcourse.grading.checks.ch11 import run_batch_size  # noqa: E402

for batch_size in (1024, 16):
    print(f"batch {batch_size}:", {k: round(v, 3) for k, v in run_batch_size(batch_size).items()})


# %%
def my_batch_size():
    """-> an int in [8, 2048] reaching R@1 >= 0.45 after 16 384 pairs."""
    # BEGIN SOLUTION
    return 64
    # END SOLUTION


# %%
check("11.batch_size", my_batch_size)

# %% [markdown]
# ## 4. Check yourself
#
# **Q1.** What does the local loss save, and what does it cost? (a) memory (b × N logits per rank instead of
# N × N), at no cost in exactness; (b) memory, at the cost of approximate gradients; (c) communication: no
# all_gather is needed; (d) encoder compute: each rank encodes fewer examples.

# %%
answer_local_loss = "a"  # SOLUTION

# %%
check("11.quiz_local_loss", answer_local_loss)

# %% [markdown]
# **Q2.** With the global loss and the plain all_gather (no gradient; this rank's own features put back in their
# slot), what do the averaged gradients become on W ranks? (a) exactly right: the loss is the same on every rank;
# (b) zero: no gradient flows at all; (c) the true gradient divided by W; (d) W times the true gradient.

# %%
answer_plain_gather = "c"  # SOLUTION

# %%
check("11.quiz_plain_gather", answer_plain_gather)

# %% [markdown]
# **Q3.** 8 ranks of 512 pairs each use the local loss. How many image-to-text logits does one rank compute per
# step? Answer with a number.

# %%
answer_logits = 2097152  # SOLUTION

# %%
check("11.quiz_logits", answer_logits)
