"""Autograding of the exercises: `check("NN.name", your_function)` after each exercise cell.

`core` holds the registry and the comparison helpers; `checks` holds each chapter's checks (importing it registers
them); `check` sits on top of both.
"""

from __future__ import annotations

from typing import Any

from mmcourse.grading import checks  # noqa: F401  (registers every chapter's exercises)
from mmcourse.grading.core import (
    CheckFailed,
    Exercise,
    Mismatch,
    NotImplementedYet,
    expect_close,
    expect_equal,
    fail,
    grade,
    register,
    register_quiz,
    registered,
)

__all__ = [
    "check",
    "exercises",
    "register",
    "register_quiz",
    "Exercise",
    "CheckFailed",
    "NotImplementedYet",
    "Mismatch",
    "expect_close",
    "expect_equal",
    "fail",
]


def exercises() -> dict[str, Exercise]:
    """Every chapter's exercises, by name."""
    return registered()


def check(name: str, obj: Any) -> None:
    """Grade `obj` (your function or class, or your answer to a quiz) for exercise `name`; print a one-line verdict
    or raise CheckFailed."""
    known = exercises()
    if name not in known:
        raise KeyError(f"unknown exercise {name!r}; known exercises: {', '.join(known)}")
    grade(known[name], obj)
