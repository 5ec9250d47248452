# %% [markdown]
# # 03 · Exercises: evaluation metrics
#
# Four metrics of the chapter, each written by you from its definition and checked against `mmcourse.metrics`
# (itself tested against coco-caption, the official VQA script and torchmetrics) on random and edge-case inputs.
# Write the body of each function, run its cell, then run the `check` cell below it: it prints ✓ when your answer is
# right, or what was expected, what came out and a hint.
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
import math
from collections import Counter

from mmcourse.grading import check
from mmcourse.metrics import normalize_answer

# %% [markdown]
# ## 1. Corpus BLEU
#
# `hypotheses` is a list of N captions, each a list of words; `references[i]` is a list of reference captions (each
# a list of words) for caption i. Return `[BLEU-1, …, BLEU-max_n]` for the whole corpus:
#
# - for each order k, **clip** each k-gram's count in the hypothesis at the largest count it has in any single
#   reference of that image; sum the clipped matches and the hypothesis k-gram counts **over the corpus**;
#   p_k = matches_k / count_k;
# - c = total hypothesis length; r = sum over captions of the reference length closest to the hypothesis length
#   (on a tie, the shorter one); brevity penalty BP = exp(1 − r/c) if c < r, else 1;
# - BLEU-k = BP · (p_1 · p_2 ⋯ p_k)^(1/k).
#
# No smoothing: when some p_j is 0, BLEU-k for k ≥ j is 0.


# %%
def bleu(hypotheses, references, max_n=4):
    """Corpus BLEU-1 … BLEU-max_n of tokenised captions -> list of max_n floats."""
    # BEGIN SOLUTION
    matches, counts = [0] * max_n, [0] * max_n
    c = r = 0
    for hyp, refs in zip(hypotheses, references):
        for k in range(1, max_n + 1):
            hyp_grams = Counter(tuple(hyp[i:i + k]) for i in range(len(hyp) - k + 1))
            most = Counter()
            for ref in refs:
                most |= Counter(tuple(ref[i:i + k]) for i in range(len(ref) - k + 1))  # | keeps the max count
            matches[k - 1] += sum(min(n, most[g]) for g, n in hyp_grams.items())
            counts[k - 1] += sum(hyp_grams.values())
        c += len(hyp)
        r += min((len(ref) for ref in refs), key=lambda length: (abs(length - len(hyp)), length))
    brevity_penalty = math.exp(1 - r / c) if c < r else 1.0
    scores, product = [], 1.0
    for k in range(max_n):
        product *= matches[k] / counts[k]
        scores.append(brevity_penalty * product ** (1 / (k + 1)))
    return scores
    # END SOLUTION


# %%
check("03.bleu", bleu)

# %% [markdown]
# ## 2. CIDEr-D
#
# Same inputs. For k = 1 … n, the tf-idf vector of a caption s holds, for each k-gram g of s,
# count_s(g) · log(N / max(1, df(g))), where N is the number of images in the corpus and df(g) the number of
# **images whose references** contain g (an image counts once, however many of its references contain g).
# Then for each image, with its hypothesis c and references S:
#
# CIDEr-D(c, S) = 10 / |S| · Σ_{s ∈ S} exp(−(len c − len s)² / (2σ²)) · (1/n) Σ_k ⟨min(g_k(c), g_k(s)), g_k(s)⟩ / (‖g_k(c)‖ ‖g_k(s)‖)
#
# where the min (element-wise, over the k-grams of c) **clips** the hypothesis at the reference, ‖·‖ are the
# unclipped norms, and a cosine with a zero vector is 0. Return the mean over the images.


# %%
def cider_d(hypotheses, references, n=4, sigma=6.0):
    """Corpus CIDEr-D of tokenised captions -> float."""
    # BEGIN SOLUTION
    def grams(tokens, k):
        return Counter(tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1))

    df = Counter()
    for refs in references:  # each image counts once per n-gram
        df.update({g for ref in refs for k in range(1, n + 1) for g in grams(ref, k)})
    log_n = math.log(len(references))

    def tfidf(tokens):
        return [{g: count * (log_n - math.log(max(1, df[g]))) for g, count in grams(tokens, k).items()}
                for k in range(1, n + 1)]

    def clipped_cosine(h, r):
        norm = math.sqrt(sum(v * v for v in h.values())) * math.sqrt(sum(v * v for v in r.values()))
        return sum(min(v, r[g]) * r[g] for g, v in h.items() if g in r) / norm if norm else 0.0

    scores = []
    for hyp, refs in zip(hypotheses, references):
        h = tfidf(hyp)
        total = 0.0
        for ref in refs:
            similarity = sum(clipped_cosine(hk, rk) for hk, rk in zip(h, tfidf(ref))) / n
            total += similarity * math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma**2))
        scores.append(10 * total / len(refs))
    return sum(scores) / len(scores)
    # END SOLUTION


# %%
check("03.cider_d", cider_d)

# %% [markdown]
# ## 3. The official VQA accuracy of one answer
#
# `prediction` is a model's raw answer ("Two.", "the circle"); `answers` holds at least ten human answers, already
# normalised as the VQA dataset ships them ("2", "circle"). Normalise the prediction with `normalize_answer`
# (imported above), then average, over the leave-one-annotator-out subsets (one per annotator), of
# min(1, number of the *other* annotators who gave the prediction / 3).


# %%
def vqa_score(prediction, answers):
    """Official VQA accuracy of one prediction (float in [0, 1])."""
    # BEGIN SOLUTION
    prediction = normalize_answer(prediction)
    matches = [answer == prediction for answer in answers]
    return sum(min(1.0, (sum(matches) - own) / 3) for own in matches) / len(answers)
    # END SOLUTION


# %%
check("03.vqa_score", vqa_score)

# %% [markdown]
# ## 4. Mean reciprocal rank over the full ranking
#
# `similarity` is (N_queries, N_items), higher = better; `relevant` is a (N_queries, N_items) bool mask with at least
# one True per row (an image can have several matching captions). A query's rank is 1 + the number of irrelevant
# items that score at least as high as its best relevant item (ties count against the query) — over **all** items,
# with no top-k cut. Return the mean over queries of 1 / rank, as a float. Work on the device of the inputs.


# %%
def mean_reciprocal_rank(similarity, relevant):
    """MRR of (N_queries, N_items) scores with a bool relevance mask -> float."""
    # BEGIN SOLUTION
    best_relevant = similarity.masked_fill(~relevant, float("-inf")).amax(dim=1, keepdim=True)
    rank = 1 + ((similarity >= best_relevant) & ~relevant).sum(dim=1)
    return (1.0 / rank.float()).mean().item()
    # END SOLUTION


# %%
check("03.mrr", mean_reciprocal_rank)
