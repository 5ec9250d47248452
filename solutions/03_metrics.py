# %% [markdown]
# # 03 · Exercises: evaluation metrics
#
# Four kinds of exercise on the chapter's metrics, each checked against `mmcourse.metrics` (itself tested against
# coco-caption, the official VQA script and torchmetrics) on random and edge-case inputs:
#
# - **build** (BLEU, CIDEr-D, the official VQA score, MRR): write the body of the function from its definition;
# - **fix** (ROUGE-L): the code you are given is a snippet you will meet in tutorials, with one bug — find it and
#   fix it;
# - **experiment** (BLEU vs CIDEr-D): try captions until two metrics disagree, for a reason you can name;
# - **questions**: answer with a letter or a number; the check explains the answer once it is right.
#
# Run the exercise's cell, then the `check` cell below it: it prints ✓ when your answer is right, or what was
# expected, what came out and a hint.
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
from collections import Counter

from mmcourse.data import CaptionDataset
from mmcourse.grading import check
from mmcourse.metrics import normalize_answer, sentence_bleu, sentence_cider_d

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
# ## 2. Fix: ROUGE-L of one caption
#
# `hypothesis` is one caption and `references` its reference captions, all as lists of words. ROUGE-L as
# coco-caption computes it:
#
# - LCS(h, r) is the length of the longest common **subsequence**: words of h that appear in r in the same order,
#   not necessarily next to each other ("a red circle is left of a blue square" and "a red circle left of a big
#   blue square" share 8 words in order);
# - P = max over the references of LCS / len(hypothesis), R = max over the references of LCS / len(reference) —
#   the best precision and the best recall are taken **separately**, possibly from different references;
# - ROUGE-L = (1 + β²) P R / (R + β² P), with β = 1.2, and 0 when P or R is 0.
#
# The code below is a snippet you will meet in tutorials. It has **one** bug. Run the check to see where its
# numbers go wrong, find the bug, and fix it (the chapter's LCS table in section 2 may help).


# %%
def rouge_l(hypothesis, references, beta=1.2):
    """ROUGE-L of one tokenised caption against its tokenised references -> float."""
    # BEGIN SOLUTION
    def lcs_length(a, b):
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                if a[i - 1] == b[j - 1]:
                    table[i][j] = table[i - 1][j - 1] + 1
                else:
                    table[i][j] = max(table[i - 1][j], table[i][j - 1])  # the fix: carry the best so far
        return max(max(row) for row in table)

    lengths = [lcs_length(hypothesis, ref) for ref in references]
    precision = max(n / len(hypothesis) for n in lengths)
    recall = max(n / len(ref) for n, ref in zip(lengths, references))
    if precision == 0 or recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
    # BUGGY
    # def lcs_length(a, b):
    #     table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    #     for i in range(1, len(a) + 1):
    #         for j in range(1, len(b) + 1):
    #             if a[i - 1] == b[j - 1]:
    #                 table[i][j] = table[i - 1][j - 1] + 1
    #             else:
    #                 table[i][j] = 0
    #     return max(max(row) for row in table)

    # lengths = [lcs_length(hypothesis, ref) for ref in references]
    # precision = max(n / len(hypothesis) for n in lengths)
    # recall = max(n / len(ref) for n, ref in zip(lengths, references))
    # if precision == 0 or recall == 0:
    #     return 0.0
    # return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)
    # END SOLUTION


# %%
check("03.rouge_l", rouge_l)


# %% [markdown]
# ## 3. CIDEr-D
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
# ## 4. Experiment: when BLEU and CIDEr-D disagree
#
# Two captioners, both telling the truth, can be ranked differently by two metrics. Take the scene of the chapter's
# section 5 (scene 0 of the 300-scene corpus) and its five references. Find two **true** captions of it such that
#
# - BLEU-4 scores `bleu_prefers` at least **0.05** higher than `cider_prefers`, and
# - CIDEr-D (with the idf of all 300 scenes' references) scores `cider_prefers` at least **1.0** higher than
#   `bleu_prefers`.
#
# "True", as the check reads a caption with the world's templates: 4 to 16 words, only words the world's captions
# use; every object named (its size, colour and shape words, any of which but the shape may be left out; synonyms
# such as "box" allowed) is one of the scene's objects; a relation ("above", "left of" …) holds in the world's
# sense — along the axis where the two objects differ most. Use `measure` to try captions; the check computes both
# metrics itself.

