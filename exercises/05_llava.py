# %% [markdown]
# # 05 · Exercises: LLaVA's splice and its training
#
# The step that lets a language model see: image features spliced into the token embeddings, with the labels that
# keep them out of the loss. One splice to build, one to fix, a training recipe to choose, and questions on the
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
from torch import nn

from mmcourse.grading import check

# %% [markdown]
# ## 1. The splice, batched
#
# A batch of conversations arrives as token ids (B, L), right-padded with `pad_id`, and their labels (B, L): the
# token to predict at each position, or -100 where no loss is computed (the system text, the user's turns, the
# padding). Where an image goes, the ids hold LLaVA's placeholder `image_token_index` = -200 — a number that is no
# token, so it cannot be looked up in the embedding table. A row may hold no placeholder, one, or several.
#
# `image_embeds` (I, N, D) holds the projected features of the I images, in **reading order**: row 0's placeholders
# from left to right, then row 1's, and so on. Return `(embeds, labels)`:
#
# - `embeds` (B, T, D): each row's tokens embedded with `embedding` (an `nn.Embedding`), except that each placeholder
#   is replaced by the N rows of its image. Every token after a placeholder moves N − 1 positions to the right. The
#   rows stay right-padded; T is the longest row after the splice. (What you put at padding positions is free.)
# - `labels` (B, T): each text token's label moved with it; **-100 at the image positions** and at the padding.
#
# The check compares your output with the course's `mmcourse.models.llava.splice` on rows with zero, one and two
# images, and checks that gradients reach the image features (the projector learns through them). Write it for any
# device: a tensor you make yourself (`torch.arange`, `torch.full`) belongs on `ids.device`.


# %%
def splice(ids, labels, image_embeds, embedding, image_token_index=-200, pad_id=0):
    """ids, labels (B, L); image_embeds (I, N, D) -> embeds (B, T, D), labels (B, T)."""
    raise NotImplementedError("exercise: write the body of `splice`")


# %%
check("05.splice", splice)

# %% [markdown]
# ## 2. Fix a splice that trains on the image
#
# The splice below handles the case the study guide's LLaVA has in mind: exactly one image per row. It runs, and its
# shapes are right — but a model trained with its labels learns something it should not, and on a GPU it stops with a
# device error. Find both bugs and fix them. (The check measures what the first one does to the loss of a small
# language model.)


# %%
def fix_splice(ids, labels, image_embeds, embedding, image_token_index=-200, pad_id=0):
    """ids, labels (B, L) with one placeholder per row; image_embeds (B, N, D) -> embeds (B, L + N − 1, D),
    labels (B, L + N − 1)."""
    # this code has a bug: find it and fix it
    embeds, new_labels = [], []
    for b in range(len(ids)):
        j = int((ids[b] == image_token_index).nonzero())
        text = embedding(ids[b].masked_fill(ids[b] == image_token_index, pad_id))
        embeds.append(torch.cat([text[:j], image_embeds[b], text[j + 1:]]))
        image_labels = torch.zeros(image_embeds.shape[1], dtype=labels.dtype)
        new_labels.append(torch.cat([labels[b, :j], image_labels, labels[b, j + 1:]]))
    return torch.stack(embeds), torch.stack(new_labels)


# %%
check("05.fix_splice", fix_splice)

# %% [markdown]
# One row through your fixed splice: which positions are image features, and which carry loss.

# %%
embedding = nn.Embedding(12, 4)
ids = torch.tensor([[1, 5, -200, 6, 7, 2]])
labels = torch.tensor([[-100, -100, -100, -100, 7, 2]])
embeds, spliced = fix_splice(ids, labels, torch.randn(1, 3, 4), embedding)
print("embeds:", tuple(embeds.shape), " labels:", spliced.tolist())

# %% [markdown]
# ## 3. Experiment: a tiny LLaVA on a budget
#
# The lecture's recipe trains 300 stage-1 steps and 1 600 stage-2 steps. Here you have at most **300 stage-2
# steps**. Choose the projector (`"linear"`, `"mlp2x_gelu"` or `"merge2x2"`), whether to run stage 1 first (its 300
# steps train the projector alone and do not count), whether stage 2 tunes the language model (`tune_lm`) or only
# the projector, and the number of stage-2 steps, so that the model answers at least 60 % of 300 new test
# questions exactly right (relation questions aside, which no recipe of this size learns). The check trains your
# recipe with `llava_tiny.train` and scores it: half a minute to a minute on a laptop CPU.
# Section 6 of the lecture measured each choice alone.


# %%
def my_recipe():
    """-> {"projector": str, "stage1": bool, "tune_lm": bool, "steps": int}"""
    raise NotImplementedError("exercise: write the body of `my_recipe`")


# %%
check("05.recipe", my_recipe)

# %% [markdown]
# ## 4. Check yourself
#
# **Q1.** LLaVA feeds its projector the patch tokens of the CLIP vision tower's penultimate layer, not its last.
# Why?
# (a) the last layer has no patch tokens, only the class token · (b) the last layer is shaped by CLIP's global
# image-text objective (only its class token is used); the layer before keeps each patch's local detail · (c) it
# saves one block of computation · (d) the penultimate layer's features are already in the language model's
# embedding space

# %%
answer_penultimate = ...  # your answer

# %%
check("05.quiz_penultimate", answer_penultimate)

# %% [markdown]
# **Q2.** Stage 1 trains only the projector, on image-caption pairs, with the language model frozen. What does it
# teach?
# (a) to map the image features into the language model's embedding space, where the frozen model can describe them
# · (b) the language model to answer questions about images · (c) the vision tower to see the world's shapes ·
# (d) the language model new words for what it sees

# %%
answer_stage1 = ...  # your answer

# %%
check("05.quiz_stage1", answer_stage1)

# %% [markdown]
# **Q3.** A training conversation has a system text and a user turn of 12 tokens in all (the `<image>` placeholder
# among them), one image of 16 projected features, then the assistant's answer of 2 tokens and `<eot>`. After the
# splice, how many positions carry loss?

# %%
answer_loss_positions = ...  # your answer

# %%
check("05.quiz_loss_positions", answer_loss_positions)
