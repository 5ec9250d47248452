"""Chapter 03's checks: typical wrong answers are named after the mistake they make, every rule the exercise text
states is exercised (ties in MRR, normalised human answers in VQA), and the experiment grades what it measures."""

import ast
import math
from collections import Counter

import pytest
import torch

from mmcourse.dev.notebooks import ROOT
from mmcourse.grading import CheckFailed, NotImplementedYet, check
from mmcourse.grading.checks import ch03
from mmcourse.metrics import normalize_answer


def _named(name, answer, mistake):
    with pytest.raises(CheckFailed) as err:
        check(name, answer)
    assert "this looks like a known mistake: " + mistake in str(err.value), str(err.value)


# ------------------------------------------------------------------ wrong answers a learner would write


def _learner_bleu_without_brevity_penalty(hypotheses, references, max_n=4):
    matches, totals = [0] * max_n, [0] * max_n
    for hyp, refs in zip(hypotheses, references):
        for k in range(1, max_n + 1):
            grams = Counter(tuple(hyp[i:i + k]) for i in range(len(hyp) - k + 1))
            best = Counter()
            for ref in refs:
                best |= Counter(tuple(ref[i:i + k]) for i in range(len(ref) - k + 1))
            matches[k - 1] += sum(min(c, best[g]) for g, c in grams.items())
            totals[k - 1] += sum(grams.values())
    return [math.prod(m / t for m, t in zip(matches[:k], totals[:k])) ** (1 / k) for k in range(1, max_n + 1)]


def _learner_cider_counting_references(hypotheses, references, n=4, sigma=6.0):
    def grams(tokens, k):
        return Counter(tuple(tokens[i:i + k]) for i in range(len(tokens) - k + 1))

    df = Counter()
    for refs in references:
        for ref in refs:  # every reference counts: an image with 5 matching references counts 5 times
            df.update({g for k in range(1, n + 1) for g in grams(ref, k)})

    def vec(tokens):
        return [{g: c * math.log(len(references) / max(1, df[g])) for g, c in grams(tokens, k).items()}
                for k in range(1, n + 1)]

    def cos(h, r):
        norm = math.sqrt(sum(v * v for v in h.values())) * math.sqrt(sum(v * v for v in r.values()))
        return sum(min(v, r[g]) * r[g] for g, v in h.items() if g in r) / norm if norm else 0.0

    total = 0.0
    for hyp, refs in zip(hypotheses, references):
        h = vec(hyp)
        total += 10 * sum(math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma**2))
                          * sum(cos(a, b) for a, b in zip(h, vec(ref))) / n for ref in refs) / len(refs)
    return total / len(hypotheses)


def _learner_vqa_shortcut(prediction, answers):
    return min(1.0, sum(a == normalize_answer(prediction) for a in answers) / 3)


def _learner_mrr_strictly_higher(similarity, relevant):
    best = torch.where(relevant, similarity, torch.full_like(similarity, -math.inf)).max(dim=1).values
    beaten_by = ((similarity > best[:, None]) & ~relevant).sum(dim=1)
    return (1 / (beaten_by + 1).double()).mean().item()


def _learner_mrr_from_topk(similarity, relevant):
    top = similarity.topk(min(10, similarity.shape[1]), dim=1).indices
    hits = torch.gather(relevant, 1, top)
    rr = [1 / (row.nonzero()[0, 0].item() + 1) if row.any() else 0.0 for row in hits]
    return sum(rr) / len(rr)


def _exercise_function(name):
    """The function `name` exactly as the generated exercise notebook gives it to the learner."""
    source = (ROOT / "exercises" / "03_metrics.py").read_text()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    namespace = {}
    exec(ast.get_source_segment(source, node), namespace)
    return namespace[name]


@pytest.mark.parametrize("name, answer, mistake", [
    ("03.bleu", _learner_bleu_without_brevity_penalty, "no brevity penalty"),
    ("03.cider_d", _learner_cider_counting_references, "df counts every reference"),
    ("03.vqa_score", _learner_vqa_shortcut, "min(count / 3, 1)"),
    ("03.mrr", _learner_mrr_strictly_higher, "ties counted in the query's favour"),
    ("03.mrr", _learner_mrr_from_topk, "MRR@10"),
], ids=["bleu-no-bp", "cider-df-per-reference", "vqa-min-count-3", "mrr-optimistic-ties", "mrr-at-10"])
def test_a_typical_wrong_answer_is_named_after_its_mistake(name, answer, mistake):
    _named(name, answer, mistake)


