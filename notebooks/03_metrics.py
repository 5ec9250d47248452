# %% [markdown]
# # 03 · Evaluating multimodal models
#
# A model is only as good as the number that says so. Multimodal papers report Recall@K for retrieval, BLEU,
# ROUGE-L and CIDEr-D for captions, VQA accuracy for answers, CLIPScore for image–text agreement, word error rate
# for speech — and each of these is a specific formula with specific conventions, easy to get subtly wrong. This
# chapter builds every one from its definition on a small worked example, proves the course's implementations equal
# the reference ones, and then asks the harder question: when do these numbers disagree with each other, and with
# common sense?
#
# **You will be able to**
# - compute Recall@K, MRR and median rank from a similarity matrix, and say why MRR needs the *full* ranking;
# - compute BLEU-1…4 (clipping, brevity penalty), ROUGE-L (β = 1.2) and CIDEr-D (tf-idf from the evaluated
#   references, clipping, length penalty) by hand, and explain why METEOR and SPICE need Java tools;
# - compute the official VQA accuracy (answer normalisation, ten leave-one-annotator-out subsets) and show how the
#   popular shortcut `min(count/3, 1)` over-scores;
# - compute CLIPScore from a trained CLIP, and WER/CER by edit distance;
# - pick the metric that catches a given failure (wrong colour–shape binding, synonyms, word salad).
#
# **Time**: about 1 minute on a CPU (plus about 2 minutes, once, if chapter 02's CLIP is not cached yet).
# **Prerequisites**: chapter 02 (CLIP) for the CLIPScore and retrieval sections; Python's `collections.Counter`.

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
import importlib.util
import math
import random
import re
import statistics
import time
from collections import Counter

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from mmcourse import zoo
from mmcourse.data import (
    COLOUR_NAMES,
    SHAPES,
    CaptionDataset,
    Tokenizer,
    VQADataset,
    caption,
    corrupt_objects,
    relation,
)
from mmcourse.data.text import SHAPE_SYNONYMS, object_phrase
from mmcourse.metrics import (
    char_error_rate,
    cider_d,
    clip_score,
    corpus_bleu,
    edit_distance,
    image_text_retrieval,
    mean_reciprocal_rank,
    median_rank,
    mrr_at_k,
    normalize_answer,
    recall_at_k,
    retrieval_metrics,
    rouge_l,
    sentence_bleu,
    sentence_caption_metrics,
    sentence_cider_d,
    sentence_rouge_l,
    tokenize,
    vqa_accuracy,
    vqa_accuracy_simplified,
    vqa_score,
    word_error_rate,
)
from mmcourse.models import encode_images, encode_texts
from mmcourse.results import record
from mmcourse.utils import get_device, seed_everything

seed_everything(0)
device = get_device()
# The reference implementations are development dependencies: compare with them where they are installed.
HAVE_COCO = importlib.util.find_spec("pycocoevalcap") is not None
HAVE_TORCHMETRICS = importlib.util.find_spec("torchmetrics") is not None
print("device:", device, "| pycocoevalcap:", HAVE_COCO, "| torchmetrics:", HAVE_TORCHMETRICS)
max_error = {}  # |ours − reference| of every comparison below, for the chapter's headline number

# %% [markdown]
# ## 1. Retrieval: Recall@K, MRR, median rank
#
# A retrieval model scores every query (a caption) against every item (an image): a similarity matrix, one row per
# query. Every retrieval metric starts from one number per query, its **rank**: the position of the first relevant
# item when all items are sorted by score (1 = the top item is right). Then
#
# - **Recall@K** = fraction of queries with rank ≤ K (a "hit" in the top K);
# - **MRR** (mean reciprocal rank) = mean of 1 / rank, over the *full* ranking;
# - **MedR** = median rank (lower is better; CLIP-style papers report it next to R@K).
#
# A worked example: four captions, six images, one right image per caption.

# %%
similarity = torch.tensor([
    [0.90, 0.10, 0.30, 0.20, 0.05, 0.40],   # caption 0 describes image 0
    [0.50, 0.45, 0.70, 0.10, 0.20, 0.30],   # caption 1 describes image 1
    [0.20, 0.10, 0.30, 0.60, 0.65, 0.10],   # caption 2 describes image 4
    [0.80, 0.70, 0.60, 0.50, 0.40, 0.10],   # caption 3 describes image 5
])
target = torch.tensor([0, 1, 4, 5])
order = similarity.argsort(dim=1, descending=True)  # items from best to worst, per query
rank = (order == target[:, None]).float().argmax(dim=1) + 1  # 1-based position of the right item
for q in range(4):
    print(f"caption {q}: ranking {order[q].tolist()}  right image {target[q].item()} -> rank {rank[q].item()}")
print(f"\nR@1 = {(rank <= 1).float().mean():.2f}   R@5 = {(rank <= 5).float().mean():.2f}   "
      f"MRR = {(1 / rank.float()).mean():.3f}   MedR = {rank.float().median():.1f}")

# %% [markdown]
# By hand: ranks 1, 3, 1, 6 → R@1 = 2/4, R@5 = 3/4, MRR = (1 + 1/3 + 1 + 1/6) / 4 = 0.625. The median of an even
# number of ranks is the mean of the two middle ones, (1 + 3) / 2 = 2 (torch's `median` returns the lower one, 1 —
# a convention worth checking in any library). `mmcourse.metrics` computes the rank without sorting (1 + the number
# of wrong items that score at least as high as the right one: ties count against the model):

# %%
ours = retrieval_metrics(similarity, target, ks=(1, 5))
print({k: round(v, 3) for k, v in ours.items()})
assert abs(ours["MRR"] - (1 + 1 / 3 + 1 + 1 / 6) / 4) < 1e-12 and ours["MedR"] == 2.0

fig, ax = plt.subplots(figsize=(6.5, 3))
image = ax.imshow(similarity, cmap="Blues", vmin=0, vmax=1)
fig.colorbar(image, ax=ax, label="similarity")
for q in range(4):
    for i in range(6):
        ax.text(i, q, f"{similarity[q, i]:.2f}", ha="center", va="center", fontsize=8,
                color="white" if similarity[q, i] > 0.6 else "black")
    ax.add_patch(plt.Rectangle((target[q] - 0.5, q - 0.5), 1, 1, fill=False, edgecolor="crimson", lw=2.5))
