# %% [markdown]
# # 02 · Exercises: CLIP
#
# Four pieces of a CLIP to build, a SigLIP loss from a tutorial to fix, an experiment with the temperature, and
# questions on the chapter — each checked against the course's reference on random and edge-case inputs. Write
# the body of each function (or your answer), run its cell, then run the `check` cell below it: it prints ✓ when
# your answer is right, or what was expected, what came out and a hint.
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
    # BEGIN SOLUTION
    x = F.normalize(image_features, dim=-1)
    y = F.normalize(text_features, dim=-1)
    logits = logit_scale * x @ y.T
    targets = torch.arange(len(x), device=x.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    # END SOLUTION


# %%
check("02.clip_loss", clip_loss)

# %% [markdown]
# ## 2. Pooling at the end-of-text token
#
# `hidden` (B, L, D) are the text transformer's final states, `ids` (B, L) the token ids (each row: `<sot>`,
# words, `<eot>`, padding). Return (B, D): each row's hidden state at its **first** `<eot>` token (id `eot_id`;
# a row may contain it twice). Careful: `<eot>` need not be the largest id of the vocabulary, and the position must
# come from the ids.


# %%
def pool_eot(hidden, ids, eot_id):
    """(B, L, D), (B, L) -> (B, D)."""
    # BEGIN SOLUTION
    position = (ids == eot_id).int().argmax(dim=1)  # argmax returns the first maximum: the first <eot>
    return hidden[torch.arange(len(ids), device=ids.device), position]
    # END SOLUTION


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
    # BEGIN SOLUTION
    device = model.logit_scale.device
    columns = []
    with torch.no_grad():
        for name in classnames:
            ids = tokenize([template.format(name) for template in templates]).to(device)
            prompts = F.normalize(model.encode_text(ids), dim=-1)
            columns.append(F.normalize(prompts.mean(dim=0), dim=-1))
    return torch.stack(columns, dim=1)
    # END SOLUTION


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
    # BEGIN SOLUTION
    top = similarity.topk(k, dim=1).indices  # (N_queries, k)
    hit = relevant.gather(1, top).any(dim=1)
    return hit.float().mean().item()
    # END SOLUTION


# %%
check("02.recall_at_k", recall_at_k)

# %% [markdown]
# ## 5. Fix a SigLIP loss
#
# A snippet you will meet in tutorials implements SigLIP's loss (chapter 02, section 10) as below. It runs, its
# value even looks plausible — and a model trained with it does not learn to push mismatched pairs apart. Find
# the problem (there are two: one in what the labels are, one in where they live) and fix it. The loss is
# −Σᵢⱼ log σ(zᵢⱼ (s x̂ᵢ·ŷⱼ + b)) / B with zᵢⱼ = +1 on the diagonal and −1 elsewhere.


# %%
def siglip_loss(image_features, text_features, logit_scale, logit_bias):
    """(B, D), (B, D), scalar s, scalar b -> scalar loss."""
    x = F.normalize(image_features, dim=-1)
    y = F.normalize(text_features, dim=-1)
    logits = logit_scale * x @ y.T + logit_bias
    # BEGIN SOLUTION
    labels = 2 * torch.eye(len(logits), device=logits.device) - 1
    return -F.logsigmoid(labels * logits).sum() / len(logits)
    # BUGGY
    # labels = torch.eye(len(logits))
    # return -F.logsigmoid(labels * logits).sum() / len(logits)
    # END SOLUTION


# %%
check("02.siglip_loss", siglip_loss)

# %% [markdown]
# ## 6. Experiment: how sharp a softmax can training start from?
#
# `train_colours(scale, learn_scale)` trains a fresh tiny CLIP for 120 steps (batch 64, single-shape images, lr
# 5e-3 and no gradient clipping) with its logit scale starting at `scale`, learned or held fixed; `colour_accuracy(model)` measures how often
# zero-shot classification names the right colour. Try a fixed s = 100 first: it barely learns. Then find a
# setting with which the 120 steps reach **≥ 90 % colour accuracy**. Each run takes about 15 s on one core.
# Return the trained model from `my_experiment`; the check measures it on new images.

# %%
from mmcourse.grading.checks.ch02 import colour_accuracy, train_colours  # noqa: E402

sharp = train_colours(scale=100.0, learn_scale=False)
print(f"fixed s = 100: colour accuracy {colour_accuracy(sharp):.1%}")


# %%
def my_experiment():
    """-> a CLIP trained by `train_colours` that names colours zero-shot with accuracy ≥ 0.9."""
    # BEGIN SOLUTION
    return train_colours(scale=1 / 0.07, learn_scale=True)  # CLIP's own start: learned, from 1/0.07
    # END SOLUTION


# %%
check("02.temperature_experiment", my_experiment)

# %% [markdown]
# ## 7. Check yourself
#
# **Q1.** Section 2's floor: perfect features (cosine 1 with the own caption, 0 with every other), s = 1. What is
# the lowest reachable loss for a batch of 32 768 instead of 128? Answer with a number (two decimals).

# %%
answer_floor = 9.40  # SOLUTION

# %%
check("02.quiz_floor", answer_floor)

# %% [markdown]
# **Q2.** Large CLIPs have a modality gap: image embeddings and text embeddings sit in two separate cones. Why
# does that not hurt zero-shot classification?
# (a) normalising the features removes the gap; (b) zero-shot compares one image with every class prompt, and a
# shift that all text embeddings share changes no argmax; (c) the learned temperature compensates for it;
# (d) averaging a prompt ensemble removes it.

# %%
answer_gap = "b"  # SOLUTION

# %%
check("02.quiz_gap", answer_gap)

# %% [markdown]
# **Q3.** A row of a SigLIP batch has k identical captions (the image's own and k − 1 of other images), so all k
# logits are equal. What probability σ(logit) minimises that row's part of the loss?
# (a) 1: the own caption is right; (b) 1/k; (c) 1/2; (d) 0: most of them are labelled −1.

# %%
answer_duplicates = "b"  # SOLUTION

# %%
check("02.quiz_duplicates", answer_duplicates)
