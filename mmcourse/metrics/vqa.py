"""VQA accuracy as the official VQA evaluation script computes it (Antol et al. 2015; VQA v2).

Each question has (at least) ten human answers. A predicted answer is first normalised:

    1. newlines/tabs -> spaces, strip;
    2. punctuation: each mark in PUNCTUATION is deleted if it touches a space (or if the text holds a
       comma between two digits, "1,000"), otherwise replaced by a space ("black/white" -> "black white");
       then every period not followed by a digit is deleted ("3.5" keeps its period);
    3. digits and articles: lower-case, split into words, number words "zero".."ten" (and "none") -> digits,
       drop "a", "an", "the", and restore apostrophes of common contractions ("dont" -> "don't").

The human answers get only step 2, and only when they are not all identical (the official script relies on
the dataset's answers being normalised already: give ground truths as digits, lower-case, without articles;
`normalize_answer` does it). Then, over the leave-one-annotator-out subsets:

    acc(pred) = 1/10 * sum over annotators i of min(1, #{j != i : answer_j == pred} / 3)

With m of the ten humans agreeing this is 0, 0.3, 0.6, 0.9, 1 for m = 0, 1, 2, 3, >= 4.
Seed bug #3, `min(#matches / 3, 1)` without normalisation, gives 0, 1/3, 2/3, 1, 1: too generous as soon as
some annotators agree, and it misses "Two" == "2". It is kept as `vqa_accuracy_simplified` for teaching.
"""

from __future__ import annotations

import re

__all__ = [
    "normalize_answer",
    "process_punctuation",
    "process_digit_article",
    "vqa_score",
    "vqa_accuracy",
    "vqa_accuracy_simplified",
]

MIN_ANNOTATORS = 10
PUNCTUATION = list(';/[]"{}()=+\\_-><@`,?!')
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}  # fmt: skip
ARTICLES = {"a", "an", "the"}
# A subset of the official list (which also has forms like "shouldnt've"); its capitalised keys ("Im")
# never match the lower-cased words, so they are left out.
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldnt": "couldn't", "couldve": "could've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't", "hasnt": "hasn't",
    "havent": "haven't", "hes": "he's", "isnt": "isn't", "itll": "it'll", "mightve": "might've",
    "mustnt": "mustn't", "oclock": "o'clock", "shouldnt": "shouldn't", "shouldve": "should've",
    "thats": "that's", "theres": "there's", "theyre": "they're", "theyve": "they've", "wasnt": "wasn't",
    "werent": "weren't", "whats": "what's", "wheres": "where's", "whos": "who's", "wont": "won't",
    "wouldnt": "wouldn't", "wouldve": "would've", "youre": "you're", "youve": "you've",
}  # fmt: skip
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
# The official pattern is "(?!<=\d)(\.)(?!\d)"; its "(?!<=\d)" (a typo for a look-behind) never fires,
# so in effect it deletes every period not followed by a digit.
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")


def process_punctuation(text: str) -> str:
    """Step 2: delete punctuation that touches a space (or all of it around "1,000"), else make it a space."""
    _check_text(text, "text")
    glue = _COMMA_BETWEEN_DIGITS.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        touches_space = mark + " " in text or " " + mark in text
        out = out.replace(mark, "" if touches_space or glue else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def process_digit_article(text: str) -> str:
    """Step 3: lower-case, number words -> digits, drop articles, restore contractions' apostrophes."""
    _check_text(text, "text")
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


def normalize_answer(answer: str) -> str:
    """The official normalisation of a predicted answer: whitespace, punctuation, digits and articles."""
    _check_text(answer, "answer")
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def vqa_score(prediction: str, answers: list[str]) -> float:
    """Official accuracy of one prediction against >= 10 human answers (mean over leave-one-out subsets)."""
    _check_answers(answers, "answers")
    _check_text(prediction, "prediction")
    prediction = normalize_answer(prediction)
    if len(set(answers)) > 1:
        answers = [process_punctuation(answer) for answer in answers]
    matches = [answer == prediction for answer in answers]
    total = sum(matches)
    return sum(min(1.0, (total - own) / 3) for own in matches) / len(answers)


def vqa_accuracy(predictions: list[str], answers: list[list[str]]) -> float:
    """Official VQA accuracy of a set of questions (in [0, 1]; the official script prints 100 x this)."""
    _check_pairs(predictions, answers)
    return sum(vqa_score(p, a) for p, a in zip(predictions, answers, strict=True)) / len(predictions)


def vqa_accuracy_simplified(predictions: list[str], answers: list[list[str]]) -> float:
    """Seed bug #3, for teaching: min(#exact matches / 3, 1); no normalisation, no leave-one-out."""
    _check_pairs(predictions, answers)
    for i, human in enumerate(answers):
        _check_answers(human, f"answers[{i}]")
    scores = [min(human.count(p) / 3, 1.0) for p, human in zip(predictions, answers, strict=True)]
    return sum(scores) / len(scores)


def _check_pairs(predictions, answers) -> None:
    for name, value in (("predictions", predictions), ("answers", answers)):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise TypeError(f"{name}: expected a list, got {type(value).__name__}")
    if not predictions:
        raise ValueError("predictions: expected at least one prediction, got an empty list")
    for p in predictions:
        _check_text(p, "predictions")
    if len(predictions) != len(answers):
        raise ValueError(
            f"predictions and answers: expected one list of human answers per prediction, "
            f"got {len(predictions)} predictions and {len(answers)} answer lists"
        )


def _check_text(text, name: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected an answer string, got {type(text).__name__} {text!r}"[:120])


def _check_answers(answers, name: str) -> None:
    if isinstance(answers, str) or not isinstance(answers, (list, tuple)):
        raise TypeError(f"{name}: expected a list of human answer strings, got {type(answers).__name__}")
    if len(answers) < MIN_ANNOTATORS:
        raise ValueError(
            f"{name}: expected at least {MIN_ANNOTATORS} human answers (the VQA protocol), got {len(answers)}"
        )
    if not all(isinstance(a, str) for a in answers):
        raise TypeError(f"{name}: expected strings, got {[type(a).__name__ for a in answers]}")