ax.set_xticks(range(6), [f"image {i}" for i in range(6)], fontsize=8)
ax.set_yticks(range(4), [f"caption {q}: rank {rank[q].item()}" for q in range(4)], fontsize=8)
ax.set_title("similarity; the right image framed in red", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Spot the bug: MRR from the top-k hits only
#
# The study guide computes retrieval metrics from `topk(similarity, k)`: it finds the right item among the top k and
# takes 1 / its position there. Two things go wrong. A query whose right item is *below* the top k simply vanishes —
# it should contribute 1 / rank, a small positive number, but contributes nothing. And because the guide averages
# over the queries that *did* hit, the misses do not even pull the mean down: a model that finds 5% of its images at
# rank 1 and buries the rest scores a perfect 1.0.
#
# What is being computed matters as much as how: MRR@k (misses count 0) is a legitimate, *different* metric; MRR
# averages over every query with its rank in the full ranking. Three simulated models over 1 000 images show the gap:

# %%
def guide_style_mrr(similarity, target, k=10):
    """The study guide's computation (in our words): positions of the hits inside the top k, averaged over hits."""
    top = similarity.topk(k, dim=1).indices
    hit_positions = (top == target[:, None]).nonzero()[:, 1] + 1
    return (1.0 / hit_positions.float()).mean().item()


n = 1_000
target = torch.arange(n)
g = torch.Generator().manual_seed(0)
noise = torch.randn(n, n, generator=g)
models = {"good": noise + 3.5 * torch.eye(n), "mediocre": noise + 2.0 * torch.eye(n)}
lucky = torch.randn(n, n, generator=g) - 10 * torch.eye(n)  # the right image buried at the bottom ...
lucky[:50, :50] += 20 * torch.eye(50)  # ... except for 5% of the queries, where it is first
models["5% perfect, 95% last"] = lucky
print(f"{'model':22s} {'R@1':>6s} {'R@10':>6s} {'MRR':>7s} {'MRR@10':>7s} {'guide MRR':>9s} {'MedR':>6s}")
for name, sim in models.items():
    print(f"{name:22s} {recall_at_k(sim, target, 1):6.3f} {recall_at_k(sim, target, 10):6.3f} "
          f"{mean_reciprocal_rank(sim, target):7.3f} {mrr_at_k(sim, target, 10):7.3f} "
          f"{guide_style_mrr(sim, target):9.3f} {median_rank(sim, target):6.0f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.2))
ks = [1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000]
for (name, sim), colour in zip(models.items(), ["C0", "C1", "C3"]):
    ax.plot(ks, [mrr_at_k(sim, target, k) for k in ks], "o-", color=colour, ms=3, label=f"{name}: MRR@k")
    ax.axhline(mean_reciprocal_rank(sim, target), color=colour, ls=":", lw=1)
    ax.plot(10, guide_style_mrr(sim, target), "x", color=colour, ms=9, mew=2, zorder=3)
ax.set_xscale("log")
ax.set_xlabel("k (cut-off)")
ax.set_ylabel("score")
ax.set_title("MRR@k rises to MRR (dotted) as k grows; × = the guide's number at k = 10", fontsize=9)
ax.legend(fontsize=8, loc="center right")  # the empty band between the curves
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** MRR@k approaches MRR from below and reaches it at k = N; the gap is the tail of 1/rank
# contributions of the misses, small for good models. The guide's number (×) is not on any of these curves: for the
# third model it reports a perfect 1.0 while 95% of queries fail completely — R@10 and MedR give the game away.
# Report MRR over the full ranking, or say "MRR@10" explicitly.
#
# ### Equal to torchmetrics
# torchmetrics computes retrieval metrics from flat (prediction, target, query index) lists. `RetrievalHitRate` is
# our Recall@K; `RetrievalMRR` is MRR (with `top_k`, MRR@k). One catch is in the code of `RetrievalMRR` (and of
# `RetrievalMAP`, `RetrievalPrecision` and `RetrievalRecall`), not of `RetrievalHitRate`: before ranking, it sets
# `target = torch.where(preds > 0, target, 0)` — a relevant item whose score is ≤ 0 no longer counts as relevant.
# Cosine similarities can be negative, so shift them to be positive first; the last lines below show what happens
# without the shift.

# %%
if HAVE_TORCHMETRICS:
    from torchmetrics import retrieval as tm_retrieval

    def torchmetrics_retrieval(metric, similarity, target, shift=True):
        preds = similarity - similarity.min() + 1.0 if shift else similarity  # the positive shift
        relevant = target[:, None] == torch.arange(similarity.shape[1])[None, :]
        queries = torch.arange(similarity.shape[0])[:, None].expand_as(similarity)
        return metric(preds.flatten(), relevant.flatten(), indexes=queries.flatten()).item()

    sim = models["mediocre"][:300, :300].double()
    tgt = target[:300]
    pairs = {"MRR": (mean_reciprocal_rank(sim, tgt), torchmetrics_retrieval(tm_retrieval.RetrievalMRR(), sim, tgt)),
             "MRR@10": (mrr_at_k(sim, tgt, 10), torchmetrics_retrieval(tm_retrieval.RetrievalMRR(top_k=10), sim, tgt))}
    for k in (1, 5, 10):
        pairs[f"R@{k}"] = (recall_at_k(sim, tgt, k),
                           torchmetrics_retrieval(tm_retrieval.RetrievalHitRate(top_k=k), sim, tgt))
    for name, (a, b) in pairs.items():
        print(f"{name:7s} ours {a:.6f}  torchmetrics {b:.6f}")
    max_error["retrieval vs torchmetrics"] = max(abs(a - b) for a, b in pairs.values())
    n_nonpositive = (sim[torch.arange(len(tgt)), tgt] <= 0).sum().item()
    print(f"\nwithout the shift ({n_nonpositive} of {len(tgt)} right items score <= 0):")
    print(f"RetrievalMRR          {torchmetrics_retrieval(tm_retrieval.RetrievalMRR(), sim, tgt, shift=False):.6f}"
          f"  (ours {pairs['MRR'][0]:.6f})")
    print(f"RetrievalHitRate@10   "
          f"{torchmetrics_retrieval(tm_retrieval.RetrievalHitRate(top_k=10), sim, tgt, shift=False):.6f}"
          f"  (ours {pairs['R@10'][0]:.6f})")
else:
    print("torchmetrics is not installed (pip install torchmetrics): comparison skipped")

# %% [markdown]
# ### A real model: chapter 02's CLIP
# Now the real thing: the tiny CLIP trained in chapter 02, on 500 new two-object scenes with five captions each.
# Image → text has five right answers per query (any of them counts as a hit), text → image one.

# %%
start = time.perf_counter()
clip = zoo.load("clip-tiny", device=device)
print(f"CLIP ready in {time.perf_counter() - start:.1f} s")
tok = Tokenizer()


def embed_texts(texts):  # normalised text features on the CPU (encode_images gives the image ones)
    return encode_texts(clip, tok(texts, context_length=clip.config.context_length))


test = CaptionDataset(500, resolution=clip.config.image_size, seed=303, max_objects=2, captions_per_image=5)
texts = [c for refs in test.references for c in refs]
image_ids = torch.arange(len(test)).repeat_interleave(5)
image_features, text_features = encode_images(clip, test.images), embed_texts(texts)
retrieval = image_text_retrieval(image_features @ text_features.T, image_ids)
for direction, m in retrieval.items():
    print(f"{direction:14s} " + "  ".join(f"{k} {v:.3f}" if k.startswith(("R@", "MRR")) else f"{k} {v:.1f}"
                                        for k, v in m.items()))

# %% [markdown]
# Are these numbers good? The world makes a ceiling easy to compute: many scenes share the same description
# ("a red circle and a blue square" fits every scene with those two objects, wherever they are), so even a perfect
# model cannot rank the *right* one of several identical-looking candidates first. Count, for each caption, how many
# images its words fit equally well:

# %%
def signature(objects):
    """What a caption can say about a scene: its objects' (size, colour, shape), as a multiset."""
    return tuple(sorted((o["size"], o["colour"], o["shape"]) for o in objects))


sig_count = Counter(signature(o) for o in test.objects)
twins = torch.tensor([sig_count[signature(o)] for o in test.objects], dtype=torch.float)
ceiling = (1 / twins).mean().item()
clip_r1, clip_medr = retrieval["text_to_image"]["R@1"], retrieval["text_to_image"]["MedR"]
print(f"images sharing their exact description with another image: {(twins > 1).float().mean():.0%}")
print(f"text->image R@1 of a model that picks one of the look-alikes at random: {ceiling:.3f}")
print(f"the tiny CLIP's text->image R@1 {clip_r1:.3f} is {clip_r1 / ceiling:.0%} of that ceiling; "
      f"its median rank is {clip_medr:.0f}")

# %% [markdown]
# That is a rough ceiling, not an exact one: captions that drop the size words have even more look-alikes, while
# relation words ("left of") can tell some apart. Against it, the tiny CLIP's text→image R@1 of 0.442 is 81% of the
# way to the ceiling, and its median rank of 2 says that the right image is usually among the handful of
# look-alikes. On real data the same effect hides in near-duplicate images and generic captions; look at failures
# before trusting R@1.

# %% [markdown]
# ## 2. Caption metrics: BLEU, ROUGE-L, CIDEr-D
#
# Captioning metrics compare a generated caption (the *hypothesis*) with several human *references* of the same
# image. To have a corpus, we take 300 scenes with five reference captions each and a stand-in "captioner" that
# describes three scenes in four correctly and one with a wrong colour or shape (chapter 04 trains a real one).
# Every string is lower-cased and split into words first (coco-caption uses a Java tokenizer; on our plain text the
# two agree).

# %%
corpus = CaptionDataset(300, seed=3, max_objects=2, captions_per_image=5)
references = corpus.references


def captioner(objects_list, seed=0, error_every=4):
    """A stand-in captioner: a fresh caption of the scene, with one attribute swapped for every error_every-th."""
    rng = random.Random(seed)
    return [caption(corrupt_objects(objs, rng, "swap") if i % error_every == 0 else objs, rng)
            for i, objs in enumerate(objects_list)]


hypotheses = captioner(corpus.objects)
for i in range(3):
    print(f"image {i}: hypothesis  {hypotheses[i]!r}")
    print(f"         references  {references[i][:2]} …")
print("tokens:", tokenize("A photo of a RED circle, left of a blue square."))

# %% [markdown]
# ### BLEU: clipped n-gram precision with a brevity penalty
#
# BLEU-n (Papineni et al., 2002) asks what fraction of the hypothesis' k-grams (k = 1…n) appear in a reference.
# Two guards keep it honest:
#
# - **clipping**: a k-gram counts at most as often as it occurs in *one* reference — otherwise "red red red red"
#   would have unigram precision 1 against "a red circle";
# - **brevity penalty**: precision alone rewards saying little ("a red circle" is all correct), so a hypothesis
#   shorter than its closest reference is multiplied by BP = exp(1 − r/c) (c its length, r the reference length
#   closest to c, the shorter on a tie).
#
# BLEU-n = BP · (p₁ ⋯ pₙ)^(1/n), the geometric mean of the precisions. Worked through on one image:

# %%
def ngrams(tokens, k):
    """Counts of the k-grams (tuples of k consecutive words) of a token list."""
    return Counter(tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1))


def bleu_by_hand(hypothesis, refs, max_n=4, verbose=True, smooth=(0.0, 0.0)):
    """BLEU-1..max_n of one hypothesis; smooth = (tiny, small) adds tiny to every match count and small to every
    k-gram count (and to the lengths in the brevity penalty), as coco-caption does."""
    tiny, small = smooth
    hyp, refs = tokenize(hypothesis), [tokenize(r) for r in refs]
    precisions = []
    for k in range(1, max_n + 1):
        counts = ngrams(hyp, k)
        most_in_one_ref = Counter()
        for ref in refs:
            most_in_one_ref |= ngrams(ref, k)  # `|` keeps the larger count of each k-gram
        clipped = sum(min(c, most_in_one_ref[gram]) for gram, c in counts.items())
        precisions.append((clipped + tiny) / (sum(counts.values()) + small) if smooth[1] else
                          clipped / max(1, sum(counts.values())))
        if verbose:
            print(f"  {k}-grams: {sum(counts.values())} in the hypothesis, {clipped} matched after clipping "
                  f"-> p{k} = {precisions[-1]:.3g}")
    c = len(hyp)
    r = min((len(ref) for ref in refs), key=lambda length: (abs(length - c), length))
    ratio = (c + tiny) / (r + small)
    brevity_penalty = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    if verbose:
        print(f"  length c = {c}, closest reference r = {r} -> BP = {brevity_penalty:.3f}")
    return [brevity_penalty * math.prod(precisions[:k]) ** (1 / k) for k in range(1, max_n + 1)]


refs = ["a large red circle left of a small blue square", "a red circle and a blue square",
        "a big red disk left of a little blue box"]
for hyp in ["a red circle left of a red square", "a red circle", "red red red red red"]:
    print(f"{hyp!r}")
    mine = bleu_by_hand(hyp, refs)
    print("  BLEU-1..4 by hand:   ", [round(b, 4) for b in mine])
    print("  mmcourse.metrics:    ", [round(b, 4) for b in sentence_bleu(hyp, refs)])

# %% [markdown]
# **What to notice.** The first hypothesis says "red square" — wrong — but only loses the clipped second "red" and
# a few bigrams. "a red circle" has perfect precision at orders 1 to 3, and the brevity penalty (0.264) is all that
# stops it from scoring 1 there. "red red red red red" keeps one "red" after clipping (p₁ = 1/5) and has no
# matching bigram: BLEU-2…4 are 0.
#
# One number disagrees: BLEU-4 of "a red circle" is 0 by hand but 0.0083 from `mmcourse.metrics`. The package
# follows coco-caption, which **smooths** every precision, p_k = (clipped matches + 10⁻¹⁵) / (k-grams + 10⁻⁹), so
# that a zero never reaches a logarithm. Usually that changes nothing visible: where k-grams exist and none match
# ("red red red red red", bigrams) p₂ becomes about 2.5 × 10⁻¹⁶ and BLEU-2 about 4.7 × 10⁻⁹. But a 3-word caption
# has *no* 4-gram at all, so p₄ = (0 + 10⁻¹⁵) / (0 + 10⁻⁹) = 10⁻⁶ — not 0 — and BLEU-4 = 0.264 · (1 · 1 · 1 ·
# 10⁻⁶)^¼ = 0.0083. The same smoothing, by hand:

# %%
TINY, SMALL = 1e-15, 1e-9  # coco-caption's additions to every match count and every k-gram count


def show(values):
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


for hyp in ["a red circle left of a red square", "a red circle", "red red red red red"]:
    print(f"{hyp!r}, smoothed:")
    smoothed = bleu_by_hand(hyp, refs, smooth=(TINY, SMALL))
    plain = bleu_by_hand(hyp, refs, verbose=False)
    print(f"  BLEU-1..4 unsmoothed {show(plain)}  smoothed {show(smoothed)}  mmcourse {show(sentence_bleu(hyp, refs))}")
    print(f"  smoothed vs mmcourse: max |difference| {max(abs(a - b) for a, b in zip(smoothed, sentence_bleu(hyp, refs))):.1g}"
          f"; smoothing moved the scores by up to {max(abs(a - b) for a, b in zip(smoothed, plain)):.2g}")

# %% [markdown]
# Where every order has matches (the first hypothesis) the smoothing moves the scores by about 10⁻¹⁰: invisible.
# It only shows when an order has no k-gram at all, as for captions shorter than four words — and a captioner that
# emits such captions gets a small BLEU-4 instead of 0. Our exercise's BLEU leaves the smoothing out.
#
# On a corpus, BLEU **pools** the counts: clipped matches and k-gram counts are summed over all captions before
# dividing, and c and r are summed too. That is not the mean of the per-caption BLEUs:

# %%
pooled = corpus_bleu(hypotheses, references)
mean_of_sentences = [sum(s) / len(s) for s in zip(*(sentence_bleu(h, r) for h, r in zip(hypotheses, references)))]
print("corpus BLEU-1..4 (pooled):     ", [round(b, 4) for b in pooled])
print("mean of per-caption BLEU-1..4: ", [round(b, 4) for b in mean_of_sentences])

# %% [markdown]
# ### ROUGE-L: the longest common subsequence
#
# ROUGE-L (Lin, 2004) looks for the longest sequence of words that appears in both captions in the same order, not
# necessarily adjacent — it rewards the right words in the right order without BLEU's fixed n-gram windows. From the
# LCS length: precision P = LCS / len(hypothesis), recall R = LCS / len(reference), combined as
# F_β = (1 + β²) P R / (R + β² P). coco-caption uses **β = 1.2** (recall weighs a little more) and, with several
# references, takes the best P and the best R separately; torchmetrics' ROUGE-L is the plain F1 (β = 1), so its
# numbers differ. The table below is the dynamic programme: cell (i, j) is the LCS of the first i hypothesis words
# and the first j reference words.

# %%
def lcs_table(a, b):
    table = torch.zeros(len(a) + 1, len(b) + 1, dtype=torch.long)
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i, j] = table[i - 1, j - 1] + 1 if a[i - 1] == b[j - 1] else max(table[i - 1, j], table[i, j - 1])
    return table


