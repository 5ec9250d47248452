"""Chapter 03 exercises: corpus BLEU, CIDEr-D, the official VQA score, MRR over the full ranking.

The caption exercises take tokenised captions (lists of lower-case words); the references below join them with
spaces and call `mmcourse.metrics`, whose tokenizer splits them back into the same words.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import torch

from mmcourse import metrics
from mmcourse.data import caption, corrupt_objects, sample_scenes
from mmcourse.grading.core import devices, expect_close, fail, register


def _joined(hypotheses, references):
    return [" ".join(h) for h in hypotheses], [[" ".join(r) for r in refs] for refs in references]


def _ngrams(tokens, k):
    return Counter(tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1))


def _world_corpus(seed: int, n_images: int, short: bool = False):
    """Tokenised captions of the shapes world: 2-5 paraphrased references per image; hypotheses that are a
    reference-like caption, a caption with a swapped attribute, a cut-short caption, or one with a word repeated.
    short=True cuts every hypothesis to 60% of its words (at least 4): the corpus is shorter than its references."""
    rng = random.Random(seed)
    scenes = sample_scenes(n_images, seed=seed, max_objects=2)
    hypotheses, references = [], []
    for i in range(n_images):
        objects = scenes.objects(i)
        references.append([metrics.tokenize(caption(objects, rng)) for _ in range(rng.randint(2, 5))])
        kind = i % 4
        described = corrupt_objects(objects, rng, "swap") if kind == 1 else objects
        hyp = metrics.tokenize(caption(described, rng))
        if kind == 2 or short:
            hyp = hyp[: max(4, int(0.6 * len(hyp)) if short else len(hyp) - 3)]  # too short: brevity penalty
        elif kind == 3:
            hyp = hyp + hyp[-2:] * 2  # repeated words: clipping must act
        hypotheses.append(hyp)
    return hypotheses, references


def _as_floats(got, what, n):
    try:
        values = [float(v) for v in got]
    except (TypeError, ValueError, RuntimeError):
        fail(f"{what}: expected a list of {n} floats (BLEU-1 … BLEU-{n})", f"{n} floats", got)
    if len(values) != n:
        fail(f"{what}: expected one score per n-gram order", f"{n} scores", f"{len(values)} scores")
    return values


# ---------------------------------------------------------------- 03.bleu
def bleu(hypotheses, references, max_n=4):
    """Reference: corpus BLEU-1 … BLEU-max_n of tokenised captions (coco-caption's Bleu scorer)."""
    return metrics.corpus_bleu(*_joined(hypotheses, references), max_n=max_n)


def _bleu_variant(hypotheses, references, max_n, clip=True, brevity=True, geometric=True, pooled=True):
    """Corpus BLEU with one ingredient switched off (the mutants below)."""
    matches, totals, c, r = [0] * max_n, [0] * max_n, 0, 0
    per_sentence = []
    for hyp, refs in zip(hypotheses, references):
        m, t = [0] * max_n, [0] * max_n
        for k in range(1, max_n + 1):
            counts = _ngrams(hyp, k)
            most = Counter()
            for ref in refs:
                most |= _ngrams(ref, k)
            m[k - 1] = sum(min(n, most[g]) if clip else n * (g in most) for g, n in counts.items())
            t[k - 1] = max(len(hyp) - k + 1, 0)
        closest = min((len(ref) for ref in refs), key=lambda length: (abs(length - len(hyp)), length))
        per_sentence.append((m, t, len(hyp), closest))
        matches = [a + b for a, b in zip(matches, m)]
        totals = [a + b for a, b in zip(totals, t)]
        c, r = c + len(hyp), r + closest

    def score(m, t, c, r):
        bp = math.exp(1 - r / c) if brevity and c < r else 1.0
        precisions = [mk / tk if tk else 0.0 for mk, tk in zip(m, t)]
        out = []
        for k in range(1, max_n + 1):
            p = precisions[:k]
            mean = math.prod(p) ** (1 / k) if geometric else sum(p) / k
            out.append(bp * mean)
        return out

    if pooled:
        return score(matches, totals, c, r)
    scores = [score(*s) for s in per_sentence]
    return [sum(s[k] for s in scores) / len(scores) for k in range(max_n)]


def _bleu_no_brevity_penalty(hypotheses, references, max_n=4):
    return _bleu_variant(hypotheses, references, max_n, brevity=False)


def _bleu_no_clipping(hypotheses, references, max_n=4):
    return _bleu_variant(hypotheses, references, max_n, clip=False)


def _bleu_arithmetic_mean(hypotheses, references, max_n=4):
    return _bleu_variant(hypotheses, references, max_n, geometric=False)


def _bleu_mean_of_sentences(hypotheses, references, max_n=4):
    return _bleu_variant(hypotheses, references, max_n, pooled=False)


@register("03.bleu", bleu,
          [_bleu_no_brevity_penalty, _bleu_no_clipping, _bleu_arithmetic_mean, _bleu_mean_of_sentences])
def _test_bleu(fn):
    hand = (  # one image; clipping: "red" twice in the hypothesis, once per reference
        [["a", "red", "red", "circle"]],
        [[["a", "red", "circle", "and", "a", "square"], ["a", "big", "red", "circle"]]],
    )
    tie = (  # references 4 and 8 words are equally close to 6: the shorter one counts, and c >= r: no penalty
        [["a", "small", "blue", "square", "on", "left"]],
        [[["a", "blue", "square", "on", "the", "left", "of", "it"], ["a", "small", "blue", "square"]]],
    )
    cases = [("a 1-image corpus", *hand, 4), ("equally close reference lengths", *tie, 2)]
    cases += [(f"a {n}-image corpus of the world (seed {s})", *_world_corpus(s, n), k)
              for s, n, k in [(0, 12, 4), (1, 30, 4), (2, 8, 2)]]
    cases.append(("a corpus of captions shorter than their references", *_world_corpus(7, 15, short=True), 4))
    for what, hypotheses, references, max_n in cases:
        want = bleu(hypotheses, references, max_n)
        got = _as_floats(fn(hypotheses, references, max_n), what, max_n)
        for k, (g, w) in enumerate(zip(got, want), start=1):
            if w < 1e-3 and abs(g) < 1e-3:
                continue  # no k-gram matched: 0, or coco-caption's tiny smoothed value, are both fine
            expect_close(g, w, f"{what}: BLEU-{k}",
                         "pool clipped matches and k-gram counts over the corpus; p_k = matches / counts; "
                         "BLEU-k = BP · (p_1 ⋯ p_k)^(1/k); BP = exp(1 − r/c) when c < r (r: closest reference "
                         "lengths, ties → shorter)", atol=1e-6, rtol=1e-6)
    return len(cases)


# ---------------------------------------------------------------- 03.cider_d
def cider_d(hypotheses, references, n=4, sigma=6.0):
    """Reference: corpus CIDEr-D of tokenised captions (coco-caption's Cider scorer)."""
    return metrics.cider_d(*_joined(hypotheses, references), n=n, sigma=sigma)


def _cider_variant(hypotheses, references, n, sigma, idf_from="references", df_per="image", clip=True,
                   length_penalty=True, scale=10.0):
    """Corpus CIDEr-D with one ingredient changed (the mutants below)."""
    documents = references if idf_from == "references" else [[h] for h in hypotheses]
    df = Counter()
    for refs in documents:
        grams = [{g for k in range(1, n + 1) for g in _ngrams(r, k)} for r in refs]
        if df_per == "image":
            df.update(set().union(*grams))
        else:
            for g in grams:
                df.update(g)
    log_n = math.log(len(documents))

    def vectors(tokens):
        return [{g: c * (log_n - math.log(max(1, df[g]))) for g, c in _ngrams(tokens, k).items()}
                for k in range(1, n + 1)]

    def cosine(h, r):
        norm = math.sqrt(sum(v * v for v in h.values())) * math.sqrt(sum(v * v for v in r.values()))
        dot = sum((min(v, r[g]) if clip else v) * r[g] for g, v in h.items() if g in r)
        return dot / norm if norm else 0.0

    scores = []
    for hyp, refs in zip(hypotheses, references):
        h, total = vectors(hyp), 0.0
        for ref in refs:
            penalty = math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma**2)) if length_penalty else 1.0
            total += penalty * sum(cosine(hk, rk) for hk, rk in zip(h, vectors(ref))) / n
        scores.append(scale * total / len(refs))
    return sum(scores) / len(scores)