# %%
corpus = CaptionDataset(300, seed=3, max_objects=2, captions_per_image=5)
scene, refs = corpus.objects[0], corpus.references[0]
print("the scene:", [f"{o['size']} {o['colour']} {o['shape']} at x={o['x']:.2f}, y={o['y']:.2f}" for o in scene])
print("its references:", *refs, sep="\n  ")


def measure(text):
    """BLEU-4 against the scene's references and CIDEr-D with the idf of all 300 scenes' references."""
    return {"BLEU-4": round(sentence_bleu(text, refs)[3], 3),
            "CIDEr-D": round(sentence_cider_d(text, refs, corpus.references), 3)}


for text in ["a large cyan triangle above a small green square", "a big cyan wedge over a little green box"]:
    print(f"{text!r}: {measure(text)}")

# %%
bleu_prefers = "an image of a large triangle and a small square"  # SOLUTION
cider_prefers = "a small green square under a large cyan triangle"  # SOLUTION

# %%
check("03.bleu_vs_cider", (bleu_prefers, cider_prefers))


# %% [markdown]
# ## 5. The official VQA accuracy of one answer
#
# `prediction` is a model's raw answer ("Two.", "the circle", "Two circles."); `answers` holds at least ten human
# answers, already normalised as the VQA dataset ships them ("2", "circle", "2 circles"). Normalise the prediction
# with `normalize_answer` (imported above), then average, over the leave-one-annotator-out subsets (one per
# annotator, however many there are), of min(1, number of the *other* annotators who gave the prediction / 3).


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
# **Question.** A question has **12** human answers, and 3 of them equal the normalised prediction. What is its
# official VQA accuracy? Answer with a number (3 decimals are enough).

# %%
vqa_twelve = 0.917  # SOLUTION

# %%
check("03.quiz_vqa_twelve", vqa_twelve)


# %% [markdown]
# ## 6. Mean reciprocal rank over the full ranking
#
# `similarity` is (N_queries, N_items), higher = better; `relevant` is a (N_queries, N_items) bool mask with at least
# one True per row (an image can have several matching captions). A query's rank is 1 + the number of irrelevant
# items that score at least as high as its best relevant item — over **all** items, with no top-k cut. Ties count
# against the query: scores [0.5, 0.5, 0.5, 0.1] with item 0 relevant give rank 3, not 1. Return the mean over
# queries of 1 / rank, as a float. Work on the device of the inputs.


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


# %% [markdown]
# **Question.** A retrieval model's MRR@10 is 0.400 (a query whose relevant item is not in the top 10 counts 0).
# What can you say about its MRR over the full ranking?
#
# (a) it is exactly 0.400 · (b) it is at least 0.400 and less than 0.400 + 1/11 ≈ 0.491 · (c) it is at most
# 0.400 · (d) nothing: it can be anywhere in [0, 1]

# %%
mrr_at_10_answer = "b"  # SOLUTION

# %%
check("03.quiz_mrr_at_10", mrr_at_10_answer)

# %% [markdown]
# **Question.** You pass raw cosine similarities, some of them negative (including some relevant items' scores),
# to torchmetrics' `RetrievalMRR` and `RetrievalHitRate(top_k=5)`, on scores without ties. Which of the two can
# disagree with `mmcourse.metrics`? (The chapter's section 1 shows it; torchmetrics' source is short enough to read.)
#
# (a) both · (b) only `RetrievalMRR` · (c) only `RetrievalHitRate` · (d) neither

# %%
negative_scores_answer = "b"  # SOLUTION

# %%
check("03.quiz_torchmetrics_negative_scores", negative_scores_answer)
