"""Caption metrics as the COCO caption evaluation (coco-caption / pycocoevalcap) computes them.

Inputs are raw strings: `hypotheses` (one generated caption per image) and `references` (a list of
human captions per image). Every string goes through `tokenize`: lower-case, then the runs of letters and
digits (regex \\w+) are the tokens, so punctuation and whitespace both separate words ("A dog's toy." ->
a, dog, s, toy). coco-caption uses the Stanford PTB tokenizer (Java) instead; on text that is already
tokenised the scores below equal pycocoevalcap's to ~1e-12.

A hypothesis may be empty (every metric then gives it 0, as coco-caption does); a reference may not.

BLEU-n (Papineni et al. 2002), corpus level:
    p_k  = sum over captions of clipped matching k-grams / sum of hypothesis k-grams
           (clipped: a k-gram counts at most as often as it occurs in any single reference)
    BP   = exp(1 - r / c) if c < r else 1;  c = total hypothesis length, r = sum over captions of the
           reference length closest to the hypothesis length (ties -> the shorter reference)
    BLEU-n = BP * (p_1 * ... * p_n) ** (1 / n)
  coco-caption adds 1e-15 to every numerator and 1e-9 to every denominator, so that a precision of 0 gives
  a tiny positive BLEU instead of log(0); we keep them to match it. torchmetrics' BLEUScore computes the
  same corpus BLEU, except that (1) it returns exactly 0 when some order has no match, (2) it breaks ties
  between equally close reference lengths by taking the first reference, and (3) it splits on whitespace
  only, without lower-casing.

ROUGE-L (Lin 2004) with beta = 1.2, per caption then averaged over the corpus:
    P = max over refs of LCS / len(hyp),  R = max over refs of LCS / len(ref)   (each maximised separately)
    ROUGE-L = (1 + beta^2) P R / (R + beta^2 P)   (torchmetrics' ROUGEScore uses beta = 1, the F1)

CIDEr-D (Vedantam et al. 2015), n = 4, sigma = 6:
    g_k(s) = tf-idf vector of the k-grams of s: count * log(N / max(1, df)), where df = number of images
             whose reference set contains the k-gram and N = number of images in the evaluated corpus
    CIDEr-D(c, S) = 10 / |S| * sum over refs s of 1/n sum_k
                    <min(g_k(c), g_k(s)), g_k(s)> / (|g_k(c)| |g_k(s)|) * exp(-(l_c - l_s)^2 / (2 sigma^2))
  (the min clips the hypothesis' tf-idf at the reference's, so repeating a word does not pay; l = length in
  words.) The idf comes from the *corpus*: a single caption scored against its own references alone has
  N = df = 1 for every reference n-gram, every weight log(1/1) = 0, and CIDEr-D 0. `sentence_cider_d`
  therefore takes the corpus' reference sets to compute the idf, and scores one caption as if it were part
  of that corpus.

METEOR and SPICE are not implemented. METEOR aligns hypothesis and reference words through exact matches,
stems, WordNet synonyms and paraphrase tables, and scores an F-mean with a fragmentation penalty; SPICE parses
captions into scene graphs (objects, attributes, relations) and scores the F1 of matching tuples.
coco-caption runs both as Java programs (meteor-1.5.jar; spice-1.0.jar with the Stanford CoreNLP parser),
because the language resources they need (WordNet, paraphrase tables, a dependency parser) come as Java tools.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from mmcourse.utils import check_number

__all__ = [
    "tokenize",
    "corpus_bleu",
    "sentence_bleu",
    "rouge_l",
    "sentence_rouge_l",
    "cider_d",
    "sentence_cider_d",
    "caption_metrics",
    "sentence_caption_metrics",
]

_TINY, _SMALL = 1e-15, 1e-9  # coco-caption's guards: numerator + 1e-15, denominator + 1e-9


def tokenize(text: str) -> list[str]:
    """Lower-case `text` and return its words: runs of letters/digits, split at whitespace and punctuation."""
    _check_captions([text], "text")
    return re.findall(r"\w+", text.lower())


# ---------------------------------------------------------------------------------------------- BLEU


def corpus_bleu(hypotheses: list[str], references: list[list[str]], max_n: int = 4) -> list[float]:
    """Corpus BLEU-1 … BLEU-max_n (coco-caption's Bleu scorer): a list of max_n floats."""
    _check_order(max_n, "max_n")
    hyps, refs = _tokenize_corpus(hypotheses, references)
    matches, totals = [0] * max_n, [0] * max_n
    hyp_length = ref_length = 0
    for hyp, ref_set in zip(hyps, refs, strict=True):
        m, t, c, r = _bleu_statistics(hyp, ref_set, max_n)
        matches = [a + b for a, b in zip(matches, m, strict=True)]
        totals = [a + b for a, b in zip(totals, t, strict=True)]
        hyp_length, ref_length = hyp_length + c, ref_length + r
    return _bleu_from_statistics(matches, totals, hyp_length, ref_length)


def sentence_bleu(hypothesis: str, references: list[str], max_n: int = 4) -> list[float]:
    """BLEU-1 … BLEU-max_n of one caption (coco-caption's per-image scores)."""
    _check_order(max_n, "max_n")
    hyps, refs = _tokenize_corpus([hypothesis], [references], "hypothesis")
    return _bleu_from_statistics(*_bleu_statistics(hyps[0], refs[0], max_n))


def _bleu_statistics(hyp: list[str], refs: list[list[str]], max_n: int):
    """Clipped k-gram matches, k-gram totals (k = 1..max_n), hypothesis length, closest reference length."""
    hyp_counts = _ngram_counts(hyp, max_n)
    max_ref_counts = Counter()
    for ref in refs:
        max_ref_counts |= _ngram_counts(ref, max_n)  # `|` keeps the larger count of each n-gram
    matches = [0] * max_n
    for ngram, count in hyp_counts.items():
        matches[len(ngram) - 1] += min(count, max_ref_counts[ngram])
    totals = [max(0, len(hyp) - k) for k in range(max_n)]
    closest = min((len(ref) for ref in refs), key=lambda length: (abs(length - len(hyp)), length))
    return matches, totals, len(hyp), closest


def _bleu_from_statistics(matches, totals, hyp_length, ref_length) -> list[float]:
    ratio = (hyp_length + _TINY) / (ref_length + _SMALL)
    brevity_penalty = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    scores, product = [], 1.0
    for k in range(len(matches)):
        product *= (matches[k] + _TINY) / (totals[k] + _SMALL)
        scores.append(brevity_penalty * product ** (1 / (k + 1)))
    return scores


# ------------------------------------------------------------------------------------------- ROUGE-L


def rouge_l(hypotheses: list[str], references: list[list[str]], beta: float = 1.2) -> float:
    """Corpus ROUGE-L: the mean over captions of `sentence_rouge_l`."""
    check_number(beta, "beta", low=0, low_open=True)
    hyps, refs = _tokenize_corpus(hypotheses, references)
    return sum(_rouge_l(hyp, ref_set, beta) for hyp, ref_set in zip(hyps, refs, strict=True)) / len(hyps)


def sentence_rouge_l(hypothesis: str, references: list[str], beta: float = 1.2) -> float:
    """ROUGE-L of one caption: F_beta of the best LCS precision and best LCS recall over the references."""
    check_number(beta, "beta", low=0, low_open=True)
    hyps, refs = _tokenize_corpus([hypothesis], [references], "hypothesis")
    return _rouge_l(hyps[0], refs[0], beta)


def _rouge_l(hyp: list[str], refs: list[list[str]], beta: float) -> float:
    if not hyp:
        return 0.0
    lcs = [_lcs_length(hyp, ref) for ref in refs]
    precision = max(length / len(hyp) for length in lcs)
    recall = max(length / len(ref) for length, ref in zip(lcs, refs, strict=True))
    if precision == 0 or recall == 0:
        return 0.0
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming one row at a time."""
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


# ------------------------------------------------------------------------------------------- CIDEr-D


def cider_d(hypotheses: list[str], references: list[list[str]], n: int = 4, sigma: float = 6.0) -> float:
    """Corpus CIDEr-D (coco-caption's Cider scorer), idf from the reference sets of this corpus."""
    _check_order(n, "n")
    check_number(sigma, "sigma", low=0, low_open=True)
    hyps, refs = _tokenize_corpus(hypotheses, references)
    idf = _inverse_document_frequency(refs, n)
    scores = [_cider_d(hyp, ref_set, idf, n, sigma) for hyp, ref_set in zip(hyps, refs, strict=True)]
    return sum(scores) / len(scores)


def sentence_cider_d(
    hypothesis: str,
    references: list[str],
    corpus_references: list[list[str]],
    n: int = 4,
    sigma: float = 6.0,
) -> float:
    """CIDEr-D of one caption, with the idf of `corpus_references` (the reference sets of a whole corpus).

    When `references` is one of the sets in `corpus_references`, this is that caption's score inside
    `cider_d(…, corpus_references)`. Without a corpus the idf is undefined (see the module notes).
    """
    check_number(sigma, "sigma", low=0, low_open=True)
    _check_order(n, "n")
    hyps, refs = _tokenize_corpus([hypothesis], [references], "hypothesis")
    idf = _inverse_document_frequency(_tokenize_references(corpus_references, "corpus_references"), n)
    return _cider_d(hyps[0], refs[0], idf, n, sigma)


def _inverse_document_frequency(refs: list[list[list[str]]], n: int):
    """idf(g) = log N - log max(1, df(g)); df(g) = number of reference *sets* (images) containing g."""
    document_frequency = Counter()
    for ref_set in refs:
        document_frequency.update({g for ref in ref_set for g in _ngram_counts(ref, n)})
    log_n = math.log(len(refs))
    return lambda ngram: log_n - math.log(max(1, document_frequency[ngram]))


def _cider_d(hyp: list[str], refs: list[list[str]], idf, n: int, sigma: float) -> float:
    hyp_vectors = _tfidf_vectors(hyp, idf, n)
    total = 0.0
    for ref in refs:
        ref_vectors = _tfidf_vectors(ref, idf, n)
        length_penalty = math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma**2))
        similarity = sum(_clipped_cosine(h, r) for h, r in zip(hyp_vectors, ref_vectors, strict=True)) / n
        total += similarity * length_penalty
    return 10.0 * total / len(refs)


