"""Chapter 04 exercises: hard-negative sampling and the ITM loss (build); the study guide's CapFilt (fix); a
filter threshold for a precision / recall target (experiment); three questions (quiz)."""

from __future__ import annotations

import contextlib
import functools
import io

import torch
import torch.nn.functional as F

from mmcourse import zoo
from mmcourse.grading.core import devices, expect_close, expect_equal, fail, register, register_quiz
from mmcourse.grading.memo import remembered
from mmcourse.losses import hard_negative_probs
from mmcourse.losses import itm_loss as _itm_loss
from mmcourse.losses import sample_hard_negatives as _sample_hard_negatives
from mmcourse.recipes import blip_tiny


# ---------------------------------------------------------------- 04.sample_hard_negatives
def sample_hard_negatives(sim, same, generator):
    """Reference: per image a text ∝ softmax(row), per text an image ∝ softmax(column), positives zeroed."""
    return _sample_hard_negatives(sim, same, generator)


def _positive_zeroed(p, same):
    keep = ~(torch.eye(len(p), dtype=torch.bool, device=p.device) | same)
    return p * keep


def _neg_may_be_positive(sim, same, generator):
    """samples from the whole softmax: the positive itself can be drawn as a negative"""
    draw = lambda p: torch.multinomial(p, 1, generator=generator).squeeze(1)  # noqa: E731
    return draw(sim.softmax(1)), draw(sim.T.softmax(1))


def _neg_ignores_same(sim, same, generator):
    """zeroes the diagonal only: a caption that says the same as the image's own can be drawn as a negative"""
    return _sample_hard_negatives(sim, None, generator)


def _neg_uniform(sim, same, generator):
    """draws the negatives uniformly, ignoring the similarities"""
    return _sample_hard_negatives(torch.zeros_like(sim), same, generator)


def _neg_argmax(sim, same, generator):
    """always takes the hardest negative (argmax) instead of sampling ∝ softmax"""
    p_text, p_image = hard_negative_probs(sim, same)
    return p_text.argmax(1), p_image.argmax(1)


def _neg_rows_for_both(sim, same, generator):
    """draws the negative images from the rows of sim (image i's similarities), not from the columns"""
    p = F.normalize(_positive_zeroed(sim.softmax(1), same), p=1, dim=1)
    draw = lambda q: torch.multinomial(q, 1, generator=generator).squeeze(1)  # noqa: E731
    return draw(p), draw(p)


DRAWS = 500


@register("04.sample_hard_negatives", sample_hard_negatives,
          [_neg_may_be_positive, _neg_ignores_same, _neg_uniform, _neg_argmax, _neg_rows_for_both])
def _test_sample_hard_negatives(fn):
    g = torch.Generator().manual_seed(40)
    n = 0
    for device in devices():
        for B, spread, pairs in [(4, 2.0, []), (5, 3.0, [(0, 3)]), (6, 1.5, [(1, 2), (4, 5)])]:
            sim = (spread * torch.randn(B, B, generator=g)).to(device)
            same = torch.zeros(B, B, dtype=torch.bool)
            for i, j in pairs:
                same[i, j] = same[j, i] = True
            same = same.to(device)
            case = f"B={B}, sim = {spread:g}·randn, same-meaning pairs {pairs or 'none'}"
            generator = torch.Generator(device=device).manual_seed(0)
            counts = torch.zeros(2, B, B)
            for _ in range(DRAWS):
                out = fn(sim, same, generator)
                if not (isinstance(out, tuple) and len(out) == 2):
                    fail(f"{case}: return a pair (neg_text, neg_image)", "a tuple of two (B,) tensors", type(out))
                for k, (name, idx) in enumerate(zip(("neg_text", "neg_image"), out, strict=True)):
                    expect_equal(tuple(idx.shape), (B,), f"{case}: shape of {name}")
                    if idx.dtype != torch.long:
                        fail(f"{case}: {name} must hold indices", "dtype torch.int64", idx.dtype)
                    rows = torch.arange(B, device=device)
                    bad = (idx == rows) | same[rows, idx]
                    if bad.any():
                        i = int(bad.nonzero()[0])
                        fail(f"{case}: {name}[{i}] = {int(idx[i])} is a positive of {i} (itself or a same-meaning "
                             "pair)", "never drawn", int(idx[i]), "zero the diagonal and `same` before sampling")
                    counts[k, torch.arange(B), idx.cpu()] += 1
            for k, (name, p) in enumerate(zip(("neg_text", "neg_image"), hard_negative_probs(sim, same))):
                freq = counts[k] / DRAWS
                expect_close(freq, p.cpu(), f"{case}: how often each {name} was drawn over {DRAWS} calls (row i: "
                             "the draws for " + ("image i" if k == 0 else "caption i") + ")",
                             "softmax of the similarities (rows for an image's negative caption, columns for a "
                             "caption's negative image), positives set to 0, then renormalised; draw, don't argmax",
                             atol=0.1, rtol=0)
            n += 1
    return n