hyp, ref = tokenize("a red circle left of a red square"), tokenize(refs[0])
table = lcs_table(hyp, ref)
fig, ax = plt.subplots(figsize=(7, 4.2))
image = ax.imshow(table[1:, 1:], cmap="Greens")
fig.colorbar(image, ax=ax, label="LCS length so far", ticks=range(table.max().item() + 1))
for i in range(len(hyp)):
    for j in range(len(ref)):
        ax.text(j, i, int(table[i + 1, j + 1]), ha="center", va="center", fontsize=8,
                fontweight="bold" if hyp[i] == ref[j] else "normal")
ax.set_xticks(range(len(ref)), ref, rotation=45, fontsize=8)
ax.set_yticks(range(len(hyp)), hyp, fontsize=8)
ax.set_xlabel("reference")
ax.set_ylabel("hypothesis")
ax.set_title(f"LCS table: the bottom-right cell is the LCS length, {table[-1, -1].item()}", fontsize=10)
fig.tight_layout()
plt.show()

beta = 1.2
lcs = [lcs_table(hyp, tokenize(r))[-1, -1].item() for r in refs]
P = max(length / len(hyp) for length in lcs)
R = max(length / len(tokenize(r)) for length, r in zip(lcs, refs))
print(f"LCS with each reference {lcs}: best P = {P:.3f}, best R = {R:.3f}")
print(f"ROUGE-L (beta 1.2) by hand {(1 + beta**2) * P * R / (R + beta**2 * P):.4f}  "
      f"mmcourse {sentence_rouge_l(' '.join(hyp), refs):.4f}")

