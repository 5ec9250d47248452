"""Chapter 03 exercises: corpus BLEU, ROUGE-L (fix), CIDEr-D, BLEU vs CIDEr-D (experiment), the official VQA score,
MRR over the full ranking, and three graded questions.

The caption exercises take tokenised captions (lists of lower-case words); the references below join them with
spaces and call `mmcourse.metrics`, whose tokenizer splits them back into the same words. Every mutant's docstring
names its mistake: a learner's answer that behaves like one is told which mistake it looks like.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections import Counter

import torch

from mmcourse import metrics
from mmcourse.data import COLOUR_NAMES, SHAPES, CaptionDataset, caption, corrupt_objects, relation, sample_scenes
from mmcourse.data.text import LIST, NUMBER_WORDS, RELATIONAL, RELATIONS, SHAPE_SYNONYMS, SIZE_SYNONYMS
from mmcourse.grading.core import (
    NotImplementedYet,
    devices,
    expect_close,
    fail,
    register,
    register_quiz,
)


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


def _bleu_variant(hypotheses, references, max_n, clip="max", brevity=True, geometric=True, pooled=True,
                  tie="shorter"):
    """Corpus BLEU with one ingredient changed (the mutants below)."""
    matches, totals, c, r = [0] * max_n, [0] * max_n, 0, 0
    per_sentence = []
    for hyp, refs in zip(hypotheses, references):
        m, t = [0] * max_n, [0] * max_n
        for k in range(1, max_n + 1):
            counts = _ngrams(hyp, k)
            most = Counter()
            for ref in refs:
                most = most | _ngrams(ref, k) if clip == "max" else most + _ngrams(ref, k)
            m[k - 1] = sum(min(n, most[g]) if clip else n * (g in most) for g, n in counts.items())
            t[k - 1] = max(len(hyp) - k + 1, 0)
        sign = 1 if tie == "shorter" else -1
        closest = min((len(ref) for ref in refs), key=lambda length: (abs(length - len(hyp)), sign * length))
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
    """no brevity penalty: a short caption of correct words scores as if it were complete"""
    return _bleu_variant(hypotheses, references, max_n, brevity=False)


def _bleu_no_clipping(hypotheses, references, max_n=4):
    """no clipping: a k-gram repeated in the hypothesis counts every time, however often the references have it"""
    return _bleu_variant(hypotheses, references, max_n, clip=None)


def _bleu_clip_at_sum_over_references(hypotheses, references, max_n=4):
    """clipping at the k-gram's count summed over all references instead of its largest count in any one"""
    return _bleu_variant(hypotheses, references, max_n, clip="sum")


def _bleu_arithmetic_mean(hypotheses, references, max_n=4):
    """the arithmetic mean of the precisions instead of their geometric mean"""
    return _bleu_variant(hypotheses, references, max_n, geometric=False)


def _bleu_mean_of_sentences(hypotheses, references, max_n=4):
    """the mean of per-caption BLEU scores instead of pooling the counts over the corpus"""
    return _bleu_variant(hypotheses, references, max_n, pooled=False)


def _bleu_tie_takes_longer_reference(hypotheses, references, max_n=4):
    """when two reference lengths are equally close to the hypothesis', r takes the longer one (not the shorter)"""
    return _bleu_variant(hypotheses, references, max_n, tie="longer")


@register("03.bleu", bleu,
          [_bleu_no_brevity_penalty, _bleu_no_clipping, _bleu_clip_at_sum_over_references, _bleu_arithmetic_mean,
           _bleu_mean_of_sentences, _bleu_tie_takes_longer_reference])