def test_the_fix_exercise_gives_buggy_code_that_the_check_rejects_and_names():
    buggy = _exercise_function("rouge_l")
    _named("03.rouge_l", buggy, "the code as given")
    assert "this code has a bug" in (ROOT / "exercises" / "03_metrics.py").read_text()


# ------------------------------------------------------------------ the rules the exercise texts state


def test_vqa_cases_agree_with_the_premise_that_human_answers_are_normalised():
    for _, answers in ch03.VQA_CASES:
        assert [normalize_answer(a) for a in answers] == answers
    assert any(normalize_answer(p) != p for p, _ in ch03.VQA_CASES), "some predictions need normalising"
    assert any(len(a) > 10 for _, a in ch03.VQA_CASES), "more than ten annotators: one subset per annotator"


def test_mrr_ties_count_against_the_query():
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.1]], dtype=torch.float64)
    relevant = torch.tensor([[True, False, False, False]])
    assert ch03.mean_reciprocal_rank(scores, relevant) == pytest.approx(1 / 3)
    hand = ch03._tie_cases(torch.Generator().manual_seed(0))[0]
    assert ch03.mean_reciprocal_rank(hand[1], hand[2]) == pytest.approx(1 / 3)
    for wrong in (ch03._mrr_optimistic_ties, ch03._mrr_ties_by_position):
        with pytest.raises(CheckFailed, match="tied scores|integer scores"):
            check("03.mrr", wrong)


def test_bleu_ties_between_reference_lengths_and_clipping_per_reference_are_exercised():
    _named("03.bleu", ch03._bleu_tie_takes_longer_reference, "when two reference lengths are equally close")
    _named("03.bleu", ch03._bleu_clip_at_sum_over_references, "clipping at the k-gram's count summed")


# ------------------------------------------------------------------ the experiment and the questions


def test_the_experiment_measures_the_captions_it_is_given(capsys):
    check("03.bleu_vs_cider", ch03._EXPERIMENT_ANSWER)
    assert "idf" in capsys.readouterr().out
    with pytest.raises(NotImplementedYet):
        check("03.bleu_vs_cider", (..., ...))
    true, false = "a small green square under a large cyan triangle", "a large cyan square and a small green triangle"
    with pytest.raises(CheckFailed, match="there is no large cyan square in the scene"):
        check("03.bleu_vs_cider", (false, true))
    with pytest.raises(CheckFailed, match="is not below"):
        check("03.bleu_vs_cider", ("a large cyan triangle below a small green square", true))
    with pytest.raises(CheckFailed, match="BLEU-4 must prefer"):
        check("03.bleu_vs_cider", (true, ch03._EXPERIMENT_ANSWER[0]))
    with pytest.raises(CheckFailed, match="a pair of captions"):
        check("03.bleu_vs_cider", "one caption")


def test_the_truth_reader_knows_the_scene():
    objects, refs, corpus = ch03.experiment_corpus()
    assert len(corpus) == 300 and refs == corpus[ch03.EXPERIMENT_SCENE]
    assert all(ch03.caption_falsehoods(r, objects) == [] for r in refs)
    assert ch03.caption_falsehoods("a big cyan wedge over a little green box", objects) == []
    assert ch03.caption_falsehoods("a cyan triangle and not a red circle", objects)


def test_the_questions_explain_their_answers(capsys):
    check("03.quiz_vqa_twelve", 0.917)
    assert "11/12" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="min\\(count/3, 1\\)"):
        check("03.quiz_vqa_twelve", 1)
    with pytest.raises(CheckFailed, match="value for ten annotators"):
        check("03.quiz_vqa_twelve", 0.9)
    check("03.quiz_mrr_at_10", "b")
    with pytest.raises(CheckFailed, match="never the smaller one"):
        check("03.quiz_mrr_at_10", "c")
    check("03.quiz_torchmetrics_negative_scores", "(B)")
    with pytest.raises(CheckFailed, match="only sorts"):
        check("03.quiz_torchmetrics_negative_scores", "a")


def test_every_mutant_is_named_after_its_own_mistake():
    import inspect

    from mmcourse.grading import exercises

    for name, ex in exercises().items():
        if not name.startswith("03.") or ex.kind != "function":
            continue
        for mutant in ex.mutants:
            _named(name, mutant, inspect.getdoc(mutant).splitlines()[0])