def _cider_idf_from_hypotheses(hypotheses, references, n=4, sigma=6.0):
    return _cider_variant(hypotheses, references, n, sigma, idf_from="hypotheses")


def _cider_df_per_reference(hypotheses, references, n=4, sigma=6.0):
    return _cider_variant(hypotheses, references, n, sigma, df_per="reference")


def _cider_no_clipping(hypotheses, references, n=4, sigma=6.0):
    return _cider_variant(hypotheses, references, n, sigma, clip=False)


def _cider_no_length_penalty(hypotheses, references, n=4, sigma=6.0):
    return _cider_variant(hypotheses, references, n, sigma, length_penalty=False)


def _cider_no_times_ten(hypotheses, references, n=4, sigma=6.0):
    return _cider_variant(hypotheses, references, n, sigma, scale=1.0)


@register("03.cider_d", cider_d, [_cider_idf_from_hypotheses, _cider_df_per_reference, _cider_no_clipping,
                                  _cider_no_length_penalty, _cider_no_times_ten])
def _test_cider_d(fn):
    cases = [(f"a {size}-image corpus of the world (seed {s}), n={n}, sigma={sigma}", *_world_corpus(s, size), n,
              sigma) for s, size, n, sigma in [(3, 12, 4, 6.0), (4, 40, 4, 6.0), (5, 10, 2, 3.0)]]
    hypotheses, references = _world_corpus(6, 1)
    cases.append(("a 1-image corpus (every idf is log(1/1) = 0)", hypotheses, references, 4, 6.0))
    for what, hypotheses, references, n, sigma in cases:
        expect_close(fn(hypotheses, references, n, sigma), cider_d(hypotheses, references, n, sigma), what,
                     "idf = log(N images / #images whose references contain the n-gram); tf-idf per order; "
                     "cosine with the hypothesis clipped at the reference, × Gaussian length penalty, "
                     "mean over orders and references, × 10", atol=1e-6, rtol=1e-6)
    return len(cases)


