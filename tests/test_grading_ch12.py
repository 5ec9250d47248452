"""Chapter 12's checks: other right answers pass, the given loop fails (it does not hang), the known mistakes are
named, and a strategy that is not the recipe's is refused before anything trains."""

import re

import pytest

from mmcourse.grading import CheckFailed, check
from mmcourse.grading.checks import ch12
from mmcourse.recipes import reasoning_tiny as R
from mmcourse.recipes.reasoning_tiny import Reply, ToolError


def test_a_parser_without_regular_expressions_passes():
    def parse_call(text):
        name, paren, rest = text.strip().partition("(")
        if not paren or not rest.endswith(")") or not name.strip().isidentifier():
            raise ToolError(f"malformed call {text!r}")
        args = {}
        inside = rest[:-1]
        for part in inside.split(",") if inside.strip() else []:
            key, eq, value = (p.strip() for p in part.partition("="))
            if not eq or not key.isidentifier() or not value.isalnum() or key in args:
                raise ToolError(f"malformed argument {part!r}")
            args[key] = value
        return name.strip(), args

    check("12.parse_call", parse_call)


def test_an_executor_that_checks_the_arguments_first_passes():
    def execute(text, tools):
        name, args = R.parse_call(text)
        if name not in tools:
            raise ToolError(f"no tool {name}")
        try:
            result = tools[name](**args)
        except (TypeError, ValueError) as e:
            raise ToolError(str(e)) from e
        return f"{result}"

    check("12.execute", execute)


def test_a_for_loop_over_the_allowed_calls_passes():
    def answer_with_tools(step, tools, max_calls=2):
        text = ""
        for calls in range(max_calls + 1):
            out = step(text)
            text = f"{text} {out}" if text else out
            if not out.endswith(")"):
                return Reply(R.final_answer(text), text, calls, 0)
            if calls == max_calls:
                break
            try:
                text += f" = {R.execute(out, tools)}."
            except ToolError as e:
                return Reply(f"no answer: {e}", text, calls + 1, 0)
        return Reply("no answer: too many calls", text, max_calls, 0)

    check("12.tool_loop", answer_with_tools)


def test_the_loop_as_given_fails_without_hanging():
    with pytest.raises(CheckFailed, match="did not stop|never|at most"):
        check("12.tool_loop", ch12._loop_buggy)


def test_a_parser_that_needs_calls_without_spaces_is_named():
    def parse_call(text):
        m = re.fullmatch(r"(\w+)\((.*)\)", text)
        if m is None:
            raise ToolError(f"malformed call {text!r}")
        return m[1], dict(p.split("=") for p in m[2].split(",") if p)

    with pytest.raises(CheckFailed, match="parse_call"):
        check("12.parse_call", parse_call)


@pytest.mark.parametrize("choice", [{"strategy": "think harder"}, {"strategy": None}, {"strategy": "tool", "x": 1},
                                    "tool", {"steps": 300}])
def test_a_strategy_that_is_not_the_recipes_is_refused_before_training(monkeypatch, choice):
    def no_training(*args, **kwargs):
        raise AssertionError("the check trained for an answer it should have refused")

    monkeypatch.setattr(ch12, "strategy_scores", no_training)
    with pytest.raises(CheckFailed, match="strategy"):
        check("12.strategy", lambda: choice)
