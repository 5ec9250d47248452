"""Chapter 12's counting assistant: chapter 05's LLaVA fine-tuned to count the shapes of busier scenes (3-5 small
shapes) in three ways, each chosen by its system prompt:

    direct  "how many circles are there?"  ->  "2"
    cot     ... -> "red circle, blue square, pink circle. so 2"   (list the objects left to right, then answer)
    tool    ... -> "count(shape=circle)" [the tool adds " = 2."] "so 2"

    model = build(zoo.load("llava-tiny"))         # a copy, its vocabulary grown by NEW_WORDS
    train(model)                                  # STEPS steps; each conversation in one of the STRATEGIES
    test = count_set(model)                       # new scenes, one counting question each
    replies = answer(model, test, "tool")         # a Reply per question: answer, text, tool calls, tokens
    accuracy(replies, test)                       # the share answered right, over all and by object count

The tool (`count`) reads the scene the world drew the image from: a perfect detector. Its result is text the model
reads, never text it learns to write: those tokens carry no loss. `answer_with_tools` is the loop that runs a
model's calls; it stops after `MAX_CALLS` calls, and a malformed call, an unknown tool or a tool that fails ends
the answer with a message that says so.

Seeds 0-4 on one thread (`benchmarks/bench_seeds_reasoning.py`, about 70 s each), on the same 300 test questions:
direct 0.747-0.803 of the counts right, chain-of-thought 0.753-0.817 (about 14 generated tokens per answer), tool
1.000 on every seed (about 7 tokens).
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from mmcourse.data import render, sample_scenes
from mmcourse.data.chat import (
    IGNORE_INDEX,
    Tokenized,
    chat_tokenizer,
    pad_conversations,
    tokenize_conversation,
)
from mmcourse.data.text import COUNT_COLOUR_Q, COUNT_Q, COUNT_SHAPE_Q, PLURALS, check_rng, split_words
from mmcourse.data.world import COLOUR_NAMES, SHAPES, check_objects
from mmcourse.metrics.vqa import normalize_answer
from mmcourse.models.llava import LLaVA
from mmcourse.recipes import llava_tiny
from mmcourse.recipes.llava_tiny import patch_features
from mmcourse.train import History, fit
from mmcourse.utils import check_number, describe, get_device, make_generator, python_rng, seed_everything

__all__ = ["STRATEGIES", "SYSTEMS", "NEW_WORDS", "OBJECTS", "STEPS", "BATCH_SIZE", "HYPER", "MAX_CALLS",
           "MAX_NEW_TOKENS", "tokenizer", "scenes", "question", "listing", "call_text", "reply", "conversation",
           "stream", "build", "train", "ToolError", "count", "parse_call", "execute", "Reply", "final_answer",
           "answer_with_tools", "CountSet", "count_set", "answer", "accuracy"]

STRATEGIES = ("direct", "cot", "tool")
SYSTEMS = {"direct": "answer questions about the image", "cot": "list the objects then answer",
           "tool": "answer with the count tool"}
NEW_WORDS = ("4", "5", "list", "then", "with", "tool", "count", "so", "(", ")", "=")
OBJECTS = (3, 5)  # shapes per scene, at least and at most: all small, so that five fit in 32 x 32 pixels
STEPS = 800
BATCH_SIZE = 32
HYPER = dict(lr=1e-3, betas=(0.9, 0.98), weight_decay=0.0, warmup=20, grad_clip=1.0)
MAX_CALLS = 2  # tool calls per answer
MAX_NEW_TOKENS = {"direct": 3, "cot": 24, "tool": 10}  # per generation: a number; five objects listed; one call


def tokenizer():
    return chat_tokenizer(NEW_WORDS)


def scenes(n: int, seed: int = 0, split: str = "train"):
    """n scenes of 3-5 small shapes (split as in `sample_scenes`)."""
    return sample_scenes(n, seed, min_objects=OBJECTS[0], max_objects=OBJECTS[1], split=split, sizes=("small",))


def question(objects: list[dict], rng: random.Random) -> tuple[str, dict[str, str], int]:
    """A counting question about the scene: (question, the arguments of the tool call that answers it, the answer).
    A third of them count every shape, a third one colour, a third one shape; the colour or shape asked about is
    one of the scene's three times in four."""
    check_objects(objects)
    check_rng(rng)
    form = rng.randrange(3)
    if form == 0:
        return rng.choice(COUNT_Q), {}, len(objects)
    key, names = ("colour", COLOUR_NAMES) if form == 1 else ("shape", SHAPES)
    value = rng.choice([o[key] for o in objects]) if rng.random() < 0.75 else rng.choice(names)
    text = rng.choice(COUNT_COLOUR_Q).format(colour=value) if form == 1 else \
        rng.choice(COUNT_SHAPE_Q).format(plural=PLURALS[value])
    return text, {key: value}, sum(o[key] == value for o in objects)


