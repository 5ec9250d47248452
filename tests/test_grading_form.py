"""The self-quiz form (mmcourse.grading.form): each answer graded by the quiz's own check as soon as it is given,
the explanation shown once right, the score kept; only registered quizzes accepted."""

import pytest

from mmcourse.grading import exercises
from mmcourse.grading.form import quiz_form, verdict

QUIZZES = ["12.quiz_align", "12.quiz_tool_loss"]


def _parts(form, k):
    question, control, feedback = form.children[k].children
    return question, control, feedback


def test_verdict_explains_a_right_answer_and_says_why_a_wrong_one_is_wrong():
    ex = exercises()["12.quiz_align"]
    right, message = verdict(ex, ex.reference)
    assert right and message.startswith("✓") and ex.explanation in message
    for wrong in ex.mutants:
        right, message = verdict(ex, wrong)
        assert not right and message.startswith("✗") and f"({wrong}) is not right" in message


def test_verdict_refuses_an_exercise_that_is_not_a_quiz():
    with pytest.raises(ValueError, match="not a quiz"):
        verdict(exercises()["12.parse_call"], "b")


def test_form_grades_choices_and_numbers_and_keeps_the_score():
    form = quiz_form(QUIZZES)
    score = form.children[-1]
    question, choice, feedback = _parts(form, 0)
    assert "align" in question.value and choice.value is None and feedback.value == ""
    assert [v for _, v in choice.options] == [None, "a", "b", "c", "d"]
    assert "0 / 2" in score.value
    choice.value = "a"
    assert "✗" in feedback.value and "0 / 2" in score.value
    choice.value = "b"
    assert "✓ right." in feedback.value and "1 / 2" in score.value
    _, number, feedback = _parts(form, 1)
    number.value = "three"
    assert "is not a number" in feedback.value and "1 / 2" in score.value
    number.value = "3"
    assert "✗" in feedback.value and "1 / 2" in score.value
    number.value = "0"
    assert "✓" in feedback.value and "2 / 2" in score.value
    choice.value = "c"  # changing a right answer to a wrong one takes its point back
    assert "1 / 2" in score.value


def test_form_escapes_html_in_feedback():
    form = quiz_form(["12.quiz_tool_loss"])
    _, number, feedback = _parts(form, 0)
    number.value = "<b>x</b>"
    assert "<b>x</b>" not in feedback.value and "&lt;b&gt;" in feedback.value


@pytest.mark.parametrize("names", [[], "12.quiz_align", ["12.parse_call"], ["99.nope"]])
def test_form_refuses_what_is_not_a_list_of_quizzes(names):
    with pytest.raises(ValueError, match="names"):
        quiz_form(names)