def _test_bleu(fn):
    hand = (  # one image; clipping: "red" three times in the hypothesis, once in each reference (max 1, sum 2)
        [["a", "red", "red", "red", "circle"]],
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


# ---------------------------------------------------------------- 03.rouge_l (fix)
def rouge_l(hypothesis, references, beta=1.2):
    """Reference: ROUGE-L of one tokenised caption, F_beta of the best LCS precision and the best LCS recall."""
    return metrics.sentence_rouge_l(" ".join(hypothesis), [" ".join(r) for r in references], beta=beta)


def _rouge_variant(hypothesis, references, beta, lcs="subsequence", combine="best P, best R"):
    def length(a, b):
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                if a[i - 1] == b[j - 1]:
                    table[i][j] = table[i - 1][j - 1] + 1
                elif lcs == "subsequence":
                    table[i][j] = max(table[i - 1][j], table[i][j - 1])
        return max(max(row) for row in table)

    def f(p, r):
        return (1 + beta**2) * p * r / (r + beta**2 * p) if p and r else 0.0

    if not hypothesis:
        return 0.0
    lengths = [length(hypothesis, ref) for ref in references]
    ps = [n / len(hypothesis) for n in lengths]
    rs = [n / len(ref) for n, ref in zip(lengths, references)]
    if combine == "best P, best R":
        return f(max(ps), max(rs))
    fs = [f(p, r) for p, r in zip(ps, rs)]
    return max(fs) if combine == "best F" else sum(fs) / len(fs)


def _rouge_common_substring(hypothesis, references, beta=1.2):
    """the code as given: on a mismatch its table restarts at 0, so it measures the longest run of *consecutive*
    shared words (a common substring), not the longest common subsequence"""
    return _rouge_variant(hypothesis, references, beta, lcs="substring")


def _rouge_mean_f_over_references(hypothesis, references, beta=1.2):
    """an F-score per reference, averaged, instead of F of the best precision and the best recall"""
    return _rouge_variant(hypothesis, references, beta, combine="mean F")


def _rouge_best_f_over_references(hypothesis, references, beta=1.2):
    """the best per-reference F-score instead of F of the best precision and the best recall (taken separately)"""
    return _rouge_variant(hypothesis, references, beta, combine="best F")


def _rouge_f1(hypothesis, references, beta=1.2):
    """beta ignored: the plain F1 (torchmetrics' ROUGE-L), not coco-caption's F with beta = 1.2"""
    return _rouge_variant(hypothesis, references, 1.0)


def _rouge_hand_cases():
    w = str.split
    return [
        ("words shared out of order and with gaps", w("a red circle is left of a blue square"),
         [w("a red circle left of a big blue square")], 1.2),
        ("best precision and best recall from different references", w("a red circle above a blue square"),
         [w("a red circle"), w("there is a small red circle above a big blue square on a dark background")], 1.2),
        ("no word in common", w("two shapes"), [w("a red circle"), w("a blue square")], 1.2),
        ("beta = 1 (the plain F1)", w("a small green box under a red disk"),
         [w("a red circle above a small green square"), w("a green square under a red circle")], 1.0),
    ]


@register("03.rouge_l", rouge_l, [_rouge_common_substring, _rouge_mean_f_over_references,
                                  _rouge_best_f_over_references, _rouge_f1])
def _test_rouge_l(fn):
    cases = [(f"{what}: {' '.join(h)!r} vs {[' '.join(r) for r in refs]}", h, refs, beta)
             for what, h, refs, beta in _rouge_hand_cases()]
    hypotheses, references = _world_corpus(8, 16)
    cases += [(f"caption {i} of a world corpus: {' '.join(h)!r}", h, refs, 1.2)
              for i, (h, refs) in enumerate(zip(hypotheses, references))]
    for what, hypothesis, refs, beta in cases:
        expect_close(fn(hypothesis, refs, beta), rouge_l(hypothesis, refs, beta), what,
                     "LCS(i, j) = LCS(i−1, j−1) + 1 on a match, else max(LCS(i−1, j), LCS(i, j−1)); "
                     "P = best LCS / len(hyp), R = best LCS / len(ref) over the references; "
                     "F = (1 + β²) P R / (R + β² P)", atol=1e-9, rtol=1e-9)
    return len(cases)


# ---------------------------------------------------------------- 03.cider_d
def cider_d(hypotheses, references, n=4, sigma=6.0):
    """Reference: corpus CIDEr-D of tokenised captions (coco-caption's Cider scorer)."""
    return metrics.cider_d(*_joined(hypotheses, references), n=n, sigma=sigma)


def _cider_variant(hypotheses, references, n, sigma, idf_from="references", df_per="image", clip=True,
                   clipped_norm=False, length_penalty=True, scale=10.0):
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
        if clip and clipped_norm:
            h = {g: min(v, r.get(g, 0.0)) for g, v in h.items()}
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
    """the idf computed from the hypotheses instead of from the references of the evaluated corpus"""
    return _cider_variant(hypotheses, references, n, sigma, idf_from="hypotheses")


def _cider_df_per_reference(hypotheses, references, n=4, sigma=6.0):
    """df counts every reference containing the n-gram, not every image (an image must count once)"""
    return _cider_variant(hypotheses, references, n, sigma, df_per="reference")


def _cider_no_clipping(hypotheses, references, n=4, sigma=6.0):
    """no clipping: the hypothesis' tf-idf is not capped at the reference's, so repeated words pay"""
    return _cider_variant(hypotheses, references, n, sigma, clip=False)


def _cider_clipped_norm(hypotheses, references, n=4, sigma=6.0):
    """the norm of the *clipped* hypothesis vector in the denominator (the norms must be the unclipped ones)"""
    return _cider_variant(hypotheses, references, n, sigma, clipped_norm=True)


def _cider_no_length_penalty(hypotheses, references, n=4, sigma=6.0):
    """no Gaussian length penalty"""
    return _cider_variant(hypotheses, references, n, sigma, length_penalty=False)


def _cider_no_times_ten(hypotheses, references, n=4, sigma=6.0):
    """the final × 10 is missing"""
    return _cider_variant(hypotheses, references, n, sigma, scale=1.0)


@register("03.cider_d", cider_d, [_cider_idf_from_hypotheses, _cider_df_per_reference, _cider_no_clipping,
                                  _cider_clipped_norm, _cider_no_length_penalty, _cider_no_times_ten])
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


# ---------------------------------------------------------------- 03.bleu_vs_cider (experiment)
EXPERIMENT_SCENE = 0  # the scene of the lecture's section 5: scene 0 of the 300-scene corpus below
BLEU_MARGIN, CIDER_MARGIN = 0.05, 1.0
_SIZE_WORDS = {s: s for s in SIZE_SYNONYMS} | {w: s for s, words in SIZE_SYNONYMS.items() for w in words}
_SHAPE_WORDS = {s: s for s in SHAPES} | {w: s for s, words in SHAPE_SYNONYMS.items() for w in words}
_RELATION_WORDS = {p: r for r, phrases in RELATIONS.items() for p in phrases}
_OBJECT = (rf"(?:({'|'.join(_SIZE_WORDS)}) )?(?:({'|'.join(COLOUR_NAMES)}) )?"
           rf"({'|'.join(sorted(_SHAPE_WORDS, key=len, reverse=True))})")
_STATED_OBJECT = re.compile(rf"\b{_OBJECT}\b")
_STATED_RELATION = re.compile(rf"\b{_OBJECT} (?:is )?({'|'.join(_RELATION_WORDS)}) (?:an? |the )?{_OBJECT}\b")
_RELATION_WORD = re.compile(r"\b(left|right|above|below|over|under)\b")
_CAPTION_WORDS = frozenset(
    w for t in (*LIST, *RELATIONAL, "two shapes: {}", *_RELATION_WORDS, *_SIZE_WORDS, *COLOUR_NAMES, *_SHAPE_WORDS,
                "a an and is photo of")
    for w in metrics.tokenize(re.sub(r"\{[^}]*\}", " ", t)))


@functools.lru_cache(maxsize=1)
def experiment_corpus():
    """(objects of the scene, its five references, the reference sets of all 300 scenes, for the idf)."""
    corpus = CaptionDataset(300, seed=3, max_objects=2, captions_per_image=5)
    return corpus.objects[EXPERIMENT_SCENE], corpus.references[EXPERIMENT_SCENE], corpus.references


def experiment_scores(text: str) -> dict[str, float]:
    """BLEU-4 and CIDEr-D of a caption of the experiment's scene (CIDEr-D with the idf of the 300 scenes)."""
    _, refs, corpus_refs = experiment_corpus()
    return {"BLEU-4": metrics.sentence_bleu(text, refs)[3],
            "CIDEr-D": metrics.sentence_cider_d(text, refs, corpus_refs)}


def caption_falsehoods(text: str, objects: list[dict]) -> list[str]:
    """What a caption says that the scene contradicts (empty: the caption is true), read with the world's templates:
    words outside the captions' vocabulary, named objects (size, colour, shape; synonyms allowed) not in the scene,
    relations that do not hold, a wrong object count."""
    words = metrics.tokenize(text)
    problems = [f"{w!r} is not a word of the world's captions" for w in dict.fromkeys(words) if w not in _CAPTION_WORDS]
    text = " ".join(words)

    def matching(size, colour, shape):
        return [o for o in objects if (not size or o["size"] == _SIZE_WORDS[size])
                and (not colour or o["colour"] == colour) and o["shape"] == _SHAPE_WORDS[shape]]

    for size, colour, shape in _STATED_OBJECT.findall(text):
        if not matching(size, colour, shape):
            problems.append(f"there is no {' '.join(w for w in (size, colour, shape) if w)} in the scene")
    relations = _STATED_RELATION.findall(text)
    for s1, c1, h1, rel, s2, c2, h2 in relations:
        said = _RELATION_WORDS[rel]
        if not any(a is not b and relation(a, b) == said
                   for a in matching(s1, c1, h1) for b in matching(s2, c2, h2)):
            problems.append(f"{' '.join(w for w in (s1, c1, h1) if w)} is not {rel} "
                            f"the {' '.join(w for w in (s2, c2, h2) if w)}")
    if len(_RELATION_WORD.findall(text)) > len(relations):
        problems.append("a relation word that is not part of 'object relation object'")
    for number in re.findall(rf"\b({'|'.join(NUMBER_WORDS)}) shapes\b", text):
        if NUMBER_WORDS.index(number) != len(objects):
            problems.append(f"the scene has {len(objects)} shapes, not {number}")
    return problems


def _test_bleu_vs_cider(answer):
    if answer is Ellipsis or (isinstance(answer, tuple) and Ellipsis in answer):
        raise NotImplementedYet("… 03.bleu_vs_cider: not answered yet — replace the `...` in the cell above with "
                                "your two captions")
    if not (isinstance(answer, tuple) and len(answer) == 2 and all(isinstance(t, str) for t in answer)):
        fail("expected a pair of captions (bleu_prefers, cider_prefers)", "two strings", answer)
    objects, _, _ = experiment_corpus()
    for name, text in zip(("bleu_prefers", "cider_prefers"), answer):
        if not 4 <= len(metrics.tokenize(text)) <= 16:
            fail(f"{name} = {text!r}: a caption of 4 to 16 words, please", "4-16 words",
                 f"{len(metrics.tokenize(text))} words")
        problems = caption_falsehoods(text, objects)
        if problems:
            fail(f"{name} = {text!r} is not a true caption of the scene: {'; '.join(problems)}",
                 hint="both captions must be true: name only objects of the scene (size, colour and shape words "
                      "may be left out), with a relation that holds")
    a, b = (experiment_scores(t) for t in answer)
    measured = (f"BLEU-4 {a['BLEU-4']:.3f} vs {b['BLEU-4']:.3f}, CIDEr-D {a['CIDEr-D']:.3f} vs {b['CIDEr-D']:.3f}")
    if a["BLEU-4"] < b["BLEU-4"] + BLEU_MARGIN:
        fail(f"BLEU-4 must prefer bleu_prefers by at least {BLEU_MARGIN} ({measured})",
             f"BLEU-4 ≥ {b['BLEU-4'] + BLEU_MARGIN:.3f}", f"{a['BLEU-4']:.3f}",
             "BLEU counts every matching 4-gram alike, however common: which 4-grams do most references share?")
    if b["CIDEr-D"] < a["CIDEr-D"] + CIDER_MARGIN:
        fail(f"CIDEr-D must prefer cider_prefers by at least {CIDER_MARGIN} ({measured})",
             f"CIDEr-D ≥ {a['CIDEr-D'] + CIDER_MARGIN:.3f}", f"{b['CIDEr-D']:.3f}",
             "CIDEr-D weighs each n-gram by its idf: frame words every caption has weigh ~0, the scene's own "
             "colour–shape n-grams a lot")
    return 1


_EXPERIMENT_ANSWER = ("an image of a large triangle and a small square",
                      "a small green square under a large cyan triangle")
register("03.bleu_vs_cider", _EXPERIMENT_ANSWER, [
    ("an image of a large cyan square and a small green triangle",  # high BLEU-4, but false
     "a small green square under a large cyan triangle"),
    ("a small green square under a large cyan triangle",  # the right pair, swapped
     "an image of a large triangle and a small square"),
    ("a large cyan triangle and a small green square",  # both metrics prefer the first
     "a cyan triangle above a green square"),
], kind="quiz", summary="two true captions of one scene: BLEU-4 prefers the first, CIDEr-D the second",
   explanation="The frame 'an image of a …' is in most references of this scene, so its 4-grams lift BLEU-4; but "
   "it is in the references of many other scenes too, so its idf is near 0 and CIDEr-D ignores it. The informative "
   "n-grams ('cyan triangle', 'small green square') are rare in the corpus and carry CIDEr-D. Two true captions, "
   "two rankings: which metric you report decides which captioner 'wins'.")(_test_bleu_vs_cider)


# ---------------------------------------------------------------- 03.vqa_score
def vqa_score(prediction, answers):
    """Reference: the official VQA accuracy of one prediction against (already normalised) human answers."""
    return metrics.vqa_score(prediction, answers)


# (prediction as a model writes it, human answers as the dataset ships them: already normalised)
VQA_CASES = [
    ("Yes!", ["yes"] * 4 + ["no"] * 6),
    ("Two", ["2"] * 3 + ["1"] * 7),
    ("The circle.", ["circle"] * 2 + ["square"] * 5 + ["disk"] * 3),
    ("Two circles.", ["2 circles"] * 2 + ["2"] * 8),
    ("left", ["left"] * 2 + ["right"] * 10),  # 12 annotators: average over all 12 subsets
    ("blue", ["blue"] * 5 + ["green"] * 10),
]


def _vqa_min_count_over_3(prediction, answers):
    """min(count / 3, 1), the formula a common tutorial snippet uses: no leave-one-annotator-out average"""
    return min(answers.count(metrics.normalize_answer(prediction)) / 3, 1.0)


def _vqa_not_normalised(prediction, answers):
    """the prediction is compared as written, without normalize_answer ("Two" never matches "2")"""
    matches = [a == prediction for a in answers]
    return sum(min(1.0, (sum(matches) - own) / 3) for own in matches) / len(answers)


def _vqa_lowercase_only(prediction, answers):
    """only lower-casing and stripping punctuation at the ends instead of normalize_answer (no number words,
    no articles)"""
    prediction = prediction.lower().strip(" .!?")
    matches = [a == prediction for a in answers]
    return sum(min(1.0, (sum(matches) - own) / 3) for own in matches) / len(answers)


def _vqa_divides_by_ten(prediction, answers):
    """divides by 10 instead of by the number of annotators (one subset per annotator)"""
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
    for prediction, answers in VQA_CASES:
        expect_close(fn(prediction, list(answers)), vqa_score(prediction, answers),
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
    """MRR@10: ranks from the top 10 only, a miss counts 0 (MRR needs the rank in the full ranking)"""
    found, rank = _ranks_of_hits(similarity, relevant, 10)
    return torch.where(found, 1.0 / rank, torch.zeros_like(rank, dtype=torch.float)).mean().item()


def _mrr_guide_style(similarity, relevant):
    """ranks of the hits inside the top 10, averaged over the queries that hit (the misses vanish)"""
    found, rank = _ranks_of_hits(similarity, relevant, 10)
    return (1.0 / rank[found].float()).mean().item() if found.any() else 0.0


def _mrr_first_listed_relevant(similarity, relevant):
    """the rank of the first relevant *column* of each row, not of the best-scoring relevant item"""
    target = relevant.float().argmax(1, keepdim=True)
    rank = 1 + (similarity > similarity.gather(1, target)).sum(1)
    return (1.0 / rank.double()).mean().item()


def _mrr_inverse_mean_rank(similarity, relevant):
    """1 / (mean rank) instead of the mean of 1 / rank"""
    best = similarity.masked_fill(~relevant, float("-inf")).amax(1, keepdim=True)
    rank = 1 + ((similarity >= best) & ~relevant).sum(1)
    return 1.0 / rank.double().mean().item()


def _mrr_optimistic_ties(similarity, relevant):
    """ties counted in the query's favour: only irrelevant items scoring strictly higher push the rank down"""
    best = similarity.masked_fill(~relevant, float("-inf")).amax(1, keepdim=True)
    rank = 1 + ((similarity > best) & ~relevant).sum(1)
    return (1.0 / rank.double()).mean().item()


def _mrr_ties_by_position(similarity, relevant):
    """ranks read from a sort: ties are broken by item position instead of counting against the query"""
    order = similarity.argsort(dim=1, descending=True, stable=True)
    rank = relevant.gather(1, order).float().argmax(1) + 1
    return (1.0 / rank.double()).mean().item()


def _tie_cases(g):
    """(what, similarity, relevant): scores with many exact ties between relevant and irrelevant items."""
    hand = torch.tensor([[0.5, 0.5, 0.5, 0.1], [0.2, 0.9, 0.9, 0.9], [0.3, 0.3, 0.3, 0.3]], dtype=torch.float64)
    hand_relevant = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    scores = torch.randint(0, 4, (30, 12), generator=g).double()  # 4 distinct values: ties everywhere
    relevant = torch.zeros(30, 12, dtype=torch.bool)
    relevant[torch.arange(30), torch.randint(0, 12, (30,), generator=g)] = True
    return [("tied scores: [0.5, 0.5, 0.5, 0.1] with item 0 relevant, ranks 3 / 3 / 3 (ties count against the "
             "query)", hand, hand_relevant),
            ("integer scores 0-3 (many ties) with one relevant item per query", scores, relevant)]


@register("03.mrr", mean_reciprocal_rank,
          [_mrr_at_10, _mrr_guide_style, _mrr_first_listed_relevant, _mrr_inverse_mean_rank, _mrr_optimistic_ties,
           _mrr_ties_by_position])
def _test_mrr(fn):
    g = torch.Generator().manual_seed(3)
    n = 0
    for device in devices():
        cases = []
        for queries, items, per_query in [(40, 60, 1), (30, 80, 3), (1, 5, 1), (6, 1, 1), (25, 25, 5)]:
            relevant = torch.zeros(queries, items, dtype=torch.bool)
            for q in range(queries):
                relevant[q, torch.randperm(items, generator=g)[:min(per_query, items)]] = True
            # weakly informative float64 scores: no ties, ranks spread from 1 to beyond 10
            similarity = torch.randn(queries, items, generator=g, dtype=torch.float64) + 0.8 * relevant
            what = f"similarity {(queries, items)} with {min(per_query, items)} relevant item(s) per query"
            cases.append((what, similarity, relevant))
        cases += _tie_cases(g)
        for what, similarity, relevant in cases:
            dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
            similarity, relevant = similarity.to(device, dtype), relevant.to(device)
            if device.type != "cpu":
                what += f" on {device.type}"
            expect_close(fn(similarity, relevant), mean_reciprocal_rank(similarity, relevant), what,
                         "rank = 1 + number of irrelevant items scoring ≥ the best relevant one, over ALL items "
                         "(no top-k cut, ties count against the query); MRR = mean over every query of 1 / rank",
                         atol=1e-6, rtol=1e-6)
            n += 1
    return n


# ---------------------------------------------------------------- graded questions
register_quiz(
    "03.quiz_vqa_twelve",
    "A question has 12 human answers (not 10); 3 of them equal the normalised prediction. What is its official "
    "VQA accuracy? (a number, to 3 decimals)",
    11 / 12,
    "11/12 ≈ 0.917: one subset per annotator. The 3 subsets that leave out a matching annotator keep 2 matches "
    "(2/3 each); the 9 that leave out another annotator keep all 3 (1 each): (3 · 2/3 + 9 · 1) / 12.",
    tolerance=0.002,
    wrong={1.0: "That is min(count/3, 1): it skips the leave-one-annotator-out average.",
           0.9: "0.9 is the value for ten annotators. With twelve, 9 of the 12 subsets leave out an annotator "
                "who did not give the answer and keep all three matches.",
           2 / 3: "2/3 is the score of one subset that leaves out a matching annotator; average over all twelve."},
)

register_quiz(
    "03.quiz_mrr_at_10",
    "A retrieval model's MRR@10 is 0.400 (misses count 0). What can you say about its MRR over the full ranking?",
    "b",
    "A query whose relevant item is in the top 10 adds the same 1/rank to both; a miss adds 0 to MRR@10 and "
    "1/rank ≤ 1/11 to MRR. So MRR ≥ MRR@10, and MRR − MRR@10 ≤ (share of misses) / 11 < 1/11.",
    choices={"a": "it is exactly 0.400", "b": "it is at least 0.400 and less than 0.400 + 1/11 ≈ 0.491",
             "c": "it is at most 0.400", "d": "nothing: it can be anywhere in [0, 1]"},
    wrong={"a": "Only if every query finds its item in the top 10: each miss adds 1/rank > 0 to MRR.",
           "c": "MRR@10 counts a miss as 0 and MRR as 1/rank > 0: MRR is never the smaller one.",
           "d": "A miss has rank ≥ 11, so it adds at most 1/11 to MRR: the gap is bounded."},
)

register_quiz(
    "03.quiz_torchmetrics_negative_scores",
    "You pass raw cosine similarities, some of them negative (including some relevant items' scores), to "
    "torchmetrics' RetrievalMRR and RetrievalHitRate(top_k=5), on scores without ties. Which of the two can "
    "disagree with mmcourse.metrics?",
    "b",
    "RetrievalMRR (like RetrievalMAP, RetrievalPrecision and RetrievalRecall) first sets `target` to False wherever "
    "`preds <= 0`: a relevant item with a negative score counts as a miss. RetrievalHitRate ranks every item as "
    "given. Shift the scores to be positive (s − min + 1) before using torchmetrics.",
    choices={"a": "both", "b": "only RetrievalMRR", "c": "only RetrievalHitRate", "d": "neither"},
    wrong={"a": "RetrievalHitRate does not look at the sign of the scores: it only sorts them.",
           "c": "RetrievalHitRate only sorts; the sign rule is in RetrievalMRR (and MAP, precision, recall).",
           "d": "Read torchmetrics/functional/retrieval/reciprocal_rank.py: `torch.where(preds > 0, target, 0)`."},
)