# ---------------------------------------------------------------- 03.vqa_score
def vqa_score(prediction, answers):
    """Reference: the official VQA accuracy of one prediction against (already normalised) human answers."""
    return metrics.vqa_score(prediction, answers)


def _vqa_min_count_over_3(prediction, answers):  # the study guide's min(count/3, 1), with normalisation
    return min(answers.count(metrics.normalize_answer(prediction)) / 3, 1.0)


def _vqa_not_normalised(prediction, answers):
    matches = [a == prediction for a in answers]
    return sum(min(1.0, (sum(matches) - own) / 3) for own in matches) / len(answers)


def _vqa_lowercase_only(prediction, answers):
    prediction = prediction.lower().strip(" .!?")
    matches = [a == prediction for a in answers]
    return sum(min(1.0, (sum(matches) - own) / 3) for own in matches) / len(answers)


def _vqa_divides_by_ten(prediction, answers):
    prediction = metrics.normalize_answer(prediction)
    matches = [a == prediction for a in answers]
    return sum(min(1.0, (sum(matches) - own) / 3) for own in matches) / 10


@register("03.vqa_score", vqa_score,
          [_vqa_min_count_over_3, _vqa_not_normalised, _vqa_lowercase_only, _vqa_divides_by_ten])
def _test_vqa_score(fn):
    n = 0
    for m in range(11):  # m of ten annotators give the answer
        answers = ["2"] * m + ["3"] * (10 - m)
        random.Random(m).shuffle(answers)
        expect_close(fn("2", answers), vqa_score("2", answers), f"{m} of 10 annotators agree with the prediction",
                     "average over the 10 leave-one-annotator-out subsets of min(1, matches among the other 9 / 3)")
        n += 1
    cases = [
        ("Two", ["2"] * 3 + ["1"] * 7),
        ("The circle.", ["circle"] * 2 + ["square"] * 5 + ["disk"] * 3),
        ("Yes!", ["yes"] * 4 + ["no"] * 6),
        ("a red one", ["red"] * 6 + ["red one"] * 4),
        ("left", ["left"] * 2 + ["right"] * 10),  # 12 annotators: average over all 12 subsets
        ("blue", ["blue"] * 5 + ["green"] * 10),
    ]
    for prediction, answers in cases:
        expect_close(fn(prediction, answers), vqa_score(prediction, answers),
                     f"prediction {prediction!r} vs {len(answers)} answers {dict(Counter(answers))}",
                     "normalise the prediction with normalize_answer first; average over one subset per annotator")
        n += 1
    return n


