"""Caption metrics: equal to pycocoevalcap's Bleu / Rouge / Cider (to 1e-9) and torchmetrics' BLEUScore."""

import random

import pytest
import torch

from mmcourse.metrics import (
    caption_metrics,
    cider_d,
    corpus_bleu,
    rouge_l,
    sentence_bleu,
    sentence_caption_metrics,
    sentence_cider_d,
    sentence_rouge_l,
    tokenize,
)

Bleu = pytest.importorskip("pycocoevalcap.bleu.bleu").Bleu
Rouge = pytest.importorskip("pycocoevalcap.rouge.rouge").Rouge
Cider = pytest.importorskip("pycocoevalcap.cider.cider").Cider

HAND_CORPUS = (
    ["A red circle left of a blue square.", "two green triangles", "a big Square", "the the the the"],
    [
        [
            "A red circle to the left of a blue square.",
            "a red disc left of a blue box",
            "red circle, blue box",
        ],
        ["Two green triangles.", "a pair of green triangles"],
        ["a large square", "one big square in the middle", "a square"],
        ["the cat is on the mat", "there is a cat on the mat"],
    ],
)
WORDS = "a the red blue green circle square triangle left right of above below big small two".split()


def _random_corpus(seed, n_images=25):
    """Captions over a small vocabulary (so n-grams repeat); some hypotheses are empty."""
    rng = random.Random(seed)

    def sentence(shortest=1):
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(shortest, 12)))

    hypotheses = [sentence(shortest=0) for _ in range(n_images)]
    references = [[sentence() for _ in range(rng.randint(1, 5))] for _ in range(n_images)]
    return hypotheses, references


CORPORA = [HAND_CORPUS] + [_random_corpus(seed) for seed in range(4)]