# ---------------------------------------------------------------- 04.itm_loss
def itm_loss(score, image_tokens, ids, neg_text, neg_image):
    """Reference: cross-entropy over B positives (label 1), B (image, neg text) and B (neg image, text) (label 0)."""
    return _itm_loss(score, image_tokens, ids, neg_text, neg_image)


def _itm_parts(score, image_tokens, ids, neg_text, neg_image):
    return score(image_tokens, ids), score(image_tokens, ids[neg_text]), score(image_tokens[neg_image], ids)


def _itm_one_direction(score, image_tokens, ids, neg_text, neg_image):
    """scores only the (image, negative caption) pairs: 2B pairs, no negative images"""
    pos, neg, _ = _itm_parts(score, image_tokens, ids, neg_text, neg_image)
    B = len(ids)
    labels = torch.cat([torch.ones(B), torch.zeros(B)]).long().to(ids.device)
    return F.cross_entropy(torch.cat([pos, neg]), labels)


def _itm_labels_swapped(score, image_tokens, ids, neg_text, neg_image):
    """labels the positives 0 and the negatives 1: class 1 must mean 'match'"""
    pos, a, b = _itm_parts(score, image_tokens, ids, neg_text, neg_image)
    B = len(ids)
    labels = torch.cat([torch.zeros(B), torch.ones(2 * B)]).long().to(ids.device)
    return F.cross_entropy(torch.cat([pos, a, b]), labels)


def _itm_indices_crossed(score, image_tokens, ids, neg_text, neg_image):
    """pairs image i with caption neg_image[i] and image neg_text[j] with caption j: the two index lists swapped"""
    B = len(ids)
    logits = torch.cat([score(image_tokens, ids), score(image_tokens, ids[neg_image]),
                        score(image_tokens[neg_text], ids)])
    return F.cross_entropy(logits, torch.cat([torch.ones(B), torch.zeros(2 * B)]).long().to(ids.device))


def _itm_unbalanced_mean(score, image_tokens, ids, neg_text, neg_image):
    """averages the positives' loss with the negatives' (each half), not over all 3B pairs"""
    pos, a, b = _itm_parts(score, image_tokens, ids, neg_text, neg_image)
    B = len(ids)
    one, zero = torch.ones(B).long().to(ids.device), torch.zeros(2 * B).long().to(ids.device)
    return (F.cross_entropy(pos, one) + F.cross_entropy(torch.cat([a, b]), zero)) / 2


