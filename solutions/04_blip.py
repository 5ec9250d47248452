# %% [markdown]
# # 04 · Exercises: BLIP
#
# Two pieces of BLIP's matching objective to build, the study guide's CapFilt to fix, a filter threshold to choose
# for a precision / recall target, and questions on the chapter — each checked against the course's reference.
# Write the body of each function (or your answer), run its cell, then run the `check` cell below it: it prints ✓
# when your answer is right, or what was expected, what came out and a hint.
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
# ## 1. Hard negatives, sampled
#
# `sim` (B, B) holds the contrastive logits s · cos(image i, caption j) of a batch; `same` (B, B) bool marks pairs
# (i, j ≠ i) whose captions say the same thing (so caption j describes image i too). Return `(neg_text,
# neg_image)`, two (B,) long tensors: for image i a caption index drawn with probability ∝ softmax_j(sim[i, j]),
# for caption j an image index drawn ∝ softmax_i(sim[i, j]) — in both, the positive (i = j) and every `same` pair
# set to probability 0 first. Draw with `torch.multinomial(..., generator=generator)`; never take the argmax.


# %%
def sample_hard_negatives(sim, same, generator):
    """(B, B), (B, B) bool, torch.Generator -> (neg_text (B,), neg_image (B,))."""
    # BEGIN SOLUTION
    positive = torch.eye(len(sim), dtype=torch.bool, device=sim.device) | same
    p_text = sim.softmax(dim=1).masked_fill(positive, 0.0)
    p_image = sim.T.softmax(dim=1).masked_fill(positive.T, 0.0)
    neg_text = torch.multinomial(p_text, 1, generator=generator).squeeze(1)  # multinomial renormalises the rows
    neg_image = torch.multinomial(p_image, 1, generator=generator).squeeze(1)
    return neg_text, neg_image
    # END SOLUTION


# %%
check("04.sample_hard_negatives", sample_hard_negatives)

# %% [markdown]
# ## 2. The ITM loss over 3B pairs
#
# `score(image_tokens, ids)` returns ITM logits (N, 2) for N (image, caption) pairs, class 1 meaning "match".
# `image_tokens` (B, M, D) and `ids` (B, L) are B matching pairs; `neg_text`, `neg_image` (B,) the indices of
# section 1. Score the B positives (label 1), the B pairs (image i, caption neg_text[i]) and the B pairs (image
# neg_image[j], caption j) (label 0), and return the mean cross-entropy over all 3B pairs.


# %%
def itm_loss(score, image_tokens, ids, neg_text, neg_image):
    """-> scalar loss."""
    # BEGIN SOLUTION
    B = len(ids)
    images = torch.cat([image_tokens, image_tokens, image_tokens[neg_image]])
    texts = torch.cat([ids, ids[neg_text], ids])
    labels = torch.cat([torch.ones(B, dtype=torch.long), torch.zeros(2 * B, dtype=torch.long)]).to(ids.device)
    return F.cross_entropy(score(images, texts), labels)
    # END SOLUTION


# %%
check("04.itm_loss", itm_loss)

# %% [markdown]
# ## 3. Fix CapFilt's selection
#
# The function below is the study guide's last CapFilt step, in our words. `web_scores` and `synthetic_scores`
# (P,) are the filter's P(match) of image i's web caption and of its synthetic caption. It runs — and builds a
# wrong dataset. Fix it: every caption whose score is **above** `threshold` stays, paired with its own image (an
# image may keep both captions, one or none). Return `(images, texts)`: a (K,) long tensor of image indices and
# the K texts, `texts[k]` a caption of image `images[k]`.


# %%
def capfilt_select(web_texts, synthetic_texts, web_scores, synthetic_scores, threshold):
    """-> (images (K,) long, texts list of K str)."""
    # BEGIN SOLUTION
    images, texts = [], []
    for captions, scores in ((web_texts, web_scores), (synthetic_texts, synthetic_scores)):
        for i, (text, score) in enumerate(zip(captions, scores.tolist())):
            if score > threshold:
                images.append(i)
                texts.append(text)
    return torch.tensor(images, dtype=torch.long), texts
    # BUGGY
    # keep = (web_scores > threshold) | (synthetic_scores > threshold)
    # images = torch.arange(len(web_texts))[keep]
    # texts = []
    # for i in range(len(web_texts)):
    #     texts.append(synthetic_texts[i] if synthetic_scores[i] > web_scores[i] else web_texts[i])
    # return images, texts
    # END SOLUTION


# %%
check("04.capfilt_select", capfilt_select)

# %% [markdown]
# ## 4. Experiment: a filter threshold for a precision target
#
# `filter_scores()` trains a filter — BLIP with ITC + ITM, 300 steps on 1 000 clean pairs, about 30 s on one core,
# once (later sessions read its scores from the cache) — and returns its P(match) of 2 000 web captions, 40 % of
# them wrong, together with which ones are right. A threshold keeps the captions scoring above it. **Precision**
# is the share of kept captions that are right, **recall** the share of right captions that are kept. The cell
# below measures three thresholds; try others in between (plot precision and recall against the threshold if you
# like), then return a threshold that reaches **precision ≥ 0.99 with recall ≥ 0.8**.

# %%
from mmcourse.grading.checks.ch04 import filter_scores  # noqa: E402
from mmcourse.recipes.blip_tiny import filter_quality  # noqa: E402

scores, correct = filter_scores()
for threshold in (0.1, 0.5, 0.9):
    quality = filter_quality(scores > threshold, correct)
    print(f"threshold {threshold}: precision {quality['precision']:.3f}, recall {quality['recall']:.3f}")


# %%
def my_threshold():
    """-> a float in [0, 1] with precision ≥ 0.99 and recall ≥ 0.8 on these web captions."""
    # BEGIN SOLUTION
    # Scan the thresholds and take the middle of those that reach both targets: the window is narrow (0.75-0.8 on
    # one machine), and where it lies moves a little with the CPU's arithmetic.
    good = []
    for t in range(101):
        quality = filter_quality(scores > t / 100, correct)
        if quality["precision"] >= 0.99 and quality["recall"] >= 0.8:
            good.append(t / 100)
    return good[len(good) // 2]
    # END SOLUTION


# %%
check("04.filter_threshold", my_threshold)

# %% [markdown]
# ## 5. Check yourself
#
# **Q1.** Why does BLIP's decoder share every parameter with the encoder except self-attention?
# (a) to halve the memory of the whole model; (b) cross-attention cannot be made causal; (c) encoding and decoding
# differ only in the attention mask — reading the image and transforming tokens are the same job; (d) so that the
# decoder's captions score high under ITM.

# %%
answer_sharing = "c"  # SOLUTION

# %%
check("04.quiz_sharing", answer_sharing)

# %% [markdown]
# **Q2.** Why does CapFilt's captioner sample with nucleus sampling rather than use beam search?
# (a) nucleus sampling is more accurate; (b) diverse synthetic captions teach more, and the filter drops the wrong
# ones; (c) it is faster than greedy decoding; (d) beam search cannot be used with cross-attention.

# %%
answer_nucleus = "b"  # SOLUTION

# %%
check("04.quiz_nucleus", answer_nucleus)

# %% [markdown]
# **Q3.** How many (image, caption) pairs does the ITM loss score for a batch of 64 pairs? Answer with a number.

# %%
answer_pairs = 192  # SOLUTION

# %%
check("04.quiz_pairs", answer_pairs)