def listing(objects: list[dict]) -> str:
    """The scene's objects from left to right: "red circle, blue square, pink circle"."""
    return ", ".join(f"{o['colour']} {o['shape']}" for o in sorted(check_objects(objects), key=lambda o: o["x"]))


def call_text(args: dict[str, str]) -> str:
    """{"shape": "circle"} -> "count(shape=circle)"."""
    return "count(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"


def reply(strategy: str, objects: list[dict], args: dict[str, str], n: int) -> str:
    """The assistant's whole reply in `strategy`, the tool's " = n." included for "tool"."""
    if strategy == "direct":
        return str(n)
    if strategy == "cot":
        return f"{listing(objects)}. so {n}"
    if strategy == "tool":
        return f"{call_text(args)} = {n}. so {n}"
    raise ValueError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")


def conversation(objects: list[dict], rng: random.Random, strategy: str, tok=None) -> Tokenized:
    """One training conversation: the strategy's system prompt, "<image> question", the reply. In a tool reply
    the tool's result (" = n.") is read, not written: its labels are IGNORE_INDEX."""
    tok = tok or tokenizer()
    text, args, n = question(objects, rng)
    turns = [("user", "<image> " + text), ("assistant", reply(strategy, objects, args, n))]
    ids, labels = tokenize_conversation(turns, tok, system=SYSTEMS[strategy])
    if strategy == "tool":
        start = ids.index(tok.stoi[")"]) + 1
        end = start + len(tok.encode(f" = {n}.")) - 2  # the result's tokens, without <sot> and <eot>
        labels = labels[:start] + [IGNORE_INDEX] * (end - start) + labels[end:]
    return Tokenized(ids, labels)


def stream(model: LLaVA, strategies: Sequence[str] = STRATEGIES, batch_size: int = BATCH_SIZE, seed: int = 0):
    """step -> {"ids", "labels", "features"}: batch_size new scenes per step (training pairs), a conversation in a
    strategy drawn from `strategies` about each."""
    _check_strategies(strategies)
    tok = tokenizer()

    def batch(step: int) -> dict:
        s = scenes(batch_size, make_generator(seed, f"count-scenes/{step}"))
        rng = python_rng(seed, f"count-conversations/{step}")
        rows = [conversation(s.objects(i), rng, rng.choice(strategies), tok) for i in range(batch_size)]
        ids, labels = pad_conversations(rows, tok.pad_id)
        images = render(s, 32, make_generator(seed, f"count-render/{step}"))
        return {"ids": ids, "labels": labels,
                "features": patch_features(model.vision_tower, images, model.feature_layer)}

    return batch


def build(base: LLaVA) -> LLaVA:
    """A copy of chapter 05's assistant whose language model knows NEW_WORDS (the zoo's model stays as it is)."""
    if not isinstance(base, LLaVA):
        raise TypeError(f"base: expected chapter 05's LLaVA (zoo.load('llava-tiny')), got {describe(base)}")
    model = copy.deepcopy(base)
    model.language_model.add_tokens(len(NEW_WORDS))
    return model