class _Scorer(torch.nn.Module):
    """A tiny ITM stand-in: mean image token and mean token embedding -> 2 logits."""

    def __init__(self, D, vocab, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.embed = torch.nn.Parameter(torch.randn(vocab, D, generator=g))
        self.head = torch.nn.Parameter(torch.randn(2 * D, 2, generator=g))

    def forward(self, image_tokens, ids):
        return torch.cat([image_tokens.mean(1), self.embed[ids].mean(1)], dim=1) @ self.head


@register("04.itm_loss", itm_loss, [_itm_one_direction, _itm_labels_swapped, _itm_indices_crossed,
                                    _itm_unbalanced_mean])
def _test_itm_loss(fn):
    g = torch.Generator().manual_seed(41)
    n = 0
    for device in devices():
        for B, M, D, L in [(4, 3, 5, 6), (6, 5, 8, 4), (2, 2, 3, 5)]:
            score = _Scorer(D, 12, seed=B).to(device)
            tokens = torch.randn(B, M, D, generator=g).to(device)
            ids = torch.randint(0, 12, (B, L), generator=g).to(device)
            shift = torch.randint(1, B, (2, B), generator=g)
            neg_text, neg_image = ((torch.arange(B) + shift) % B).to(device)
            case = f"B={B}, image tokens {tuple(tokens.shape)}, ids {tuple(ids.shape)}, neg_text " \
                   f"{neg_text.tolist()}, neg_image {neg_image.tolist()}"
            loss = fn(score, tokens, ids, neg_text, neg_image)
            expect_close(loss, itm_loss(score, tokens, ids, neg_text, neg_image), case,
                         "3B pairs: (image i, caption i) labelled 1; (image i, caption neg_text[i]) and (image "
                         "neg_image[j], caption j) labelled 0; the mean cross-entropy over all 3B")
            score.zero_grad()
            loss.backward()
            if score.head.grad is None or score.head.grad.abs().sum() == 0:
                fail(f"{case}: no gradient reaches the scorer", "score's parameters get a gradient", None)
            n += 1
    return n


# ---------------------------------------------------------------- 04.capfilt_select (fix)
def capfilt_select(web_texts, synthetic_texts, web_scores, synthetic_scores, threshold):
    """Reference: each caption with a score > threshold stays, paired with its own image index."""
    keep_web, keep_syn = (web_scores > threshold).tolist(), (synthetic_scores > threshold).tolist()
    images = [i for i, k in enumerate(keep_web) if k] + [i for i, k in enumerate(keep_syn) if k]
    texts = [t for t, k in zip(web_texts, keep_web) if k] + [t for t, k in zip(synthetic_texts, keep_syn) if k]
    return torch.tensor(images, dtype=torch.long), texts


def _capfilt_study_guide(web_texts, synthetic_texts, web_scores, synthetic_scores, threshold):
    """keeps images where either caption passes but appends a text for every image, kept or not (the texts no
    longer line up with the images), and keeps the better caption only"""
    keep = (web_scores > threshold) | (synthetic_scores > threshold)
    images = torch.arange(len(web_texts))[keep]
    texts = [s if ps > pw else w for w, s, pw, ps in zip(web_texts, synthetic_texts, web_scores, synthetic_scores)]
    return images, texts


def _capfilt_better_only(web_texts, synthetic_texts, web_scores, synthetic_scores, threshold):
    """keeps at most one caption per image, the better scoring one, where each passing caption should stay"""
    images, texts = [], []
    for i, (w, s, pw, ps) in enumerate(zip(web_texts, synthetic_texts, web_scores.tolist(), synthetic_scores.tolist())):
        if max(pw, ps) > threshold:
            images.append(i)
            texts.append(s if ps > pw else w)
    return torch.tensor(images, dtype=torch.long), texts


def _capfilt_web_only(web_texts, synthetic_texts, web_scores, synthetic_scores, threshold):
    """filters the web captions but never adds the synthetic ones"""
    keep = (web_scores > threshold).tolist()
    return torch.tensor([i for i, k in enumerate(keep) if k], dtype=torch.long), \
        [t for t, k in zip(web_texts, keep) if k]


def _capfilt_at_least(web_texts, synthetic_texts, web_scores, synthetic_scores, threshold):
    """keeps a caption whose score equals the threshold (≥ instead of >)"""
    keep_web, keep_syn = (web_scores >= threshold).tolist(), (synthetic_scores >= threshold).tolist()
    images = [i for i, k in enumerate(keep_web) if k] + [i for i, k in enumerate(keep_syn) if k]
    texts = [t for t, k in zip(web_texts, keep_web) if k] + [t for t, k in zip(synthetic_texts, keep_syn) if k]
    return torch.tensor(images, dtype=torch.long), texts


def _as_pairs(images, texts, case):
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        fail(f"{case}: texts must be a list of str", "list[str]", type(texts).__name__)
    images = torch.as_tensor(images).flatten().tolist()
    if len(images) != len(texts):
        fail(f"{case}: {len(images)} image indices but {len(texts)} texts — every kept text needs its own image",
             "equal lengths", (len(images), len(texts)), "build the image list and the text list in the same loop")
    return sorted(zip(images, texts))


@register("04.capfilt_select", capfilt_select, [_capfilt_study_guide, _capfilt_better_only, _capfilt_web_only,
                                                _capfilt_at_least])
def _test_capfilt_select(fn):
    g = torch.Generator().manual_seed(42)
    n = 0
    for P, threshold in [(6, 0.5), (10, 0.8), (1, 0.5), (8, 0.3)]:
        web = [f"web caption {i}" for i in range(P)]
        syn = [f"synthetic caption {i}" for i in range(P)]
        # float64: a score set to the threshold equals it exactly, however the answer compares
        web_scores, syn_scores = torch.rand(2, P, generator=g, dtype=torch.float64)
        web_scores[0], syn_scores[-1] = threshold, min(1.0, threshold + 0.1)  # a score exactly at the threshold
        if P > 2:
            web_scores[1], syn_scores[1] = 0.9 * threshold, 0.5 * threshold  # an image that keeps nothing
            web_scores[2], syn_scores[2] = (1 + threshold) / 2, (3 + threshold) / 4  # one that keeps both
        case = (f"{P} images, threshold {threshold}: web scores {[round(x, 2) for x in web_scores.tolist()]}, "
                f"synthetic scores {[round(x, 2) for x in syn_scores.tolist()]}")
        got = _as_pairs(*fn(web, syn, web_scores, syn_scores, threshold), case)
        expected = _as_pairs(*capfilt_select(web, syn, web_scores, syn_scores, threshold), case)
        expect_equal(got, expected, f"{case}: the kept (image, text) pairs, sorted",
                     "judge each caption on its own: a web caption with score > threshold stays with its image, "
                     "a synthetic caption likewise; an image may keep both, one or none")
        n += 1
    return n


# ---------------------------------------------------------------- 04.filter_threshold (experiment)
FILTER_STEPS, MIN_PRECISION, MIN_RECALL = 300, 0.99, 0.8


@functools.cache
@remembered
def filter_scores() -> tuple[torch.Tensor, torch.Tensor]:
    """A filter's P(match) of 2 000 web captions (40 % wrong) and which captions are right: a BLIP trained with
    ITC + ITM for 300 steps on 1 000 clean pairs (about 30 s on a CPU, once: the cache keeps the scores)."""
    visual = zoo.load("clip-tiny", verbose=False).visual
    web = blip_tiny.web_data(visual, n=2000, noise_fraction=0.4, seed=3)
    human = blip_tiny.web_data(visual, n=blip_tiny.HUMAN_IMAGES, seed=7)
    judge = blip_tiny.build(seed=0)
    with contextlib.redirect_stdout(io.StringIO()):
        blip_tiny.train(judge, human.pairs, steps=FILTER_STEPS, objectives=("itc", "itm"), progress=False)
    return blip_tiny.match_probs(judge, web.pairs), web.dataset.clean


def _threshold_reference():
    """The middle of the thresholds (in steps of 0.01) that reach both targets on this machine's filter: the scores
    move a little with the CPU's arithmetic (0.7 on one machine, 0.75-0.8 on another), the scan does not."""
    scores, correct = filter_scores()
    feasible = [t / 100 for t in range(101) if _meets(blip_tiny.filter_quality(scores > t / 100, correct))]
    return feasible[len(feasible) // 2] if feasible else 0.7


def _meets(quality: dict) -> bool:
    return quality["precision"] >= MIN_PRECISION and quality["recall"] >= MIN_RECALL


def _threshold_default():
    """keeps the default threshold 0.5: too many wrong captions get through"""
    return 0.5


def _threshold_too_strict():
    """a threshold so strict that most right captions are dropped too"""
    return 0.95


def _threshold_keep_all():
    """a threshold of 0: keeps every caption, the wrong 40 % included"""
    return 0.0


@register("04.filter_threshold", _threshold_reference, [_threshold_default, _threshold_too_strict,
                                                         _threshold_keep_all])
def _test_filter_threshold(fn):
    threshold = fn()
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        fail("my_threshold() must return a probability", "a float in [0, 1]", threshold)
    scores, correct = filter_scores()
    quality = blip_tiny.filter_quality(scores > threshold, correct)
    if not _meets(quality):
        fail(f"threshold {threshold:g}: precision {quality['precision']:.3f}, recall {quality['recall']:.3f}",
             f"precision ≥ {MIN_PRECISION} and recall ≥ {MIN_RECALL}",
             f"{quality['precision']:.3f} and {quality['recall']:.3f}",
             "raise the threshold to drop more wrong captions (precision up), lower it to keep more right ones "
             "(recall up)")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("04.quiz_sharing", "Why does BLIP's decoder share every parameter with the encoder except "
              "self-attention?", "c",
              "encoding and decoding differ in what a token may look at (bidirectional or causal); reading the image "
              "(cross-attention) and transforming a token (feed-forward) are the same job, so one set of weights "
              "serves both and is trained by both ITM and LM.",
              choices={"a": "to halve the memory of the whole model", "b": "cross-attention cannot be made causal",
                       "c": "the two differ only in the attention mask; the rest is the same job",
                       "d": "so that the decoder's captions score high under ITM"},
              wrong={"a": "the image encoder, untouched by the sharing, is most of BLIP's weights; and the saving "
                          "is a side effect, not the reason.",
                     "b": "cross-attention attends to image tokens, which have no order to be causal about; nothing "
                          "stops it from being shared, which is the point.",
                     "d": "nothing in the sharing ties the decoder's outputs to the ITM's judgement."})
register_quiz("04.quiz_nucleus", "Why does CapFilt's captioner use nucleus sampling rather than beam search?", "b",
              "beam search returns the captioner's safest sentence, the same for every similar image; sampling gives "
              "varied captions — more of them wrong, which the filter removes, and the kept ones add new text.",
              choices={"a": "nucleus sampling is more accurate", "b": "diverse synthetic captions teach more, and "
                       "the filter drops the wrong ones", "c": "it is faster than greedy decoding",
                       "d": "beam search cannot be used with cross-attention"},
              wrong={"a": "section 7 measured the opposite: fewer nucleus captions are fully correct.",
                     "c": "sampling costs as much per token as greedy decoding.",
                     "d": "the decoder's beam search cross-attends to the image like any other decoding."})
register_quiz("04.quiz_pairs", "How many (image, caption) pairs does the ITM loss score for a batch of 64?", 192,
              "64 positives, 64 images with a hard negative caption, 64 captions with a hard negative image: 3B.",
              wrong={64: "that counts the positives only.", 128: "that leaves out one direction of negatives.",
                     4096: "that is every pair of the batch (B²); ITM scores 3B of them."})