# %% [markdown]
# ### CIDEr-D: consensus, weighted by how informative each n-gram is
#
# CIDEr (Vedantam et al., 2015) was designed for captions: it asks whether the hypothesis says what *most*
# references say, and weights each n-gram by tf-idf, so that "a", "of", "there is" — in nearly every caption — count
# little, and "green triangle" counts a lot. The **idf comes from the references of the evaluated corpus**:
# idf(g) = log(N / df(g)), N images, df(g) the number of images whose references contain g. For each n = 1…4 the
# hypothesis and each reference become tf-idf vectors; their cosine, averaged over n and over the references, times
# 10, is CIDEr. The "-D" variant (the one coco-caption reports) adds two guards against gaming: the hypothesis'
# tf-idf is **clipped** at the reference's (repeating a rare word does not pay), and each cosine is multiplied by a
# **Gaussian length penalty** exp(−(len c − len s)² / 2σ²), σ = 6.

# %%
document_frequency = Counter()
for refs_of_image in references:
    document_frequency.update({g for r in refs_of_image for k in range(1, 5) for g in ngrams(tokenize(r), k)})
N = len(references)


def idf(gram):
    return math.log(N) - math.log(max(1, document_frequency[gram]))


for phrase in ["a", "of", "red", "square", "red square", "left of", "green triangle", "a small green triangle"]:
    gram = tuple(phrase.split())
    print(f"{phrase!r:26s} in the references of {document_frequency[gram]:3d} / {N} images -> idf {idf(gram):.2f}")

# %% [markdown]
# Now one caption's CIDEr-D, step by step, against the five references of its image (with the idf of the whole
# corpus):

# %%
def tfidf(tokens, k):
    return {g: count * idf(g) for g, count in ngrams(tokens, k).items()}


def clipped_cosine(h, r):
    norm = math.sqrt(sum(v * v for v in h.values())) * math.sqrt(sum(v * v for v in r.values()))
    return sum(min(v, r[g]) * r[g] for g, v in h.items() if g in r) / norm if norm else 0.0


def cider_d_by_hand(hypothesis, refs_of_image, sigma=6.0, verbose=True):
    hyp = tokenize(hypothesis)
    total = 0.0
    for ref in map(tokenize, refs_of_image):
        cosines = [clipped_cosine(tfidf(hyp, k), tfidf(ref, k)) for k in range(1, 5)]
        penalty = math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma**2))
        total += penalty * sum(cosines) / 4
        if verbose:
            print(f"  vs {' '.join(ref)!r:62s} cos_1..4 {[round(c, 2) for c in cosines]}, length penalty {penalty:.2f}")
    return 10 * total / len(refs_of_image)


i = 1
print(f"hypothesis {hypotheses[i]!r}")
print(f"CIDEr-D by hand {cider_d_by_hand(hypotheses[i], references[i]):.4f}   "
      f"mmcourse {sentence_cider_d(hypotheses[i], references[i], corpus_references=references):.4f}")

# %% [markdown]
# Two consequences of the definition worth knowing:
#
# - **CIDEr-D is a corpus metric.** Scored alone (a corpus of one image), every reference n-gram has df = N = 1 and
#   idf log(1/1) = 0: every caption scores 0. The same caption gets a different score in a different corpus.
# - It is on a different scale: ×10 makes typical values 0…3+ (a hypothesis identical to every reference scores
#   10); never compare it with BLEU's 0…1.

# %%
print("alone:            ", cider_d([hypotheses[i]], [references[i]]))
print("in 300 images:    ", round(sentence_cider_d(hypotheses[i], references[i], references), 4))
print("in the first 20:  ", round(sentence_cider_d(hypotheses[i], references[i], references[:20]), 4))

# %% [markdown]
# ### The whole corpus, and equality with coco-caption
# pycocoevalcap (the Python port of coco-caption, what captioning papers run) on the same corpus. It expects
# pre-tokenised strings in dicts keyed by image id; its BLEU and CIDEr-D are computed in Python, its tokenizer (not
# used here) and METEOR/SPICE need Java.

# %%
ours = {f"BLEU-{k}": v for k, v in enumerate(corpus_bleu(hypotheses, references), start=1)}
ours |= {"ROUGE-L": rouge_l(hypotheses, references), "CIDEr-D": cider_d(hypotheses, references)}
if HAVE_COCO:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [" ".join(tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(tokenize(h))] for i, h in enumerate(hypotheses)}
    coco = {f"BLEU-{k}": v for k, v in enumerate(Bleu(4).compute_score(gts, res, verbose=0)[0], start=1)}
    coco |= {"ROUGE-L": Rouge().compute_score(gts, res)[0], "CIDEr-D": Cider().compute_score(gts, res)[0]}
    for name in ours:
        print(f"{name:8s} ours {ours[name]:.10f}   pycocoevalcap {coco[name]:.10f}")
    max_error["captions vs pycocoevalcap"] = max(abs(ours[k] - coco[k]) for k in ours)
else:
    print("pycocoevalcap is not installed (pip install pycocoevalcap): ours only")
    print({k: round(v, 4) for k, v in ours.items()})

# %% [markdown]
# ### METEOR and SPICE: explained, not faked
#
# coco-caption reports two more metrics; we do not implement them, because an imitation would print numbers that
# look comparable with papers and are not.
#
# - **METEOR** (Banerjee & Lavie, 2005) aligns hypothesis and reference words in stages — exact match, then same
#   stem, then WordNet synonym, then paraphrase table — scores a recall-weighted harmonic mean of the aligned
#   precision and recall, and multiplies by a fragmentation penalty (many short aligned chunks = scrambled order).
#   Its language resources (stemmers, WordNet, paraphrase tables) ship inside `meteor-1.5.jar`.
# - **SPICE** (Anderson et al., 2016) parses each caption with a dependency parser into a *scene graph* — objects,
#   their attributes, relations between them — and scores the F1 of matching tuples ("circle", "circle-red",
#   "circle-left of-square"). The parser is Stanford CoreNLP: `spice-1.0.jar`.
#
# Both are Java programs that coco-caption calls through `subprocess`, which is why evaluating captions "the COCO
# way" needs a Java runtime. SPICE's idea — check *which attribute belongs to which object* — matters in section 5,
# where we build a small version of it that our world makes easy: since captions come from known templates, the
# (colour, shape) pairs can be read off with a regular expression instead of a parser.
#
# ## 3. VQA accuracy
#
# A VQA question has ten human answers, and humans disagree ("2", "two", "2 circles"). The official metric
# (Antol et al., 2015) starts from min(1, #humans who gave the answer / 3) — which alone would give full credit to
# an answer three humans gave — and averages it over every way of leaving one annotator out, so that every
# annotator is treated alike. After that averaging, three agreeing humans give 0.9 and full credit needs four (the
# table below):
#
# 1. **normalise** the predicted answer: lower-case, punctuation removed or spaced, number words → digits
#    ("Two" → "2"), articles dropped ("the circle" → "circle"), contractions fixed;
# 2. for each of the ten annotators, leave that one out and score min(1, #matches among the other nine / 3);
# 3. average the ten.

