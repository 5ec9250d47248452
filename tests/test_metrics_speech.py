"""WER / CER: equal to torchmetrics on random cases; hand-worked edit distances; bad input."""

import random

import pytest

from mmcourse.metrics import char_error_rate, edit_distance, word_error_rate

tm_text = pytest.importorskip("torchmetrics.text")

WORDS = "red blue green circle square triangle left right above below".split()


def _random_transcripts(seed, n=30):
    """References of 1-10 words; hypotheses = references with random substitutions, deletions, insertions."""
    rng = random.Random(seed)
    hypotheses, references = [], []
    for _ in range(n):
        reference = [rng.choice(WORDS) for _ in range(rng.randint(1, 10))]
        hypothesis = []
        for word in reference:
            action = rng.random()
            if action < 0.15:
                hypothesis.append(rng.choice(WORDS))  # substitution (or a lucky same word)
            elif action < 0.25:
                continue  # deletion
            else:
                hypothesis.append(word)
            if rng.random() < 0.1:
                hypothesis.append(rng.choice(WORDS))  # insertion
        hypotheses.append(" ".join(hypothesis))
        references.append(" ".join(reference))
    return hypotheses, references


@pytest.mark.parametrize("seed", range(5))
def test_equal_to_torchmetrics_on_random_cases(seed):
    hypotheses, references = _random_transcripts(seed)
    assert word_error_rate(hypotheses, references) > 0  # the case is not trivial
    expected_wer = tm_text.WordErrorRate()(hypotheses, references).item()
    expected_cer = tm_text.CharErrorRate()(hypotheses, references).item()
    assert word_error_rate(hypotheses, references) == pytest.approx(expected_wer, rel=1e-6)
    assert char_error_rate(hypotheses, references) == pytest.approx(expected_cer, rel=1e-6)


def test_hand_worked_edit_distances():
    assert edit_distance("kitten", "sitting") == 3  # k->s, e->i, +g
    assert edit_distance([], [1, 2, 3]) == 3
    assert edit_distance([1, 2, 3], []) == 3
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    # "the red circle" -> "a red square circle": the->a (substitution) + square (insertion) = 2 of 3 words
    assert word_error_rate(["a red square circle"], ["the red circle"]) == pytest.approx(2 / 3)
    # corpus level: (2 + 0) edits / (3 + 1) reference words, not the mean of 2/3 and 0
    assert word_error_rate(["a red square circle", "yes"], ["the red circle", "yes"]) == pytest.approx(0.5)
    # insertions can push WER above 1
    assert word_error_rate(["one two three"], ["one"]) == pytest.approx(2.0)
    # CER counts spaces: "ab cd" vs "ab  cd" is one insertion over 5 characters
    assert char_error_rate(["ab  cd"], ["ab cd"]) == pytest.approx(1 / 5)


def test_token_sequences_and_empty_hypotheses():
    # word ids from a CTC decoder work like words
    assert word_error_rate([[3, 1, 4], [1]], [[3, 1, 5], [1, 5]]) == pytest.approx(2 / 5)
    # a model that emits nothing deletes every reference word: WER 1
    assert word_error_rate(["", ""], ["a b", "c"]) == 1.0


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="expected at least one transcript"):
        word_error_rate([], [])
    with pytest.raises(ValueError, match="expected the same number of transcripts, got 2 and 1"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"references\[1\]: is empty"):
        word_error_rate(["a", "b"], ["a", "  "])
    with pytest.raises(ValueError, match=r"references\[0\]: is empty"):
        char_error_rate(["a"], [""])
    with pytest.raises(TypeError, match="hypotheses: expected a list of transcripts, got str"):
        word_error_rate("a b", ["a b"])
    with pytest.raises(TypeError, match=r"hypotheses: expected transcripts \(str\), got list"):
        char_error_rate([["a"]], ["a"])


def test_edit_distance_equals_the_textbook_recurrence_on_random_sequences():
    def textbook(h, r):
        d = [[i + j if i * j == 0 else 0 for j in range(len(r) + 1)] for i in range(len(h) + 1)]
        for i in range(1, len(h) + 1):
            for j in range(1, len(r) + 1):
                d[i][j] = min(d[i - 1][j - 1] + (h[i - 1] != r[j - 1]), d[i - 1][j] + 1, d[i][j - 1] + 1)
        return d[-1][-1]

    rng = random.Random(0)
    for _ in range(200):
        h = [rng.choice("abc") for _ in range(rng.randint(0, 9))]
        r = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        assert edit_distance(h, r) == textbook(h, r)


def test_long_transcripts_are_scored_in_reasonable_work():
    """10 000 characters each way (10⁸ cells): the dynamic programme runs row by row in numpy, not cell by cell."""
    rng = random.Random(1)
    ref = "".join(rng.choice("ab ") for _ in range(10_000))
    hyp = ref[:5_000] + "x" + ref[5_001:]
    assert char_error_rate([hyp], [ref]) == 1 / 10_000
