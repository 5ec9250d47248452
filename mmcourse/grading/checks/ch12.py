"""Chapter 12's checks: the tool-call parser and executor, the tool loop that must stop, the strategy experiment,
and the interview questions."""

from __future__ import annotations

import contextlib
import functools
import io
import re

from mmcourse import zoo
from mmcourse.grading.core import expect_equal, fail, register, register_quiz
from mmcourse.grading.memo import remembered
from mmcourse.recipes import reasoning_tiny as R
from mmcourse.recipes.reasoning_tiny import Reply, ToolError

OBJECTS = [{"colour": "red", "shape": "circle", "size": "small", "x": 0.2, "y": 0.5},
           {"colour": "red", "shape": "square", "size": "small", "x": 0.5, "y": 0.2},
           {"colour": "blue", "shape": "circle", "size": "small", "x": 0.8, "y": 0.7}]


def _tools():
    return {"count": lambda **args: R.count(OBJECTS, **args)}


# ---------------------------------------------------------------- 12.parse_call
PARSED = {  # text -> (name, args), as the tokenizer decodes them and as people write them
    "count(colour=red, shape=circle)": ("count", {"colour": "red", "shape": "circle"}),
    "count ( colour = red )": ("count", {"colour": "red"}),
    "count()": ("count", {}),
    "count ( )": ("count", {}),
    "  count(shape=square)  ": ("count", {"shape": "square"}),
    "zoom(factor=2)": ("zoom", {"factor": "2"}),
}
MALFORMED = ("count(colour=red", "count colour=red", "count(colour)", "count(colour=red, colour=blue)",
             "count(colour=red,)", "(colour=red)", "", "so 2")


def _parse_strict_spacing(text):
    """reads only calls written without spaces: the decoded "count ( colour = red )" is refused"""
    m = re.fullmatch(r"(\w+)\((.*)\)", text)
    if m is None:
        raise ToolError(f"malformed call {text!r}")
    return m[1], dict(p.split("=") for p in m[2].split(",") if p)


def _parse_last_wins(text):
    """a key given twice keeps its last value instead of being refused"""
    m = re.fullmatch(r"\s*(\w+)\s*\((.*)\)\s*", text)
    if m is None:
        raise ToolError(f"malformed call {text!r}")
    args = {}
    for part in m[2].split(",") if m[2].strip() else []:
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ToolError(f"malformed argument {part!r}")
        args[key.strip()] = value.strip()
    return m[1], args


def _parse_none(text):
    """returns None for a malformed call instead of raising ToolError"""
    try:
        return R.parse_call(text)
    except ToolError:
        return None


def _parse_empty_arg(text):
    """'count()' gives {'': ''} instead of no arguments"""
    name, args = R.parse_call(text)
    return (name, args) if args else (name, {"": ""})


@register("12.parse_call", R.parse_call, [_parse_strict_spacing, _parse_last_wins, _parse_none, _parse_empty_arg])
def _test_parse_call(fn):
    for text, want in PARSED.items():
        expect_equal(fn(text), want, f"parse_call({text!r})")
    for text in MALFORMED:
        try:
            got = fn(text)
        except ToolError:
            continue
        fail(f"parse_call({text!r}) must raise ToolError: it is not name(key=value, ...) with distinct keys",
             "ToolError", got)
    return len(PARSED) + len(MALFORMED)


# ---------------------------------------------------------------- 12.execute
def _execute_leaks(text, tools):
    """lets the tool's own exception escape instead of turning it into a ToolError"""
    name, args = R.parse_call(text)
    if name not in tools:
        raise ToolError(f"unknown tool {name!r}")
    return str(tools[name](**args))


def _execute_keyerror(text, tools):
    """an unknown tool raises KeyError, not ToolError"""
    name, args = R.parse_call(text)
    try:
        return str(tools[name](**args))
    except KeyError:
        raise
    except Exception as e:
        raise ToolError(str(e)) from e


def _execute_int(text, tools):
    """returns the tool's number, not its text"""
    name, args = R.parse_call(text)
    try:
        return tools[name](**args)
    except Exception as e:
        raise ToolError(str(e)) from e