# %%
for raw in ["Two", "the circle.", "Yes!", "red/orange", "  A big red DISK ", "3.5", "dont know", "none"]:
    print(f"{raw!r:22s} -> {normalize_answer(raw)!r}")

# %% [markdown]
# With m of the ten humans giving the predicted answer, the ten subsets contain either m − 1 matches (when a
# matching annotator is left out: m subsets) or m (the other 10 − m), so
# acc = [m · min(1, (m−1)/3) + (10 − m) · min(1, m/3)] / 10 — 0, 0.3, 0.6, 0.9, then 1 from four agreeing humans on.

# %%
by_formula = [(m * min(1, (m - 1) / 3) + (10 - m) * min(1, m / 3)) / 10 for m in range(11)]
official = [vqa_score("2", ["2"] * m + ["3"] * (10 - m)) for m in range(11)]
simplified = [min(m / 3, 1) for m in range(11)]
print("m            ", "  ".join(f"{m:4d}" for m in range(11)))
print("by formula   ", "  ".join(f"{a:4.2f}" for a in by_formula))
print("official     ", "  ".join(f"{a:4.2f}" for a in official))
print("min(m/3, 1)  ", "  ".join(f"{a:4.2f}" for a in simplified))
assert all(abs(a - b) < 1e-12 for a, b in zip(by_formula, official))

# %% [markdown]
# ### Spot the bug: `min(count / 3, 1)`
#
# The study guide scores a prediction as min(number of humans who gave it / 3, 1), on the raw strings. That is the
# formula usually quoted for VQA accuracy, and it is not what the official script computes: it skips the
# leave-one-out average (so 1, 2, 3 agreeing humans give 0.33, 0.67, 1.0 instead of 0.3, 0.6, 0.9: too generous) and
# the normalisation (so "Two." never matches "2": too harsh). The two errors do not cancel; they move different
# questions. Over 4 000 questions of the world, each with ten annotator answers in varied surface forms (the number
# who agree drawn from 0–10), scoring a model that always gives the true answer and one that is right 60% of the time
# (when it is wrong, it gives another of the humans' answers, picked at random among them):

# %%
vqa = VQADataset(2_000, seed=7, questions_per_image=2, min_agreement=0)
raw_answers = [item["answers"] for item in vqa.items]
# The official script expects the dataset's answers already normalised (VQA ships them that way); ours are raw.
answers = [[normalize_answer(a) for a in human] for human in raw_answers]
truth = [item["answer"] for item in vqa.items]
rng = random.Random(1)
predictions = {"always right": truth,
               "right 60%": [t if rng.random() < 0.6 else rng.choice([a for a in h if a != t] or [t])
                             for t, h in zip(truth, answers)]}
print(f"{len(vqa.items)} questions")
print(f"{'model':13s} {'official':>9s} {'min(c/3,1) raw':>15s} {'min(c/3,1) normalised':>22s}")
for name, pred in predictions.items():
    print(f"{name:13s} {vqa_accuracy(pred, answers):9.3f} {vqa_accuracy_simplified(pred, raw_answers):15.3f} "
          f"{vqa_accuracy_simplified(pred, answers):22.3f}")

# %% [markdown]
# The model that is right only 60% of the time loses far less than 40% of its score. Two kinds of partial credit
# explain it. The official metric credits *any* answer by how many humans gave it — min(#matching / 3, 1), averaged
# over the leave-one-out subsets — whether or not it is the intended one; and every wrong answer of this model is an
# answer some human gave, so it gets at least 0.3, and more when several humans gave it (at low agreement the
# humans' other answers are the majority). And the always-right model is not at 1 either: where fewer than four
# humans agree with the truth, the truth itself only gets 0, 0.3, 0.6 or 0.9. The split (the "60%" model is right a
# little more often, 64.7%, because where every human gave the truth there is no other answer to pick):

# %%
def mean(values):
    return sum(values) / len(values)


official = {name: [vqa_score(p, a) for p, a in zip(pred, answers)] for name, pred in predictions.items()}
is_right = [p == t for p, t in zip(predictions["right 60%"], truth)]
when_right = [s for s, r in zip(official["right 60%"], is_right) if r]
when_wrong = [s for s, r in zip(official["right 60%"], is_right) if not r]
print(f"always right: the truth gets full credit on {mean([s == 1 for s in official['always right']]):.0%} of the "
      f"questions, partial credit (fewer than four humans agree) on the rest: mean {mean(official['always right']):.3f}")
print(f"right 60%: right on {mean(is_right):.1%} of the questions, scoring {mean(when_right):.3f} there; "
      f"wrong on {len(when_wrong)}, scoring {mean(when_wrong):.3f} there "
      f"({mean([s > 0 for s in when_wrong]):.0%} of its wrong answers get some credit)")
print(f"{mean(is_right):.3f} x {mean(when_right):.3f} + {1 - mean(is_right):.3f} x {mean(when_wrong):.3f} "
      f"= {mean(official['right 60%']):.3f}")

# %%
n_match = torch.tensor([item["n_match"] for item in vqa.items])
per_question = {
    "official": torch.tensor([vqa_score(t, a) for t, a in zip(truth, answers)]),
    "min(c/3,1) on raw answers": torch.tensor([min(h.count(t) / 3, 1) for t, h in zip(truth, raw_answers)]),
    "min(c/3,1) on normalised answers": torch.tensor([min(a.count(t) / 3, 1) for t, a in zip(truth, answers)]),
}
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
for (name, scores), marker in zip(per_question.items(), ["o-", "s--", "^:"]):
    axes[0].plot(range(11), [scores[n_match == m].mean() for m in range(11)], marker, label=name, ms=4)
axes[0].set_xlabel("annotators (of 10) whose answer normalises to the truth")
axes[0].set_ylabel("mean score of the true answer")
axes[0].legend(fontsize=8, loc="lower right")
difference = per_question["min(c/3,1) on raw answers"] - per_question["official"]
axes[1].hist(difference, bins=torch.linspace(-1.05, 1.05, 22).tolist(), color="C1")
axes[1].set_xlabel("min(c/3,1) on raw answers − official, per question")
axes[1].set_ylabel("questions")
axes[1].set_title(f"over-scored {(difference > 1e-9).float().mean():.0%}, under-scored "
                  f"{(difference < -1e-9).float().mean():.0%}, equal {(difference.abs() <= 1e-9).float().mean():.0%}",
                  fontsize=9)
