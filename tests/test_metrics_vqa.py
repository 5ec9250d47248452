"""Official VQA accuracy on hand-worked cases; the simplified (seed) formula for contrast; bad input."""

import pytest

from mmcourse.metrics import (
    normalize_answer,
    process_digit_article,
    process_punctuation,
    vqa_accuracy,
    vqa_accuracy_simplified,
    vqa_score,
)


def _answers(m, answer="2", other="3"):
    """Ten human answers, m of them equal to `answer`."""
    return [answer] * m + [other] * (10 - m)


# Worked by hand: with m of the 10 annotators agreeing with the prediction,
#   leave out one of the m agreeing annotators (m cases): m - 1 matches remain -> min(1, (m - 1) / 3)
#   leave out one of the 10 - m others (10 - m cases): m matches remain      -> min(1, m / 3)
# m = 1: (1 * 0     + 9 * 1/3) / 10 = 3/10
# m = 2: (2 * 1/3   + 8 * 2/3) / 10 = (2/3 + 16/3) / 10 = 6/10
# m = 3: (3 * 2/3   + 7 * 1)   / 10 = (2 + 7) / 10      = 9/10
# m = 4: (4 * 1     + 6 * 1)   / 10 = 1
# The simplified min(m / 3, 1) gives 1/3, 2/3, 1, 1.
@pytest.mark.parametrize(
    "m, official, simplified",
    [(0, 0.0, 0.0), (1, 0.3, 1 / 3), (2, 0.6, 2 / 3), (3, 0.9, 1.0), (4, 1.0, 1.0), (10, 1.0, 1.0)],
)
def test_leave_one_annotator_out_by_hand(m, official, simplified):
    assert vqa_score("2", _answers(m)) == pytest.approx(official)
    assert vqa_accuracy(["2"], [_answers(m)]) == pytest.approx(official)
    assert vqa_accuracy_simplified(["2"], [_answers(m)]) == pytest.approx(simplified)


def test_accuracy_is_the_mean_over_questions():
    # (0.6 + 1.0 + 0.0) / 3
    predictions = ["2", "yes", "red"]
    answers = [_answers(2), ["yes"] * 10, ["blue"] * 10]
    assert vqa_accuracy(predictions, answers) == pytest.approx(1.6 / 3)


def test_more_than_ten_answers_average_over_all_annotators():
    # 12 answers, 2 agree: (2 * 1/3 + 10 * 2/3) / 12 = (22/3) / 12 = 11/18
    assert vqa_score("2", ["2"] * 2 + ["3"] * 10) == pytest.approx(11 / 18)


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("Two", "2"),  # lower-case, number word -> digit
        ("the dog.", "dog"),  # article dropped, final period deleted
        ("A  Cat.", "cat"),
        ("none", "0"),
        ("dont", "don't"),  # contraction restored
        ("yes!", "yes"),  # '!' touches no space: replaced by a space, then whitespace collapses
        ("1,000", "1000"),  # comma between digits: all punctuation deleted, not spaced
        ("3.5", "3.5"),  # a period before a digit stays
        ("black/white", "black white"),  # '/' touching no space becomes a space
        ("red - blue", "red blue"),  # '-' touching a space is deleted
        ("  on the\tleft\n", "on left"),
    ],
)
def test_answer_normalisation(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_pipeline_steps():
    assert process_punctuation("black/white") == "black white"
    assert process_punctuation("black / white") == "black  white"
    assert process_digit_article("The TWO dogs") == "2 dogs"


def test_prediction_is_normalised_before_matching():
    # "Two dogs." -> "2 dogs": 3 annotators agree -> 0.9; the seed's exact matching finds none
    answers = ["2 dogs"] * 3 + ["3 dogs"] * 7
    assert vqa_score("Two dogs.", answers) == pytest.approx(0.9)
    assert vqa_accuracy_simplified(["Two dogs."], [answers]) == 0.0


def test_ground_truths_get_only_the_punctuation_step_and_only_when_they_differ():
    # as in the official script: disagreeing human answers go through the punctuation step
    # ("black/white" -> "black white") ...
    assert vqa_score("black white", ["black/white"] * 4 + ["gray"] * 6) == 1.0
    # ... but identical ones are left as they are, and none gets the digit/article step
    assert vqa_score("black white", ["black/white"] * 10) == 0.0
    assert vqa_score("2", ["two"] * 4 + ["three"] * 6) == 0.0


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="at least 10 human answers .* got 9"):
        vqa_score("2", ["2"] * 9)
    with pytest.raises(ValueError, match=r"answers\[0\]: expected at least 10 human answers"):
        vqa_accuracy_simplified(["2"], [["2"] * 3])
    with pytest.raises(ValueError, match="got 2 predictions and 1 answer lists"):
        vqa_accuracy(["2", "3"], [_answers(2)])
    with pytest.raises(ValueError, match="expected at least one prediction"):
        vqa_accuracy([], [])
    with pytest.raises(TypeError, match="predictions: expected a list, got str"):
        vqa_accuracy("2", [_answers(2)])
    with pytest.raises(TypeError, match="expected an answer string, got int"):
        vqa_score(2, _answers(2))
    with pytest.raises(TypeError, match="expected strings"):
        vqa_score("2", [2] * 10)
