"""Autograding of the exercises: `check("NN.name", your_function)` after each exercise cell."""

from .core import (
    CheckFailed,
    Exercise,
    Mismatch,
    NotImplementedYet,
    check,
    exercises,
    expect_close,
    expect_equal,
    fail,
    register,
)

__all__ = [
    "check",
    "exercises",
    "register",
    "Exercise",
    "CheckFailed",
    "NotImplementedYet",
    "Mismatch",
    "expect_close",
    "expect_equal",
    "fail",
]
