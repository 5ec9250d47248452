"""The chat format: image placeholders, labels only on the answers, clear errors."""

import random

import pytest
import torch

from mmcourse.data import caption_is_correct, sample_scenes
from mmcourse.data.chat import (
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    SYSTEM,
    chat_tokenizer,
    pad_conversations,
    qa_turns,
    tokenize_conversation,
)

TOK = chat_tokenizer()


def words(ids):
    return [TOK.itos[i] if i >= 0 else "IMG" for i in ids]


def test_only_the_answers_and_their_end_carry_labels():
    turns = [("user", "<image> what colour is the circle?"), ("assistant", "red"),
             ("user", "how many shapes are there?"), ("assistant", "2")]
    t = tokenize_conversation(turns, TOK)
    expected = (["<sot>", *SYSTEM.split(), "<user>", "IMG", "what", "colour", "is", "the", "circle", "?",
                 "<assistant>", "red", "<eot>", "<user>", "how", "many", "shapes", "are", "there", "?",
                 "<assistant>", "2", "<eot>"])
    assert words(t.ids) == expected
    learned = [w for w, label in zip(expected, t.labels, strict=True) if label != IGNORE_INDEX]
    assert learned == ["red", "<eot>", "2", "<eot>"]
    assert all(label in (IGNORE_INDEX, i) for i, label in zip(t.ids, t.labels, strict=True))
    assert t.ids.count(IMAGE_TOKEN_INDEX) == 1


def test_placeholders_go_where_the_text_says_and_generation_prompts_end_with_the_assistant():
    t = tokenize_conversation([("user", "<image> and <image>: is there a red circle?")], TOK, system=None,
                              generation_prompt=True)
    assert words(t.ids) == ["<sot>", "<user>", "IMG", "and", "IMG", ":", "is", "there", "a", "red", "circle", "?",
                            "<assistant>"]
    assert set(t.labels) == {IGNORE_INDEX}


@pytest.mark.parametrize("turns, message", [
    ([("user", "what colour is the circle?")], "needs an assistant turn"),
    ([("assistant", "red")], "turns alternate user, assistant"),
    ([("user", "hi"), ("user", "what?"), ("assistant", "red")], "turns alternate"),
    ([("user", "what?"), ("bot", "red")], "role"),
    ([("user", "  "), ("assistant", "red")], "non-empty text"),
    ([], "no turns"),
])
def test_malformed_conversations_are_refused(turns, message):
    with pytest.raises(ValueError, match=message):
        tokenize_conversation(turns, TOK)


def test_padding_and_context():
    a = tokenize_conversation([("user", "<image> what?"), ("assistant", "red")], TOK)
    b = tokenize_conversation([("user", "what colour is the circle?"), ("assistant", "2")], TOK)
    ids, labels = pad_conversations([a, b], TOK.pad_id)
    assert ids.shape == labels.shape == (2, len(b.ids))
    assert ids[0, len(a.ids):].eq(TOK.pad_id).all() and labels[0, len(a.ids):].eq(IGNORE_INDEX).all()
    assert torch.equal(ids[0, :len(a.ids)], torch.tensor(a.ids))
    with pytest.raises(ValueError, match=f"conversation 1 has {len(b.ids)} tokens, more than context_length=8"):
        pad_conversations([a, b], TOK.pad_id, context_length=8)


def test_qa_turns_answer_about_the_scene():
    scenes = sample_scenes(50, 0, max_objects=3)
    rng = random.Random(0)
    for i in range(50):
        objects = scenes.objects(i)
        turns = qa_turns(objects, rng, 3, p_describe=0.5)
        assert [r for r, _ in turns] == ["user", "assistant"] * 3 and turns[0][1].startswith("<image> ")
        if turns[0][1].startswith("<image> describe") or "what is in" in turns[0][1]:
            assert caption_is_correct(turns[1][1], objects)
        assert "<image>" not in "".join(text for _, text in turns[2:])
        tokenize_conversation(turns, TOK)  # every word is known
        assert TOK.unk_id not in tokenize_conversation(turns, TOK).ids
