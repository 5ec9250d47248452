"""Conversations about the world's images, in the format of the course's chat models (chapter 05, LLaVA):

    <sot> system <user> <image> question <assistant> answer <eot> <user> question <assistant> answer <eot> ...

Where a user turn says "<image>", `tokenize_conversation` puts IMAGE_TOKEN_INDEX (-200, LLaVA's placeholder) in
the ids: no token of the vocabulary, so an image can never be mistaken for a word; the model splices the image's
projected patch features in its place. The labels are the ids on each assistant answer and its closing <eot> and
IGNORE_INDEX (-100) everywhere else (system text, role tokens, user turns, image): only the answers carry loss.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from mmcourse.data.text import QUESTION_TYPES, Tokenizer, caption, check_rng, make_question, world_words
from mmcourse.data.world import check_names, check_objects
from mmcourse.utils import check_number, describe

__all__ = ["IMAGE_TOKEN_INDEX", "IGNORE_INDEX", "ROLES", "SYSTEM", "DESCRIBE", "chat_tokenizer", "Tokenized",
           "tokenize_conversation", "pad_conversations", "qa_turns"]

IMAGE_TOKEN_INDEX = -200  # LLaVA's placeholder id for an image in input_ids
IGNORE_INDEX = -100  # a label that carries no loss (PyTorch's cross_entropy default)
ROLES = ("user", "assistant")
SYSTEM = "answer questions about the image"
DESCRIBE = ("describe the image", "what is in the image?", "describe the picture")
CHAT_WORDS = ("answer", "questions", "about", "describe", "what")  # added to the world's words


def chat_tokenizer(new_words: Sequence[str] = ()) -> Tokenizer:
    """The world's words, the chat's few extra words, and the role tokens <user> and <assistant> (after them);
    `new_words` (words a fine-tuning teaches, e.g. "4", "(") get the ids after those, so every id of the chat
    models stays what it was: grow the model with `TextDecoder.add_tokens(len(new_words))`."""
    return Tokenizer(words=[*world_words(), *CHAT_WORDS], extra_tokens=(*(f"<{r}>" for r in ROLES), *new_words))


class Tokenized(NamedTuple):
    """One conversation: ids (with IMAGE_TOKEN_INDEX where images go) and labels, lists of equal length."""

    ids: list[int]
    labels: list[int]


def tokenize_conversation(turns: Sequence[tuple[str, str]], tok: Tokenizer, system: str | None = SYSTEM, *,
                          generation_prompt: bool = False) -> Tokenized:
    """turns [(role, text)], roles alternating "user", "assistant", first "user" -> `Tokenized`.

    A training conversation ends with an assistant turn. generation_prompt=True: it ends with a user turn
    instead, and the ids end with <assistant>, where the model's answer starts (labels are then all ignored).
    """
    if isinstance(turns, str) or not isinstance(turns, (list, tuple)) or \
            not all(isinstance(t, (list, tuple)) and len(t) == 2 for t in turns):
        raise TypeError(f"turns: expected a list of (role, text) pairs, got {describe(turns)}")
    if not turns:
        raise ValueError("turns: no turns")
    if system is not None and not isinstance(system, str):
        raise TypeError(f"system: expected a str or None, got {describe(system)}")
    for k, (role, text) in enumerate(turns):
        check_names([role], ROLES, f"turns[{k}] role")
        if role != ROLES[k % 2]:
            raise ValueError(f"turn {k} is a {role!r} turn: turns alternate user, assistant, starting with user; "
                             f"got roles {[r for r, _ in turns]}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"turn {k} ({role}): expected non-empty text, got {text!r}")
    last = turns[-1][0]
    if generation_prompt and last != "user":
        raise ValueError("generation_prompt=True: the conversation must end with the user turn to answer")
    if not generation_prompt and last != "assistant":
        raise ValueError(f"a training conversation needs an assistant turn at the end (the answers are what it "
                         f"learns); got roles {[r for r, _ in turns]}")
    ids, labels = [tok.sot_id], [IGNORE_INDEX]
    if system:
        ids += _words(tok, system)
    labels += [IGNORE_INDEX] * (len(ids) - len(labels))
    for role, text in turns:
        role_id = tok.stoi[f"<{role}>"]
        if role == "user":
            chunks = [_words(tok, chunk) if chunk.strip() else [] for chunk in text.split("<image>")]
            part = [role_id] + [i for k, c in enumerate(chunks) for i in ([IMAGE_TOKEN_INDEX] if k else []) + c]
            ids += part
            labels += [IGNORE_INDEX] * len(part)
        else:
            answer = _words(tok, text) + [tok.eot_id]
            ids += [role_id] + answer
            labels += [IGNORE_INDEX] + answer
    if generation_prompt:
        ids.append(tok.stoi["<assistant>"])
        labels = [IGNORE_INDEX] * len(ids)
    return Tokenized(ids, labels)


def _words(tok: Tokenizer, text: str) -> list[int]:
    return tok.encode(text)[1:-1]  # without <sot> and <eot>


def pad_conversations(rows: Sequence[Tokenized], pad_id: int = 0,
                      context_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Conversations -> ids (B, L) right-padded with pad_id, labels (B, L) padded with IGNORE_INDEX.

    Never cuts: a conversation longer than context_length raises (cutting would drop answers).
    """
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Tokenized) for r in rows):
        raise TypeError(f"rows: expected a list of Tokenized conversations, got {describe(rows)}")
    if not rows:
        raise ValueError("rows: no conversations")
    check_number(pad_id, "pad_id", integer=True, low=0)
    if context_length is not None:
        check_number(context_length, "context_length", integer=True, low=1)
    L = max(len(r.ids) for r in rows)
    if context_length is not None and L > context_length:
        k = max(range(len(rows)), key=lambda i: len(rows[i].ids))
        raise ValueError(f"conversation {k} has {L} tokens, more than context_length={context_length}")
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), L), IGNORE_INDEX, dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r.ids) != len(r.labels):
            raise ValueError(f"conversation {i}: {len(r.ids)} ids but {len(r.labels)} labels")
        ids[i, :len(r.ids)] = torch.tensor(r.ids)
        labels[i, :len(r.labels)] = torch.tensor(r.labels)
    return ids, labels


def qa_turns(objects: list[dict], rng: random.Random, questions: int = 2, *, image: str = "<image>",
             question_types: Sequence[str] = QUESTION_TYPES, p_describe: float = 0.0) -> list[tuple[str, str]]:
    """A multi-turn conversation about a scene: `questions` questions (make_question, types drawn from
    `question_types`) and their answers; the first user turn starts with `image` (the placeholder, or a caption
    of the scene for a text-only conversation, or "" for none). With probability p_describe the first question
    asks for a description and the answer is a caption."""
    check_objects(objects)
    check_rng(rng)
    check_names(question_types, QUESTION_TYPES, "question type", "question_types")
    check_number(questions, "questions", integer=True, low=1, high=100)  # more: no context length holds them
    check_number(p_describe, "p_describe", low=0, high=1)
    types = [t for t in question_types if t != "relation" or len(objects) > 1] or ["count"]
    turns = []
    for k in range(questions):
        if k == 0 and rng.random() < p_describe:
            q, a = rng.choice(DESCRIBE), caption(objects, rng, p_drop_size=0.0)
        else:
            qa = make_question(objects, rng, rng.choice(types))
            q, a = qa["question"], qa["answer"]
        prefix = f"{image} " if k == 0 and image else ""
        turns += [("user", prefix + q), ("assistant", a)]
    return turns