def _tfidf_vectors(tokens: list[str], idf, n: int) -> list[dict]:
    """One sparse tf-idf vector {k-gram: count * idf} per order k = 1..n."""
    vectors = [{} for _ in range(n)]
    for ngram, count in _ngram_counts(tokens, n).items():
        vectors[len(ngram) - 1][ngram] = count * idf(ngram)
    return vectors


def _clipped_cosine(hyp: dict, ref: dict) -> float:
    """<min(hyp, ref), ref> / (|hyp| |ref|), 0 when either vector is zero."""
    hyp_norm = math.sqrt(sum(v * v for v in hyp.values()))
    ref_norm = math.sqrt(sum(v * v for v in ref.values()))
    if hyp_norm == 0 or ref_norm == 0:
        return 0.0
    dot = sum(min(v, ref[g]) * ref[g] for g, v in hyp.items() if g in ref)
    return dot / (hyp_norm * ref_norm)


# ---------------------------------------------------------------------------------------- all at once


def caption_metrics(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """{"BLEU-1", …, "BLEU-4", "ROUGE-L", "CIDEr-D"} of a corpus, as coco-caption reports them."""
    metrics = {f"BLEU-{k + 1}": score for k, score in enumerate(corpus_bleu(hypotheses, references))}
    metrics["ROUGE-L"] = rouge_l(hypotheses, references)
    metrics["CIDEr-D"] = cider_d(hypotheses, references)
    return metrics


def sentence_caption_metrics(
    hypothesis: str, references: list[str], corpus_references: list[list[str]]
) -> dict[str, float]:
    """The same metrics for one caption (e.g. a caption editor); CIDEr-D takes its idf from the corpus."""
    metrics = {f"BLEU-{k + 1}": score for k, score in enumerate(sentence_bleu(hypothesis, references))}
    metrics["ROUGE-L"] = sentence_rouge_l(hypothesis, references)
    metrics["CIDEr-D"] = sentence_cider_d(hypothesis, references, corpus_references)
    return metrics


# ------------------------------------------------------------------------------------------- helpers


def _ngram_counts(tokens: list[str], n: int) -> Counter:
    """Counts of every k-gram (as a tuple) of `tokens`, k = 1..n."""
    return Counter(tuple(tokens[i : i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1))


def _tokenize_corpus(hypotheses, references, name: str = "hypotheses") -> tuple[list[list[str]], list[list[list[str]]]]:
    """Validate and tokenise a corpus: hypotheses (N,) strings, references (N,) non-empty lists of strings."""
    hyps = [tokenize(h) for h in _check_captions(_check_list(hypotheses, name), name)]
    refs = _tokenize_references(references, "references")
    if len(hyps) != len(refs):
        raise ValueError(
            f"hypotheses and references: expected the same number of captions, "
            f"got {len(hyps)} hypotheses and {len(refs)} reference sets"
        )
    return hyps, refs


def _tokenize_references(references, name: str) -> list[list[list[str]]]:
    refs = []
    for i, ref_set in enumerate(_check_list(references, name)):
        if isinstance(ref_set, str) or not isinstance(ref_set, (list, tuple)) or not ref_set:
            got = f"{ref_set!r}"[:80]
            raise ValueError(f"{name}[{i}]: expected a non-empty list of reference strings, got {got}")
        tokens = [tokenize(r) for r in _check_captions(ref_set, f"{name}[{i}]")]
        if not all(tokens):
            raise ValueError(f"{name}[{i}]: a reference has no words: {ref_set!r}"[:120])
        refs.append(tokens)
    return refs


def _check_list(captions, name: str) -> list | tuple:
    if isinstance(captions, str) or not isinstance(captions, (list, tuple)):
        raise TypeError(f"{name}: expected a list, got {type(captions).__name__}")
    if not captions:
        raise ValueError(f"{name}: expected at least one caption, got an empty list")
    return captions


def _check_captions(captions, name: str):
    for c in captions:
        if not isinstance(c, str):
            raise TypeError(f"{name}: expected a caption string, got {type(c).__name__} {c!r}"[:120])
    return captions


def _check_order(n: int, name: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name}: expected a positive int (the largest n-gram order), got {n!r}")