@register("12.execute", R.execute, [_execute_leaks, _execute_keyerror, _execute_int])
def _test_execute(fn):
    for text, want in (("count()", "3"), ("count(colour=red)", "2"), ("count(shape=circle)", "2"),
                       ("count(colour=blue, shape=square)", "0"), ("count ( shape = square )", "1")):
        expect_equal(fn(text, _tools()), want, f"execute({text!r}) on a red circle, a red square, a blue circle",
                     "the result is text: the model reads it")
    for text, why in (("zoom(factor=2)", "an unknown tool"), ("count(colour=magenta)", "a tool that raises"),
                      ("count(size=small)", "an argument the tool does not take"),
                      ("count(colour=red", "a malformed call")):
        try:
            got = fn(text, _tools())
        except ToolError:
            continue
        except Exception as e:
            fail(f"execute({text!r}), {why}: must raise ToolError so that the loop can answer with its message",
                 "ToolError", f"{type(e).__name__}: {e}")
        fail(f"execute({text!r}), {why}: must raise ToolError", "ToolError", got)
    return 9


# ---------------------------------------------------------------- 12.tool_loop (fix)
class _Model:
    """A fake model: step(reply_so_far) -> its next continuation, from a list (the last one repeats); it refuses
    to be asked more than `limit` times, so that a loop that never stops fails instead of hanging."""

    def __init__(self, outputs, limit=50):
        self.outputs, self.asked, self.limit = list(outputs), 0, limit

    def __call__(self, so_far):
        if not isinstance(so_far, str):
            fail("the loop must pass the model the reply so far, a str", "a str", so_far)
        self.asked += 1
        if self.asked > self.limit:
            raise _NeverStops(self.limit)
        return self.outputs[min(self.asked, len(self.outputs)) - 1]


class _NeverStops(Exception):
    def __init__(self, limit):
        super().__init__(f"the loop asked the model {limit} times and still did not stop")
        self.limit = limit


def _loop_buggy(step, tools, max_calls=R.MAX_CALLS):
    """on a call that cannot run it asks the model again, with no limit: a model that repeats it loops forever"""
    text, calls = "", 0
    while True:
        out = step(text)
        text = f"{text} {out}" if text else out
        if not out.rstrip().endswith(")"):
            return Reply(R.final_answer(text), text, calls, 0)
        calls += 1
        try:
            text += f" = {R.execute(out, tools)}."
        except ToolError:
            text += " = error."


def _loop_unbounded(step, tools, max_calls=R.MAX_CALLS):
    """stops on a call that cannot run, but never counts the calls that can"""
    text, calls = "", 0
    while True:
        out = step(text)
        text = f"{text} {out}" if text else out
        if not out.rstrip().endswith(")"):
            return Reply(R.final_answer(text), text, calls, 0)
        calls += 1
        try:
            text += f" = {R.execute(out, tools)}."
        except ToolError as e:
            return Reply(f"no answer: {e}", text, calls, 0)


def _loop_one_more(step, tools, max_calls=R.MAX_CALLS):
    """runs max_calls + 1 calls"""
    return R.answer_with_tools(step, tools, max_calls + 1)


def _loop_silent(step, tools, max_calls=R.MAX_CALLS):
    """gives up without saying why: the answer is empty"""
    r = R.answer_with_tools(step, tools, max_calls)
    return r._replace(answer="") if r.answer.startswith("no answer") else r


def _run(fn, outputs, max_calls):
    model = _Model(outputs)
    try:
        reply = fn(model, _tools(), max_calls)
    except _NeverStops as e:
        fail(f"a model that writes {outputs[-1]!r} again and again, max_calls={max_calls}: the loop never stopped",
             f"at most {max_calls + 1} steps", f"{e.limit} steps, and it was still asking",
             "count the calls and stop at max_calls; stop at once on a call that cannot run (ToolError)")
    if not isinstance(reply, Reply):
        fail("the loop must return a Reply(answer, text, calls, tokens)", "a Reply", reply)
    return reply, model.asked