fig.suptitle("scoring the always-right model, question by question", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice.** On normalised answers the shortcut is above the official curve exactly where one to three
# humans agree; on raw answers it is also *below* it wherever humans wrote "two" or "the circle". The per-question
# histogram shows both: a single benchmark number can hide errors in both directions. Use the official definition
# (`mmcourse.metrics.vqa_accuracy`), and normalise ground-truth answers the way the dataset did.

# %% [markdown]
# ## 4. CLIPScore: ask a CLIP instead of the references
#
# Every metric so far compares words with words. CLIPScore (Hessel et al., 2021) needs no reference at all: it
# embeds the image and the caption with a trained CLIP and scores their agreement,
#
#   CLIP-S(c, v) = w · max(cos(E_c, E_v), 0),  w = 2.5,
#
# where the clamp makes anti-correlated pairs 0 and w only stretches CLIP's typical cosines (~0.3 for OpenAI's CLIP)
# towards [0, 1]. With references available, RefCLIP-S also takes the harmonic mean with the caption's best cosine to
# a reference (`mmcourse.metrics.ref_clip_score`). A CLIPScore is only as good as its CLIP — the paper uses
# ViT-B/32; here it is chapter 02's tiny one, so read the numbers as "this CLIP's opinion". (torchmetrics'
# `CLIPScore` uses w = 100 and clamps after averaging, and downloads a Hugging Face model: not comparable here.)
#
# On the 500 test scenes: each image with its own caption, with the caption of another scene, and with its own
# caption with one colour or shape changed.

# %%
rng = random.Random(5)
own = [refs[0] for refs in test.references]
other = [test.references[(i + 1 + rng.randrange(len(test) - 1)) % len(test)][0] for i in range(len(test))]
changed = [caption(corrupt_objects(objs, rng, "swap"), rng) for objs in test.objects]
clip_s = {name: clip_score(image_features, embed_texts(texts), reduction="none")
          for name, texts in [("own caption", own), ("one attribute changed", changed), ("another scene's", other)]}
fig, ax = plt.subplots(figsize=(6.5, 3))
for name, scores in clip_s.items():
    ax.hist(scores, bins=torch.linspace(0, 2.5, 41).tolist(), alpha=0.6, label=f"{name} (mean {scores.mean():.2f})")
ax.set_xlabel("CLIP-S = 2.5 · max(cos, 0)")
ax.set_ylabel("images")
ax.legend(fontsize=8, loc="upper center")  # above the low, flat middle of the histograms
fig.tight_layout()
plt.show()
for name, scores in clip_s.items():
    print(f"{name:22s} mean CLIP-S {scores.mean():.2f}")
print(f"own caption scores higher than the changed one for {(clip_s['own caption'] > clip_s['one attribute changed']).float().mean():.0%} of images")

# %% [markdown]
# **What to notice.** The tiny CLIP gives another scene's caption 0.63 on average, a caption with one colour or shape
# changed 1.49, and the image's own caption 2.39, near the top of the scale; it prefers the own caption to the
# changed one for 100% of the images. The absolute values are not comparable with published CLIPScores (a different CLIP has a different scale): CLIPScore is good at
# ranking captions of the same image, and says little when compared across models.

# %% [markdown]
# ## 5. Where metrics disagree — with each other and with common sense
#
# Each metric has blind spots built into its definition. n-gram metrics count words, not meaning: a synonym
# ("disk" for "circle") is a miss, and one changed word that flips the meaning ("above" → "below") costs no more
# than a harmless one. CLIPScore reads the image, but only through what its CLIP learned. A check that asks *what
# the caption asserts* — SPICE's idea, or a VQA model asked "what colour is the circle?" — catches what the others
# miss. Our world makes such a check a few regular expressions, because its captions come from known templates:
# read the (colour, shape) objects and the (object, relation, object) facts a caption states, and score their F1
# against the scene's true objects and relation. We call it **scene F1**: a SPICE in miniature for this world only.

# %%
shape_words = {s: s for s in SHAPES} | {w: s for s, words in SHAPE_SYNONYMS.items() for w in words}
OBJECT = rf"({'|'.join(COLOUR_NAMES)}) ({'|'.join(sorted(shape_words, key=len, reverse=True))})"
RELATION_WORDS = {"to the left of": "left", "left of": "left", "to the right of": "right", "right of": "right",
                  "above": "above", "over": "above", "below": "below", "under": "below"}
STATED_RELATION = re.compile(rf"\b{OBJECT} (?:is )?({'|'.join(RELATION_WORDS)}) an? (?:\w+ )?{OBJECT}\b")
FLIP = {"right": "left", "below": "above"}  # "B right of A" states the same fact as "A left of B"


def fact(a, rel, b):
    return (b, FLIP[rel], a) if rel in FLIP else (a, rel, b)


def scene_tuples(objects):
    """What is true of a scene: its (colour, shape) objects and, for two objects, their relation."""
    tuples = Counter((o["colour"], o["shape"]) for o in objects)
    if len(objects) == 2:
        a, b = objects
        tuples[fact((a["colour"], a["shape"]), relation(a, b), (b["colour"], b["shape"]))] += 1
    return tuples


def caption_tuples(text):
    """What a caption asserts, read with the world's templates (synonyms mapped to the shape names)."""
    text = text.lower()
    tuples = Counter((colour, shape_words[s]) for colour, s in re.findall(rf"\b{OBJECT}\b", text))
    for c1, s1, rel, c2, s2 in STATED_RELATION.findall(text):
        tuples[fact((c1, shape_words[s1]), RELATION_WORDS[rel], (c2, shape_words[s2]))] += 1
    return tuples


def scene_f1(text, objects):
    said, true = caption_tuples(text), scene_tuples(objects)
    return 2 * sum((said & true).values()) / (sum(said.values()) + sum(true.values()))


for i in (1, 2):
    text = caption(corpus.objects[i], random.Random(4))
    print(f"{text!r}\n  asserts {dict(caption_tuples(text))}\n  true    {dict(scene_tuples(corpus.objects[i]))}"
          f"\n  scene F1 {scene_f1(text, corpus.objects[i]):.2f}")


def swap_colours(objects):
    """The same two objects with their colours exchanged: every word stays, the binding is wrong."""
    a, b = objects
    return [dict(a, colour=b["colour"]), dict(b, colour=a["colour"])]


# scenes whose two objects differ in colour and in shape (so a colour swap changes the meaning)
pairs = [i for i, objs in enumerate(corpus.objects)
         if len(objs) == 2 and objs[0]["colour"] != objs[1]["colour"] and objs[0]["shape"] != objs[1]["shape"]]
rng = random.Random(2)
kinds = {"correct": [caption(corpus.objects[i], rng) for i in pairs],
         "attribute changed": [caption(corrupt_objects(corpus.objects[i], rng, "swap"), rng) for i in pairs],
         "colours swapped": [caption(swap_colours(corpus.objects[i]), rng) for i in pairs]}
pair_images = encode_images(clip, corpus.images[pairs])
refs_of_pairs = [references[i] for i in pairs]
scores = {}
for kind, texts in kinds.items():
    scores[kind] = {
        "BLEU-1": torch.tensor([sentence_bleu(t, r)[0] for t, r in zip(texts, refs_of_pairs)]),
        "BLEU-4": torch.tensor([sentence_bleu(t, r)[3] for t, r in zip(texts, refs_of_pairs)]),
        "ROUGE-L": torch.tensor([sentence_rouge_l(t, r) for t, r in zip(texts, refs_of_pairs)]),
        "CIDEr-D": torch.tensor([cider_d_by_hand(t, r, verbose=False) for t, r in zip(texts, refs_of_pairs)]),
        "CLIP-S": clip_score(pair_images, embed_texts(texts), reduction="none"),
        "scene F1": torch.tensor([scene_f1(t, corpus.objects[i]) for t, i in zip(texts, pairs)]),
    }
metric_names = list(scores["correct"])
print(f"{len(pairs)} two-object scenes; share of scenes where the correct caption scores strictly higher than the "
      "wrong one (and strictly lower; the rest are ties):")
print(f"{'':34s}" + "".join(f"{m:>10s}" for m in metric_names))
for wrong in ("attribute changed", "colours swapped"):
    higher = [(scores["correct"][m] > scores[wrong][m]).float().mean().item() for m in metric_names]
    lower = [(scores["correct"][m] < scores[wrong][m]).float().mean().item() for m in metric_names]
    print(f"{wrong + ': correct higher':34s}" + "".join(f"{w:10.0%}" for w in higher))
    print(f"{wrong + ': correct lower':34s}" + "".join(f"{w:10.0%}" for w in lower))

# %% [markdown]
# (The by-hand CIDEr-D of section 2 is used above because it computes the corpus idf once; it equals the package's
# `sentence_cider_d`, checked there.) Read the rows. A changed attribute is a changed word, and every metric often
# catches it; CLIP-S and the scene check best (100%). Swapped colours keep every word: BLEU-1, which counts single
# words, prefers the wrong caption about as often as the right one (43% against 42%). The higher-order n-gram
# metrics catch most swaps, but only because our templates always put a colour right before its shape — the bigram
# "cyan triangle" *is* the binding here (in "a triangle which is cyan" it would not be). The tiny CLIP, perfect on a
# changed attribute, prefers the right caption to the colour-swapped one in 93% of the scenes, and the wrong one
# in 7%: it mostly knows which colour goes with which shape, but less surely than which colours and shapes are
# there — a mild form of the "bag of words" behaviour Yuksekgonul et al. (2023) measured in CLIPs trained at scale. The scene check is right every time, by
# construction: it knows the world's grammar. Now single captions of one scene, edited by hand:

# %%
demo = pairs[0]
objs = corpus.objects[demo]
a, b = objs
rel = relation(a, b)
rel_phrase = {"left": "left of", "right": "right of", "above": "above", "below": "below"}[rel]
inverse = {"left": "right of", "right": "left of", "above": "below", "below": "above"}[rel]
synonym = {"circle": "disk", "square": "box", "triangle": "wedge", "small": "little", "large": "big"}
pa, pb = object_phrase(a), object_phrase(b)
canonical = f"{pa} {rel_phrase} {pb}"
edits = {
    "the right caption": canonical,
    "synonyms": " ".join(synonym.get(w, w) for w in canonical.split()),
    "colours swapped (binding)": f"{object_phrase(swap_colours(objs)[0])} {rel_phrase} {object_phrase(swap_colours(objs)[1])}",
    "relation reversed": f"{pa} {inverse} {pb}",
    "a wrong colour": f"{object_phrase(corrupt_objects([a], random.Random(0), 'swap')[0])} {rel_phrase} {pb}",
    "word salad": " ".join(random.Random(3).sample(canonical.split(), len(canonical.split()))),
    "one object only": pa,
    "repeated words": f"{pa} {pa} {pa}",
    "generic": "a picture of two shapes",
}
print("references:", *references[demo], sep="\n  ")


def all_scores(text, image_features, objects, refs_of_image):
    """Every metric of one caption: n-gram metrics vs the references, CLIP-S vs the image, scene F1."""
    m = sentence_caption_metrics(text, refs_of_image, references)
    return {"BLEU-1": m["BLEU-1"], "BLEU-4": m["BLEU-4"], "ROUGE-L": m["ROUGE-L"], "CIDEr-D": m["CIDEr-D"],
            "CLIP-S": clip_score(image_features, embed_texts([text])).item(),
            "scene F1": scene_f1(text, objects)}


demo_image = encode_images(clip, corpus.images[demo:demo + 1])
table = {name: all_scores(text, demo_image, objs, references[demo]) for name, text in edits.items()}
print(f"\n{'edit':26s} {'caption':52s}" + "".join(f"{m:>10s}" for m in metric_names))
for name, row in table.items():
    print(f"{name:26s} {edits[name]:52s}" + "".join(f"{row[m]:10.3f}" for m in metric_names))
in_references = {w for r in references[demo] for w in tokenize(r)}
print("\nwords of the generic caption that occur in a reference, with their idf over the 300 scenes:",
      {w: round(idf((w,)), 2) for w in tokenize(edits["generic"]) if w in in_references})

# %%
values = torch.tensor([[row[m] for m in metric_names] for row in table.values()])
relative = values / values[0].clamp(min=1e-9)  # each metric relative to its score for the right caption
fig, (ax_img, ax) = plt.subplots(1, 2, figsize=(12, 5.5), gridspec_kw={"width_ratios": [1, 3.2]})
ax_img.imshow(corpus.images[demo].permute(1, 2, 0))
ax_img.set_title("the scene", fontsize=9)
ax_img.set_axis_off()
image = ax.imshow(relative.clamp(0, 1.2), cmap="RdYlGn", vmin=0, vmax=1.2, aspect="auto")
fig.colorbar(image, ax=ax, label="score / the right caption's score (clipped at 1.2)", fraction=0.04)
for r in range(values.shape[0]):
    for c in range(values.shape[1]):
        ax.text(c, r, f"{values[r, c]:.2f}", ha="center", va="center", fontsize=8)
ax.set_xticks(range(len(metric_names)), metric_names, fontsize=9)
ax.set_yticks(range(len(edits)), [f"{name}\n“{text}”" for name, text in edits.items()], fontsize=7)
ax.set_title("score of each edit (colour: relative to the right caption — green as good, red much worse)",
             fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# **What to notice** (for this scene; the editor below lets you try others):
#
# - **Colours swapped**: the same words, so BLEU-1 does not move; BLEU-4 and CIDEr-D fall because the
#   colour–shape bigrams are gone; CLIP-S hardly changes; scene F1 is 0 — both objects named are not in the image.
# - **Relation reversed**: one word changed and the meaning flipped. BLEU and ROUGE-L do not move, CIDEr-D and CLIP-S
#   barely; only the scene check notices (the objects are right, the relation is wrong).
# - **Synonyms**: a right caption that every n-gram metric punishes (METEOR's synonym matching was invented for
#   this); CLIP-S and the scene check forgive it.
# - **Word salad**: BLEU-1 keeps every word; BLEU-4 and ROUGE-L fall; CLIP-S hardly changes — this CLIP barely
#   reads word order, a second face of the bag-of-words behaviour.
# - **Repeated words** are clipped by BLEU and CIDEr-D and penalised for length by CIDEr-D.
# - A **generic** caption scores 0 on CIDEr-D and scene F1, yet BLEU-1 and ROUGE-L give it something — not for
#   "picture", which no reference contains, but for "a" and "of", the frame words of the references' "an image of a
#   …" and "a photo of a …". Their idf over the corpus is 0.0 and 0.02 (printed under the table), which is why
#   CIDEr-D gives them nothing.
#
# No single column is right on every row. Report several metrics, of different kinds, and read examples.
#
# ### Try it: a caption editor
# Type a caption; every metric updates as you type (the image is the scene above; the n-gram metrics use its five
# references, CIDEr-D the idf of the 300-scene corpus; words outside the world's vocabulary reach CLIP as
# `<unk>`). Needs a live kernel — on GitHub the table above is the static version.

# %%
def caption_editor(image, objects, refs_of_image, start):
    """A Text box and a table of every metric for the typed caption next to the right caption's scores."""
    features = encode_images(clip, image[None])
    baseline = all_scores(start, features, objects, refs_of_image)
    scale = {"BLEU-1": 1.0, "BLEU-4": 1.0, "ROUGE-L": 1.0, "CIDEr-D": 10.0, "CLIP-S": 2.5, "scene F1": 1.0}
    box = widgets.Text(value=start, description="caption", continuous_update=True,
                       layout=widgets.Layout(width="95%"))
    table_html = widgets.HTML()

    def bar(value, top):
        width = max(0.0, min(1.0, value / top)) * 160
        return f'<div style="background:#4c72b0;height:10px;width:{width:.0f}px"></div>'

    def update(change=None):
        if not tokenize(box.value):
            table_html.value = "<i>type a caption</i>"
            return
        now = all_scores(box.value, features, objects, refs_of_image)
        rows = "".join(f"<tr><td>{m}</td><td>{now[m]:.3f}</td><td>{bar(now[m], scale[m])}</td>"
                       f"<td style='color:gray'>{baseline[m]:.3f}</td></tr>" for m in now)
        table_html.value = ("<table><tr><th>metric</th><th>your caption</th><th></th>"
                            f"<th>“{start}”</th></tr>{rows}</table>")

    box.observe(update, names="value")
    update()
    return widgets.VBox([box, table_html])


caption_editor(corpus.images[demo], objs, references[demo], canonical)

# %% [markdown]
# ## 6. Speech: word and character error rates
#
# Speech recognisers (chapter 07) are scored by the **word error rate**: the fewest substitutions S, deletions D
# and insertions I that turn the hypothesis into the reference (the Levenshtein distance over words), divided by
# the number of reference words N: WER = (S + D + I) / N. Over a corpus, edits and reference words are summed
# before dividing (like BLEU's pooling). It can exceed 1 — insert enough words and the edits outnumber the
# reference. CER is the same over characters. The dynamic programme is ROUGE-L's LCS table with a cost instead of
# a length; walking back through it names the edits:

# %%
def align(hyp, ref):
    """Levenshtein table over words, then the edit script read back from the bottom-right cell."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(ref) + 1)] for i in range(len(hyp) + 1)]
    for i in range(1, len(hyp) + 1):
        for j in range(1, len(ref) + 1):
            d[i][j] = min(d[i - 1][j - 1] + (hyp[i - 1] != ref[j - 1]), d[i - 1][j] + 1, d[i][j - 1] + 1)
    i, j, script = len(hyp), len(ref), []
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (hyp[i - 1] != ref[j - 1]):
            script.append("=" if hyp[i - 1] == ref[j - 1] else f"S({hyp[i - 1]}→{ref[j - 1]})")
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            script.append(f"I({hyp[i - 1]})")  # a word the hypothesis has and the reference lacks
            i -= 1
        else:
            script.append(f"D({ref[j - 1]})")  # a reference word the hypothesis missed
            j -= 1
    return d[-1][-1], script[::-1]


ref_text, hyp_text = "move the red circle to the left", "move red circles to the left please"
edits_needed, script = align(hyp_text.split(), ref_text.split())
print(" ".join(script))
print(f"WER by hand {edits_needed}/{len(ref_text.split())} = {edits_needed / len(ref_text.split()):.3f}   "
      f"mmcourse {word_error_rate([hyp_text], [ref_text]):.3f}   "
      f"CER {char_error_rate([hyp_text], [ref_text]):.3f}")
assert edits_needed == edit_distance(hyp_text.split(), ref_text.split())

# %%
speech_refs = ["red circle left", "blue square up", "green triangle right down", "stop"]
speech_hyps = ["red circle left", "blue up up", "green triangle right", "stop go left now"]
ours = {"WER": word_error_rate(speech_hyps, speech_refs), "CER": char_error_rate(speech_hyps, speech_refs)}
if HAVE_TORCHMETRICS:
    from torchmetrics.functional.text import char_error_rate as tm_cer
    from torchmetrics.functional.text import word_error_rate as tm_wer

    theirs = {"WER": tm_wer(speech_hyps, speech_refs).item(), "CER": tm_cer(speech_hyps, speech_refs).item()}
    for k in ours:
        print(f"{k} ours {ours[k]:.6f}  torchmetrics {theirs[k]:.6f}")
    max_error["WER/CER vs torchmetrics"] = max(abs(ours[k] - theirs[k]) for k in ours)
else:
    print(ours)
per_utterance = [word_error_rate([h], [r]) for h, r in zip(speech_hyps, speech_refs)]
print("per-utterance WERs:", [round(w, 3) for w in per_utterance])
print("mean of per-utterance WERs instead (not the corpus WER):", round(statistics.mean(per_utterance), 3))

# %% [markdown]
# The last utterance has three insertions against a one-word reference: its own WER is 3.0. Pooled, it weighs by its
# length; averaged per utterance, it would dominate. Pooling is what speech papers (and torchmetrics) report.
#
# ## 7. The chapter's bar: every metric equals its reference implementation
#
# Every comparison above, in one number: the largest difference between `mmcourse.metrics` and pycocoevalcap
# (BLEU-1…4, ROUGE-L, CIDEr-D on 300 captions) and torchmetrics (MRR, MRR@10, R@1/5/10 on 300 queries; WER, CER).
# The official VQA accuracy was checked against the worked leave-one-out formula in section 3. The package's tests
# run the same comparisons on many more random corpora.

# %%
for name, err in max_error.items():
    print(f"{name:28s} max |difference| = {err:.1e}")
headline = "largest difference from reference implementations (BLEU, ROUGE-L, CIDEr-D, MRR, R@K, WER)"
record("03", headline, max(max_error.values()), bar=1e-6, higher_is_better=False) if max_error else print(
    "no reference implementation is installed: nothing was compared")

# %% [markdown]
# ## Summary
#
# - Retrieval metrics start from each query's rank in the **full** ranking: R@K = share of ranks ≤ K, MRR = mean
#   1/rank, MedR = median rank. MRR computed from the hits inside the top k is MRR@k — and averaged over the hits
#   only (as the study guide does) it can call a failing model perfect.
# - BLEU: clipped n-gram precisions, geometric mean, brevity penalty, pooled over the corpus. ROUGE-L: LCS
#   precision and recall, F with β = 1.2. CIDEr-D: tf-idf n-gram cosines with the idf of the evaluated references,
#   clipping and a Gaussian length penalty, ×10 — a corpus metric. Ours equal pycocoevalcap's; METEOR and SPICE need
#   coco-caption's Java tools.
# - The official VQA accuracy normalises answers and averages min(1, matches/3) over ten leave-one-out subsets:
#   0.3/0.6/0.9/1 for 1/2/3/4+ agreeing humans. `min(count/3, 1)` is too generous there and, without
#   normalisation, too harsh elsewhere.
# - CLIPScore = 2.5 · max(cos, 0) under a trained CLIP: reference-free, as good as its CLIP, good for ranking
#   captions of one image.
# - n-gram metrics punish synonyms, miss a flipped relation, and see a colour–shape binding only through adjacent
#   words; a small CLIP binds colours to shapes less surely than it names them, and barely reads word order. A check of what the caption asserts (SPICE's idea, or a
#   VQA model) catches these — report several metrics of different kinds, and look at examples.
#
# **Interview questions, answered from this notebook.**
# 1. *How do you evaluate an image–text retrieval model?* — R@1/5/10 in both directions and MedR/MRR from the full
#    ranking (section 1); know the ceiling (duplicate descriptions) before judging the numbers.
# 2. *Why CIDEr rather than BLEU for captions?* — it weights informative n-grams by idf over the references and
#    rewards consensus; CIDEr-D also clips and penalises length; but like BLEU it counts words, not facts (section 5).
# 3. *How is VQA accuracy computed, and why not exact match?* — section 3: humans disagree. After normalisation, each
#    subset of nine annotators gives min(1, matches / 3), averaged over the ten leave-one-out subsets: 1, 2, 3
#    agreeing annotators give 0.3, 0.6, 0.9, and full credit needs 4.
# 4. *What does CLIPScore measure, and when can it mislead?* — image–caption agreement under one CLIP; it inherits
#    that CLIP's blind spots (binding, word order) and its scale is model-specific (section 4).
#
# **Exercises**: `exercises/03_metrics.ipynb` — build corpus BLEU, CIDEr-D, the official VQA score and MRR, each
# checked against `mmcourse.metrics` (and against the usual mistakes: no brevity penalty, no clipping, idf from the
# hypotheses, `min(count/3, 1)`, MRR@k, ties in the model's favour); fix a tutorial's ROUGE-L; find two true captions
# that BLEU-4 and CIDEr-D rank in opposite orders; and three graded questions (VQA with twelve annotators, what
# MRR@10 says about MRR, torchmetrics and negative scores). **Next**: chapter 04 trains BLIP, a captioner we can
# finally score.