# ---------------------------------------------------------------- 03.mrr
def mean_reciprocal_rank(similarity, relevant):
    """Reference: mean over queries of 1 / (rank of the best-ranked relevant item in the full ranking)."""
    return metrics.mean_reciprocal_rank(similarity, relevant)


def _ranks_of_hits(similarity, relevant, k):
    top = similarity.topk(min(k, similarity.shape[1]), dim=1).indices
    hit = relevant.gather(1, top)
    first = hit.float().argmax(1)
    return hit.any(1), first + 1


def _mrr_at_10(similarity, relevant):
    found, rank = _ranks_of_hits(similarity, relevant, 10)
    return torch.where(found, 1.0 / rank, torch.zeros_like(rank, dtype=torch.float)).mean().item()


def _mrr_seed_style(similarity, relevant):  # the study guide's MRR: hits in the top 10 only, averaged over the hits
    found, rank = _ranks_of_hits(similarity, relevant, 10)
    return (1.0 / rank[found].float()).mean().item() if found.any() else 0.0


def _mrr_first_listed_relevant(similarity, relevant):  # the rank of the first relevant *column*, not the best
    target = relevant.float().argmax(1, keepdim=True)
    rank = 1 + (similarity > similarity.gather(1, target)).sum(1)
    return (1.0 / rank.double()).mean().item()


def _mrr_inverse_mean_rank(similarity, relevant):
    best = similarity.masked_fill(~relevant, float("-inf")).amax(1, keepdim=True)
    rank = 1 + ((similarity >= best) & ~relevant).sum(1)
    return 1.0 / rank.double().mean().item()


@register("03.mrr", mean_reciprocal_rank,
          [_mrr_at_10, _mrr_seed_style, _mrr_first_listed_relevant, _mrr_inverse_mean_rank])
def _test_mrr(fn):
    g = torch.Generator().manual_seed(3)
    n = 0
    for device in devices():
        for queries, items, per_query in [(40, 60, 1), (30, 80, 3), (1, 5, 1), (6, 1, 1), (25, 25, 5)]:
            relevant = torch.zeros(queries, items, dtype=torch.bool)
            for q in range(queries):
                relevant[q, torch.randperm(items, generator=g)[:min(per_query, items)]] = True
            # weakly informative float64 scores: no ties, ranks spread from 1 to beyond 10
            similarity = torch.randn(queries, items, generator=g, dtype=torch.float64) + 0.8 * relevant
            dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
            similarity, relevant = similarity.to(device, dtype), relevant.to(device)
            what = f"similarity {(queries, items)} with {min(per_query, items)} relevant item(s) per query"
            if device.type != "cpu":
                what += f" on {device.type}"
            expect_close(fn(similarity, relevant), mean_reciprocal_rank(similarity, relevant), what,
                         "rank = 1 + number of irrelevant items scoring ≥ the best relevant one, over ALL items "
                         "(no top-k cut); MRR = mean over every query of 1 / rank", atol=1e-6, rtol=1e-6)
            n += 1
    return n