def train(model: LLaVA, strategies: Sequence[str] = STRATEGIES, steps: int = STEPS, batch_size: int = BATCH_SIZE,
          seed: int = 0, device: torch.device | str | None = None, **fit_kw) -> History:
    """Fine-tune the projector and the language model on counting conversations (`stream`); fit_kw go to
    `mmcourse.train.fit` and override HYPER."""
    if model.language_model.vocab_size != len(tokenizer()):
        raise ValueError(f"the model's vocabulary has {model.language_model.vocab_size} tokens, the counting "
                         f"conversations {len(tokenizer())}: build the model with build(base) first")
    model.requires_grad_(False)
    model.projector.requires_grad_(True)
    model.language_model.requires_grad_(True)
    seed_everything(seed)

    def step(model: LLaVA, batch: dict) -> Tensor:
        return model(batch["ids"], batch["labels"], features=batch["features"]).loss

    fit_kw = {"desc": "counting", **HYPER, **fit_kw}
    return fit(model, step, stream(model, strategies, batch_size, seed + 1), steps, device=device or get_device(),
               **fit_kw)


# ----------------------------------------------------------------------------------------------- the tool
class ToolError(Exception):
    """A call that cannot run: malformed, an unknown tool, or a tool that failed."""


def count(objects: list[dict], colour: str | None = None, shape: str | None = None) -> int:
    """The tool: how many of the scene's objects have this colour and this shape (None: any)."""
    if colour is not None and colour not in COLOUR_NAMES:
        raise ValueError(f"unknown colour {colour!r}; the colours are {', '.join(COLOUR_NAMES)}")
    if shape is not None and shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; the shapes are {', '.join(SHAPES)}")
    return sum((colour is None or o["colour"] == colour) and (shape is None or o["shape"] == shape)
               for o in objects)


_CALL = re.compile(r"\s*([a-z_]\w*)\s*\((.*)\)\s*")
_LAST_CALL = re.compile(r"[a-z_]\w*\s*\([^()]*\)\s*$")  # the call a continuation ends on
_ARG = re.compile(r"\s*([a-z_]\w*)\s*=\s*(\w+)\s*")


def parse_call(text: str) -> tuple[str, dict[str, str]]:
    """"count(colour=red, shape=circle)" -> ("count", {"colour": "red", "shape": "circle"}); ToolError when the
    text is not name(key=value, ...) with distinct keys."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {describe(text)}")
    call = _CALL.fullmatch(text)
    if call is None:
        raise ToolError(f"malformed call {text.strip()!r}: expected name(key=value, ...)")
    name, inside = call.groups()
    args = {}
    for part in inside.split(",") if inside.strip() else []:
        arg = _ARG.fullmatch(part)
        if arg is None:
            raise ToolError(f"malformed argument {part.strip()!r} in {text.strip()!r}: expected key=value")
        if arg[1] in args:
            raise ToolError(f"argument {arg[1]!r} given twice in {text.strip()!r}")
        args[arg[1]] = arg[2]
    return name, args


def execute(text: str, tools: dict[str, Callable[..., object]]) -> str:
    """Run the call `text` with `tools` (name -> function of keyword arguments) and return its result as text;
    ToolError (saying what went wrong) for a malformed call, an unknown tool or a tool that raises."""
    name, args = parse_call(text)
    if name not in tools:
        raise ToolError(f"unknown tool {name!r}; the tools are {', '.join(sorted(tools))}")
    try:
        return str(tools[name](**args))
    except Exception as e:  # the tool's own error, whatever it is, becomes the answer's message
        raise ToolError(f"the tool {name!r} failed on {text.strip()!r}: {e}") from e


class Reply(NamedTuple):
    """One answer: the final answer, the whole reply text (tool results included), the tool calls made, and the
    tokens the model generated."""

    answer: str
    text: str
    calls: int
    tokens: int


def final_answer(text: str) -> str:
    """The answer a reply ends on: the word after its last "so", or the whole reply when it has none."""
    words = split_words(text)
    after = [k + 1 for k, w in enumerate(words[:-1]) if w == "so"]
    return words[after[-1]] if after else text.strip()


def answer_with_tools(step: Callable[[str], str], tools: dict[str, Callable[..., object]],
                      max_calls: int = MAX_CALLS) -> Reply:
    """Run a model with tools. step(reply_so_far) -> the model's continuation: up to and with a call's ")", or to
    the end of its reply. After a call the tool's result is added (" = result.") and the model goes on.

    Stops after `max_calls` calls; a call that cannot run ends the answer with a message that says why."""
    check_number(max_calls, "max_calls", integer=True, low=0)
    text, calls, tokens = "", 0, 0
    while True:
        out = step(text)
        text, tokens = f"{text} {out}" if text else out, tokens + len(split_words(out))
        if not out.rstrip().endswith(")"):
            return Reply(final_answer(text), text, calls, tokens)
        if calls == max_calls:
            return Reply(f"no answer: still calling tools after {max_calls} calls", text, calls, tokens)
        calls += 1
        call = _LAST_CALL.search(out)
        try:
            result = execute(out if call is None else call[0], tools)
        except ToolError as e:
            return Reply(f"no answer: {e}", text, calls, tokens)
        text += f" = {result}."


# ----------------------------------------------------------------------------------------------- evaluation
@dataclass
class CountSet:
    """Test questions, one per scene: its images, their features, the questions, the true counts and the tool
    calls that answer them, the scenes' objects."""

    images: Tensor  # (N, 3, 32, 32)
    features: Tensor  # (N, P, vision_width)
    questions: list[str]
    truths: list[int]
    calls: list[str]
    objects: list[list[dict]]

    def __len__(self) -> int:
        return len(self.questions)