@register("12.tool_loop", R.answer_with_tools, [_loop_buggy, _loop_unbounded, _loop_one_more, _loop_silent])
def _test_tool_loop(fn):
    reply, _ = _run(fn, ["2"], 2)
    expect_equal(reply.answer, "2", "the answer of a model that answers at once, without a tool")
    reply, _ = _run(fn, ["count(colour=red)", "so 2"], 2)
    expect_equal((reply.answer, reply.calls), ("2", 1), "(answer, calls) after one call and its result")
    if "= 2." not in reply.text:
        fail("the tool's result must be added to the reply for the model to read", "'... = 2. ...'", reply.text)
    for bad in ("count(colour)", "zoom(factor=2)", "count(colour=magenta)"):
        reply, asked = _run(fn, [bad], 2)
        if asked != 1 or not reply.answer.startswith("no answer") or len(reply.answer) < 12:
            fail(f"a model that writes {bad!r}: the call cannot run, so the loop must stop at once with an answer "
                 "that says why", "'no answer: <what went wrong>' after 1 step",
                 f"{reply.answer!r} after {asked} steps")
    for max_calls in (0, 1, 3):
        reply, asked = _run(fn, ["count(shape=circle)"], max_calls)
        if reply.calls != max_calls or asked != max_calls + 1 or not reply.answer.startswith("no answer"):
            fail(f"a model that calls count(shape=circle) forever, max_calls={max_calls}: the loop runs "
                 f"{max_calls} calls, then stops with an answer that says so",
                 f"{max_calls} calls in {max_calls + 1} steps, 'no answer: ...'",
                 f"{reply.calls} calls in {asked} steps, {reply.answer!r}")
    return 8


# ---------------------------------------------------------------- 12.strategy (experiment)
EXP_STEPS, MIN_ACCURACY, MAX_TOKENS = 300, 0.9, 10


@functools.cache
def _test_set():
    return R.count_set(zoo.load("llava-tiny", verbose=False))


@remembered
def strategy_scores(strategy: str, seed: int = 0) -> dict:
    """Chapter 05's assistant fine-tuned EXP_STEPS steps on counting conversations in `strategy` alone, then
    asked the test set's questions: its accuracy and mean generated tokens."""
    model = R.build(zoo.load("llava-tiny", verbose=False))
    with contextlib.redirect_stdout(io.StringIO()):  # the check's verdict is the only line it prints
        R.train(model, [strategy], steps=EXP_STEPS, seed=seed, progress=False)
    data = _test_set()
    scores = R.accuracy(R.answer(model, data, strategy), data)
    return {"accuracy": scores["all"], "tokens": scores["tokens"]}


def _strategy_reference():
    return {"strategy": "tool"}


def _strategy_cot():
    """chain-of-thought"""
    return {"strategy": "cot"}


def _strategy_direct():
    """the direct answer"""
    return {"strategy": "direct"}


def _strategy_unknown():
    """a strategy the recipe does not have"""
    return {"strategy": "think harder"}


@register("12.strategy", _strategy_reference, [_strategy_cot, _strategy_direct, _strategy_unknown])
def _test_strategy(fn):
    choice = fn()
    if not isinstance(choice, dict) or set(choice) != {"strategy"}:
        fail("my_strategy() must return a dict with the key strategy", "e.g. {'strategy': 'direct'}", choice)
    s = choice["strategy"]
    if s not in R.STRATEGIES:
        fail("strategy: one of the recipe's strategies", " or ".join(map(repr, R.STRATEGIES)), s)
    got = strategy_scores(s)
    if got["accuracy"] < MIN_ACCURACY or got["tokens"] > MAX_TOKENS:
        fail(f"strategy {s!r}, fine-tuned {EXP_STEPS} steps: {got['accuracy']:.3f} of the counts right with "
             f"{got['tokens']:.1f} generated tokens per answer",
             f"≥ {MIN_ACCURACY} right, ≤ {MAX_TOKENS} tokens", f"{got['accuracy']:.3f} right, "
             f"{got['tokens']:.1f} tokens", "the lecture's table compared the three on both")
    return 1