def _coco_format(hypotheses, references):
    """pycocoevalcap's {id: [pre-tokenised, space-joined string]} dicts."""
    res = {i: [" ".join(tokenize(h))] for i, h in enumerate(hypotheses)}
    gts = {i: [" ".join(tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    return gts, res


@pytest.mark.parametrize("corpus", CORPORA)
def test_equal_to_pycocoevalcap(corpus):
    hypotheses, references = corpus
    gts, res = _coco_format(hypotheses, references)
    coco_bleu, coco_bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    coco_rouge, coco_rouge_per_image = Rouge().compute_score(gts, res)
    coco_cider, coco_cider_per_image = Cider().compute_score(gts, res)

    assert corpus_bleu(hypotheses, references) == pytest.approx(coco_bleu, rel=1e-9, abs=1e-12)
    assert rouge_l(hypotheses, references) == pytest.approx(coco_rouge, rel=1e-9, abs=1e-12)
    assert cider_d(hypotheses, references) == pytest.approx(coco_cider, rel=1e-9, abs=1e-12)
    for i, (hyp, refs) in enumerate(zip(hypotheses, references, strict=True)):
        expected_bleu = [coco_bleu_per_image[k][i] for k in range(4)]
        assert sentence_bleu(hyp, refs) == pytest.approx(expected_bleu, rel=1e-9, abs=1e-12)
        assert sentence_rouge_l(hyp, refs) == pytest.approx(coco_rouge_per_image[i], rel=1e-9, abs=1e-12)
        cider_i = sentence_cider_d(hyp, refs, corpus_references=references)
        assert cider_i == pytest.approx(coco_cider_per_image[i], rel=1e-9, abs=1e-12)


def test_bleu_n_orders_other_than_four_equal_pycocoevalcap():
    hypotheses, references = _random_corpus(11)
    gts, res = _coco_format(hypotheses, references)
    for n in (1, 2, 3):  # coco-caption counts n-grams up to 4 whatever n: Bleu(n > 4) fails
        expected, _ = Bleu(n).compute_score(gts, res, verbose=0)
        assert corpus_bleu(hypotheses, references, max_n=n) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.fixture
def float64_default():
    """torchmetrics keeps its BLEU counts in the default dtype: use float64 to compare to ~1e-9."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _agreeing_corpus(seed, n_images=20):
    """A corpus on which coco-caption's and torchmetrics' BLEU agree.

    Each hypothesis is its shortest reference with two words changed, then cut short by 0-2 words, so that
    (1) every n-gram order has matches (torchmetrics returns 0 otherwise) and (2) every reference is at
    least as long as the hypothesis, with distinct lengths: no tie for the closest reference length.
    """
    rng = random.Random(seed)
    hypotheses, references = [], []
    for _ in range(n_images):
        lengths = sorted(rng.sample(range(10, 18), rng.randint(1, 4)))
        refs = [[rng.choice(WORDS) for _ in range(length)] for length in lengths]
        hyp = list(refs[0])
        for position in rng.sample(range(len(hyp)), 2):
            hyp[position] = rng.choice(WORDS)
        hypotheses.append(" ".join(hyp[: len(hyp) - rng.randint(0, 2)]))
        rng.shuffle(refs)  # the closest reference is not always listed first
        references.append([" ".join(r) for r in refs])
    return hypotheses, references


@pytest.mark.parametrize("seed", range(3))
def test_bleu_equal_to_torchmetrics_where_they_agree(seed, float64_default):
    bleu_score = pytest.importorskip("torchmetrics.functional.text").bleu_score
    hypotheses, references = _agreeing_corpus(seed)
    ours = corpus_bleu(hypotheses, references)
    assert ours[3] > 0.1  # every order matched: the comparison is not 0 == 0
    for n in range(1, 5):
        expected = bleu_score(hypotheses, references, n_gram=n).item()
        assert ours[n - 1] == pytest.approx(expected, rel=1e-8)


def test_bleu_differs_from_torchmetrics_as_documented(float64_default):
    bleu_score = pytest.importorskip("torchmetrics.functional.text").bleu_score
    # (1) closest-length tie: hypothesis of 4 words, references of 6 and 2 words, both 2 away.
    # coco-caption takes the shorter (2 words): c > r, no brevity penalty; torchmetrics the first (6 words).
    hypothesis, refs = "a b c d", ["a b c d e f", "a b"]
    assert corpus_bleu([hypothesis], [refs])[0] == pytest.approx(1.0, rel=1e-8)
    assert bleu_score([hypothesis], [refs], n_gram=1).item() == pytest.approx(torch.e ** (1 - 6 / 4))
    # (2) an order without any match: torchmetrics gives exactly 0, coco-caption (and we) a tiny positive.
    hypothesis, refs = "red circle blue square", ["red circle and blue square"]
    assert bleu_score([hypothesis], [refs], n_gram=4).item() == 0.0
    assert 0 < corpus_bleu([hypothesis], [refs])[3] < 1e-3


def test_hand_worked_bleu_and_rouge():
    # BLEU, one sentence, equal lengths (BP = 1):
    #   hyp "the cat sat on the mat", ref "the cat is on the mat"
    #   unigrams: the x2 (clipped at 2), cat, on, mat match; sat does not -> p1 = 5/6
    #   bigrams: "the cat", "on the", "the mat" of 5 -> p2 = 3/5;  BLEU-2 = sqrt(5/6 * 3/5) = sqrt(1/2)
    bleu = sentence_bleu("the cat sat on the mat", ["the cat is on the mat"], max_n=2)
    assert bleu == pytest.approx([5 / 6, 0.5**0.5], rel=1e-8)
    # brevity: hyp "the cat" (c = 2) vs ref of 6 words: p1 = p2 = 1, BP = exp(1 - 6/2) = e^-2
    assert sentence_bleu("the cat", ["the cat is on the mat"], max_n=2) == pytest.approx([torch.e**-2] * 2)
    # ROUGE-L: hyp "a b" vs ref "a b c d": LCS 2, P = 2/2 = 1, R = 2/4
    #   F = (1 + 1.2^2) * 1 * 0.5 / (0.5 + 1.2^2 * 1) = 1.22 / 1.94
    assert sentence_rouge_l("a b", ["a b c d"]) == pytest.approx(1.22 / 1.94)
    # precision and recall are maximised separately over the references: P = 1 from "a b c d e f",
    # R = 1 from "a b", so ROUGE-L = 1 although no single reference gives F = 1
    assert sentence_rouge_l("a b c", ["a b", "a b c d e f"]) == pytest.approx(1.0)


def test_cider_d_needs_a_corpus_for_its_idf():
    # alone, every reference n-gram appears in the only reference set: idf = log(1/1) = 0 -> CIDEr-D 0
    assert cider_d(["a red circle"], [["a red circle"]]) == 0.0
    # inside a corpus the same caption scores: equal to its per-caption score in cider_d of that corpus
    hypotheses, references = HAND_CORPUS
    scored = sentence_cider_d(hypotheses[0], references[0], corpus_references=references)
    assert scored > 1.0
    per_caption = [sentence_cider_d(h, r, references) for h, r in zip(hypotheses, references, strict=True)]
    assert cider_d(hypotheses, references) == pytest.approx(sum(per_caption) / len(per_caption))


def test_cider_d_clips_repeated_words():
    hypotheses, references = HAND_CORPUS
    fair = sentence_cider_d("two green triangles", references[1], references)
    padded = sentence_cider_d("two two two green green green triangles triangles", references[1], references)
    assert padded < fair


def test_metric_dicts():
    hypotheses, references = HAND_CORPUS
    corpus = caption_metrics(hypotheses, references)
    assert list(corpus) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D"]
    assert corpus["CIDEr-D"] == cider_d(hypotheses, references)
    one = sentence_caption_metrics(hypotheses[1], references[1], references)
    assert one["BLEU-4"] == sentence_bleu(hypotheses[1], references[1])[3]
    assert one["ROUGE-L"] == sentence_rouge_l(hypotheses[1], references[1])


def test_tokenize_and_empty_hypothesis():
    assert tokenize("A Red-circle,  LEFT of the square.") == "a red circle left of the square".split()
    # an empty caption (a model that stopped at once) scores 0, as in coco-caption
    assert rouge_l([""], [["a red circle"]]) == 0.0
    assert cider_d(["", "a circle"], [["a red circle"], ["a blue square"]]) < cider_d(
        ["a red circle", "a circle"], [["a red circle"], ["a blue square"]]
    )
    assert corpus_bleu(["..."], [["a red circle"]])[0] < 1e-9


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="hypotheses: expected at least one caption"):
        corpus_bleu([], [])
    with pytest.raises(ValueError, match="got 2 hypotheses and 1 reference sets"):
        rouge_l(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match=r"references\[1\]: expected a non-empty list"):
        cider_d(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match=r"references\[0\]: a reference has no words"):
        corpus_bleu(["a"], [["a", " ?! "]])
    with pytest.raises(TypeError, match="hypotheses: expected a list, got str"):
        corpus_bleu("a red circle", [["a red circle"]])
    with pytest.raises(ValueError, match=r"references\[0\]: expected a non-empty list of reference strings"):
        corpus_bleu(["a red circle"], ["a red circle"])
    with pytest.raises(TypeError, match="expected a caption string, got int"):
        corpus_bleu([3], [["a"]])
    with pytest.raises(ValueError, match="max_n: expected a positive int"):
        corpus_bleu(["a"], [["a"]], max_n=0)
    with pytest.raises(ValueError, match="corpus_references: expected at least one caption"):
        sentence_cider_d("a", ["a"], corpus_references=[])