def count_set(model: LLaVA, n: int = 300, seed: int = 1000, split: str = "train") -> CountSet:
    """n new scenes of 3-5 small shapes, one counting question each, with the model's tower's features."""
    s = scenes(n, seed, split)
    images = render(s, 32, make_generator(seed, "count-test-render"))
    rng = python_rng(seed, "count-test-questions")
    objects = [s.objects(i) for i in range(n)]
    qs = [question(o, rng) for o in objects]
    return CountSet(images, patch_features(model.vision_tower, images, model.feature_layer), [q for q, _, _ in qs],
                    [t for _, _, t in qs], [call_text(a) for _, a, _ in qs], objects)


@torch.no_grad()
def answer(model: LLaVA, data: CountSet, strategy: str, batch_size: int = 100,
           tools: Callable[[list[dict]], dict] | None = None) -> list[Reply]:
    """Greedy replies to every question of data in `strategy`. "tool" runs each question's calls with
    `answer_with_tools`; tools(objects) gives a scene's tools (default: the perfect `count` of that scene)."""
    _check_strategies([strategy])
    kw = dict(system=SYSTEMS[strategy], tok=tokenizer(), max_new_tokens=MAX_NEW_TOKENS[strategy])
    if strategy != "tool":
        texts = llava_tiny.answer(model, data.questions, data.features, batch_size, **kw)
        return [Reply(final_answer(t), t, 0, len(split_words(t))) for t in texts]
    tools = tools or (lambda objects: {"count": lambda **args: count(objects, **args)})
    replies = []
    for i, q in enumerate(data.questions):
        def step(so_far: str, i=i, q=q) -> str:  # the model's continuation, cut after a call's ")"
            out = llava_tiny.answer(model, [q], data.features[i:i + 1], replies=[so_far], **kw)[0]
            return out[:out.index(")") + 1] if ")" in out else out
        replies.append(answer_with_tools(step, tools(data.objects[i])))
    return replies


def accuracy(replies: Sequence[Reply], data: CountSet) -> dict:
    """The share of replies whose answer is the true count (after the official VQA normalisation), over all and
    by the scene's number of objects; the mean tokens generated per reply."""
    if len(replies) != len(data):
        raise ValueError(f"replies: expected one per question ({len(data)}), got {len(replies)}")
    right = [normalize_answer(r.answer) == str(t) for r, t in zip(replies, data.truths, strict=True)]
    sizes = [len(o) for o in data.objects]
    by = {k: sum(r for r, z in zip(right, sizes, strict=True) if z == k) / sizes.count(k) for k in sorted(set(sizes))}
    return {"all": sum(right) / len(right), "by objects": by,
            "tokens": sum(r.tokens for r in replies) / len(replies)}


def _check_strategies(strategies: Sequence[str]) -> None:
    if isinstance(strategies, str) or not strategies or any(s not in STRATEGIES for s in strategies):
        raise ValueError(f"strategies: expected a non-empty list drawn from {STRATEGIES}, got {strategies!r}")