# ---------------------------------------------------------------- the interview questions
register_quiz(
    "12.quiz_align", "How does the course align two modalities in one embedding space, and where is it measured?",
    "b", "CLIP's two towers are trained so that each image's embedding is nearest its own caption's among the "
    "batch (symmetric InfoNCE); chapter 02 measured it as zero-shot accuracy and retrieval Recall@1, and chapter 07 "
    "aligned audio to images the same way and got text retrieval it was never trained on.",
    choices={"a": "train one classifier per modality on the same labels and average their outputs",
             "b": "contrastive learning: matched pairs pulled together, the other pairs of the batch pushed apart",
             "c": "concatenate the raw inputs and train an autoencoder on them",
             "d": "translate every image into a caption first, then compare captions"},
    wrong={"a": "late fusion shares labels, not a space: nothing makes an image and its caption land close.",
           "c": "reconstruction learns to compress, not to put an image next to its description.",
           "d": "that is a captioning pipeline; there is no shared space to search in."})
register_quiz(
    "12.quiz_fusion", "Which challenge of fusion did chapter 10 measure: a fused model whose image branch learns "
    "almost nothing although the image holds the answer?", "a",
    "Modality imbalance: the modality that lowers the loss first dominates and starves the other; chapter 10 "
    "measured the weak branch's linear-probe accuracy and raised it with gradient modulation (OGM-GE).",
    choices={"a": "modality imbalance", "b": "temporal misalignment", "c": "a missing modality at test time",
             "d": "different numeric ranges of the inputs"},
    wrong={"b": "the images and sounds of chapter 10 are given together; nothing is out of step.",
           "c": "both modalities were there at test time; one was simply never learned.",
           "d": "the inputs were standardised; the starved branch is a matter of which modality learns first."})
register_quiz(
    "12.quiz_missing", "A model must still answer when the camera fails at test time. What did chapters 07 and 09 "
    "show works?", "c",
    "Modality dropout: training with one whole stream zeroed some of the time teaches the model to answer from "
    "either stream alone; chapter 07's camera-off error rate and chapter 09's table with each modality removed "
    "measured it.",
    choices={"a": "nothing: a fused model needs every input", "b": "fill the missing stream with random noise at "
             "test time", "c": "train with modality dropout: drop a whole stream for a share of the training "
             "examples", "d": "train two separate models and never fuse"},
    wrong={"a": "chapter 07's gated model read the audio alone after training with modality dropout.",
           "b": "noise the model never saw in training is no better than zeros, often worse.",
           "d": "that gives up what fusion gains when both streams are there (chapter 07's babble curves)."})
register_quiz(
    "12.quiz_late_fusion", "In chapter 09's task the answer depends on how the image and the sound relate (an "
    "interaction). Which fusion fails it?", "a",
    "Late fusion: each modality is scored on its own and the scores are combined, so no part of the model ever "
    "sees both at once; chapter 09's table showed late fusion far below the fusions that mix the modalities "
    "inside the model (tensor, cross-attention, transformer).",
    choices={"a": "late fusion (combine each modality's own prediction)", "b": "cross-attention fusion",
             "c": "tensor fusion (outer product of the two features)", "d": "a multimodal transformer"},
    wrong={"b": "cross-attention lets each image patch look at the sound: it sees both.",
           "c": "the outer product holds every product of an image and a sound feature: interactions are its point.",
           "d": "a transformer over both token sets mixes them in every layer."})
register_quiz(
    "12.quiz_tool_loss", "In a tool reply \"count(shape=circle) = 2. so 2\", how many of the tool's result tokens "
    "(\"=\", \"2\", \".\") carry loss in training?", 0,
    "None: the tool writes them, the model reads them. Training the model to predict the result would teach it to "
    "guess counts without calling the tool, the very thing the tool is there to replace.",
    wrong={3: "the model would then learn to write the tool's result itself, guessing instead of reading it.",
           1: "not even the count: learning to write it is learning to guess it, without the tool."})
register_quiz(
    "12.quiz_cot_error", "A chain-of-thought reply lists \"red circle, blue square, red circle\" for a scene with "
    "one red circle and one blue square, then answers \"how many circles?\" with 2. Where is the error?", "b",
    "In the list: the count that follows it is right for the list. A wrong list is carried into the answer; the "
    "reasoning step cannot repair what the model did not see.",
    choices={"a": "in the counting step: it counted the list wrong", "b": "in the list: it saw a circle twice",
             "c": "in the question", "d": "nowhere: 2 is right"},
    wrong={"a": "the list has two circles, and 2 is what it says: the count of the list is right.",
           "d": "the scene has one circle."})
