# %% [markdown]
# # 02 · Exercises: CLIP
#
# Four pieces of a CLIP, each written by you and checked against the course's reference on random and edge-case
# inputs. Write the body of each function, run its cell, then run the `check` cell below it: it prints ✓ when
# your answer is right, or what was expected, what came out and a hint.
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
import torch.nn.functional as F

from mmcourse.grading import check

# %% [markdown]
# ## 1. The symmetric contrastive loss
#
# `image_features` and `text_features` are (B, D); row i of each belongs to the same pair. `logit_scale` is the
# multiplier s itself (a scalar tensor, `model.logit_scale.exp()`), not its log. L2-normalise both, form the
# logits s · x̂ ŷᵀ (B, B), and return the mean of the cross-entropy over the rows (each image picks its caption)
# and over the columns (each caption picks its image), with the diagonal as the targets. The gradient must reach
# `logit_scale`: the temperature is learned.


# %%
def clip_loss(image_features, text_features, logit_scale):
    """(B, D), (B, D), scalar s -> scalar loss."""
    raise NotImplementedError("exercise: write the body of `clip_loss`")


# %%
check("02.clip_loss", clip_loss)

# %% [markdown]
# ## 2. Pooling at the end-of-text token
#
# `hidden` (B, L, D) are the text transformer's final states, `ids` (B, L) the token ids (each row: `<sot>`,
# words, `<eot>`, padding). Return (B, D): each row's hidden state at its first `<eot>` token (id `eot_id`).
# Careful: `<eot>` need not be the largest id of the vocabulary, and the position must come from the ids.


# %%
def pool_eot(hidden, ids, eot_id):
    """(B, L, D), (B, L) -> (B, D)."""
    raise NotImplementedError("exercise: write the body of `pool_eot`")


# %%
check("02.pool_eot", pool_eot)

# %% [markdown]
# ## 3. A zero-shot classifier from a prompt ensemble
#
# `model` has `encode_text(ids, normalize=False)` and lives on the device of `model.logit_scale`; `tokenize(list
# of str)` returns (N, L) ids on the CPU. For each class name, fill every template (`"a photo of {}"`) with it,
# encode the prompts, normalise each embedding, average them and normalise the average. Return the class
# embeddings as the columns of a matrix (embed_dim, n_classes), so that `image_features @ weights` scores the
# classes.


# %%
def zero_shot_classifier(model, tokenize, classnames, templates):
    """-> (embed_dim, n_classes)."""
    raise NotImplementedError("exercise: write the body of `zero_shot_classifier`")


# %%
check("02.zero_shot_classifier", zero_shot_classifier)

# %% [markdown]
# ## 4. Recall@K
#
# `similarity` (N_queries, N_items) scores, higher = more similar (no ties); `relevant` (N_queries, N_items) bool,
# True where the item answers the query (an image may have several right captions); 1 ≤ k ≤ N_items. Return, as a
# Python float, the fraction of queries with **at least one** relevant item among their k highest-scoring items.


# %%
def recall_at_k(similarity, relevant, k):
    """-> float in [0, 1]."""
    raise NotImplementedError("exercise: write the body of `recall_at_k`")


# %%
check("02.recall_at_k", recall_at_k)
