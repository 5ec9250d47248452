"""Captions, noisy captions, questions, annotator answers and the tokenizer of the shapes world."""

import random
import re

import pytest
import torch

from mmcourse.data import (
    ANSWERS,
    CLASS_NAMES,
    COLOUR_NAMES,
    EOT_ID,
    HELD_OUT,
    SHAPES,
    ZERO_SHOT_TEMPLATES,
    CaptionDataset,
    Tokenizer,
    VQADataset,
    annotator_answers,
    caption,
    class_prompts,
    make_question,
    motion_caption,
    sample_scenes,
)
from mmcourse.data.text import SHAPE_SYNONYMS

SHAPE_WORD = {w: s for s in SHAPES for w in (s, *SHAPE_SYNONYMS[s])}
PAIR = re.compile(rf"\b({'|'.join(COLOUR_NAMES)}) ({'|'.join(sorted(SHAPE_WORD, key=len, reverse=True))})\b")


def mentioned_pairs(text: str) -> set:
    return {(c, SHAPE_WORD[s]) for c, s in PAIR.findall(text)}


def scene_pairs(objects) -> set:
    return {(o["colour"], o["shape"]) for o in objects}


def test_captions_name_exactly_the_rendered_objects_and_noisy_ones_do_not():
    ds = CaptionDataset(400, seed=0, max_objects=3, noise_fraction=0.25)
    assert int((~ds.clean).sum()) == 100  # exactly the asked fraction
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            truth, said = scene_pairs(ds.objects[i]), mentioned_pairs(ds.caption(i))
            assert (said == truth) == bool(ds.clean[i]), (ds.objects[i], ds.caption(i))
            assert all(mentioned_pairs(r) == truth for r in ds.references[i])


def test_relational_captions_agree_with_positions():
    rng = random.Random(0)
    s = sample_scenes(300, 1, min_objects=2, max_objects=2)
    words = {"left of": lambda a, b: a["x"] < b["x"], "right of": lambda a, b: a["x"] > b["x"],
             "above": lambda a, b: a["y"] < b["y"], "below": lambda a, b: a["y"] > b["y"]}
    words |= {"over": words["above"], "under": words["below"]}
    checked = 0
    for i in range(len(s)):
        objs = s.objects(i)
        text = caption(objs, rng, p_relation=1.0, p_synonym=0.0)
        for rel, holds in words.items():
            m = re.search(rf"(\w+ \w+) (?:is )?(?:to the )?{rel} an? (?:\w+ )?(\w+ \w+)$", text)
            if m:
                by_name = {f"{o['colour']} {o['shape']}": o for o in objs}
                a, b = by_name[m.group(1)], by_name[m.group(2)]
                assert holds(a, b), text
                checked += 1
    assert checked > 250


def test_augmentation_varies_wording_and_covers_zero_shot_prompts():
    ds = CaptionDataset(300, seed=1, max_objects=1, split="train")
    seen = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        seen |= {ds.caption(i) for i in range(len(ds))}
    assert len(seen) > 700  # re-worded each epoch
    for template in ZERO_SHOT_TEMPLATES:
        pattern = re.compile("^" + template.format(r"an? \w+ \w+") + "$")
        assert any(pattern.match(t) for t in seen), template
    assert any(t.startswith("a photo of") for t in seen)
    prompts = class_prompts()
    assert len(prompts) == len(CLASS_NAMES) and prompts[3][1] == "a photo of an orange circle"


def test_held_out_pairs_never_in_train_captions():
    ds = CaptionDataset(500, seed=2, max_objects=2, split="train")
    held = set(HELD_OUT)
    for epoch in range(2):
        ds.set_epoch(epoch)
        assert all(mentioned_pairs(ds.caption(i)).isdisjoint(held) for i in range(len(ds)))


def test_questions_have_the_right_answers():
    rng = random.Random(3)
    s = sample_scenes(400, 3, max_objects=3)
    for i in range(len(s)):
        objs = s.objects(i)
        qa = make_question(objs, rng)
        q, a = qa["question"], qa["answer"]
        assert a in ANSWERS
        if q.startswith("how many"):
            if "shapes" in q or "objects are in" in q:
                assert int(a) == len(objs)
            else:
                thing = re.search(r"how many (\w+)", q).group(1)
                assert int(a) == sum(thing in (o["colour"], o["shape"] + "s") for o in objs)
        elif q.startswith("is there"):
            assert (a == "yes") == bool(mentioned_pairs(q) <= scene_pairs(objs))
        elif "colour" in q:
            shape = re.search(r"the (\w+)\?", q).group(1)
            assert [o["colour"] for o in objs if o["shape"] == shape] == [a]
    with pytest.raises(ValueError, match="at least 2 objects"):
        make_question(s.objects(0)[:1], rng, "relation")
    with pytest.raises(ValueError, match="unknown question type"):
        make_question(s.objects(0), rng, "texture")


def vqa_normalise(answer: str) -> str:
    """A small independent version of the official VQA answer normalisation."""
    numbers = {"zero": "0", "one": "1", "two": "2", "three": "3"}
    words = re.sub(r"[!?.,;]", "", answer.lower()).split()
    return " ".join(numbers.get(w, w) for w in words if w not in ("a", "an", "the"))


def test_annotator_answers_have_controlled_agreement():
    rng = random.Random(4)
    for answer in ANSWERS:
        for n_match in (0, 3, 7, 10):
            answers = annotator_answers(answer, rng, n_match)
            assert len(answers) == 10
            assert sum(vqa_normalise(x) == answer for x in answers) == n_match
    many = [x for a in ("2", "circle", "red") for x in annotator_answers(a, rng, 5)]
    assert {"two", "a circle", "a red one"} & set(many)  # normalisation matters
    ds = VQADataset(50, seed=5)
    batch = ds.collate([ds[j] for j in range(8)])
    assert batch["prompt_ids"][:, 1].eq(ds.tokenizer.image_id).all()  # <image> right after <sot>
    assert batch["answer"].tolist() == [ANSWERS.index(a) for a in batch["answers_text"]]
    for item in (ds[j] for j in range(len(ds))):
        assert sum(vqa_normalise(x) == item["answer"] for x in item["answers"]) == item["n_match"] >= 3


def test_tokenizer_round_trip_and_no_unknown_words():
    tok = Tokenizer()
    assert tok.itos[:5] == ["<pad>", "<sot>", "<eot>", "<unk>", "<image>"] and Tokenizer().itos == tok.itos
    rng = random.Random(5)
    s = sample_scenes(200, 5, max_objects=3)
    texts = [caption(s.objects(i), rng) for i in range(200)]
    texts += [caption(s.objects(i), augment=False) for i in range(50)]
    texts += [make_question(s.objects(i), rng)["question"] for i in range(200)]
    texts += [motion_caption(s.objects(i)[0], "left", "quickly", True, rng) for i in range(20)]
    texts += [x for a in ANSWERS for x in annotator_answers(a, rng, 5)]
    for text in texts:
        ids = tok.encode(text)
        assert tok.unk_id not in ids, text
        assert tok.decode(ids) == text.lower()
    assert tok.decode(tok.encode("A Red  circle, LEFT of <image>?")) == "a red circle, left of <image>?"
    assert tok.decode(tok.encode("a plaid circle")) == "a <unk> circle"


def test_batch_encode_pads_and_truncates_keeping_eot():
    tok = Tokenizer()
    texts = ["a red circle", "a photo of a large green square left of a small blue triangle", "square"]
    ids = tok(texts)
    assert ids.dtype == torch.long and ids.shape == (3, len(tok.encode(texts[1])))
    assert ids[0, 5:].eq(0).all()  # padding is 0 after <eot>
    short = tok(texts, context_length=6)
    assert short.shape == (3, 6) and short[1, -1] == EOT_ID and short[1, 0] == tok.sot_id
    assert tok.decode(short[1]) == "a photo of a"
    with pytest.raises(ValueError, match="more than context_length"):
        tok(texts, context_length=6, truncate=False)
    with pytest.raises(ValueError, match="empty text"):
        tok.encode("  ")


def test_wrong_captions_of_a_training_split_never_name_a_held_out_pair():
    held = {(c, s) for c, s in HELD_OUT}
    ds = CaptionDataset(600, seed=2, max_objects=3, noise_fraction=1.0, split="train")
    named = set().union(*(mentioned_pairs(ds.caption(i)) for i in range(len(ds))))
    assert named and not named & held
    everything = CaptionDataset(600, seed=2, max_objects=3, noise_fraction=1.0)  # split "all": any pair may appear
    assert set().union(*(mentioned_pairs(everything.caption(i)) for i in range(600))) & held


def test_parse_caption_reads_every_wording_of_the_world():
    import random

    from mmcourse.data import caption, caption_is_correct, parse_caption, sample_scenes

    scenes, rng = sample_scenes(500, 3, max_objects=3), random.Random(0)
    for i in range(500):
        objects, text = scenes.objects(i), caption(scenes.objects(i), rng)
        assert caption_is_correct(text, objects, sizes=False), text
        assert caption_is_correct(caption(objects, augment=False), objects)
    assert parse_caption("a photo of a big red disk left of a blue box") == [
        {"colour": "red", "shape": "circle", "size": "large"}, {"colour": "blue", "shape": "square", "size": None}]
    two = [{"colour": "red", "shape": "circle", "size": "small"}, {"colour": "red", "shape": "circle", "size": "large"}]
    assert caption_is_correct("a large red circle and a small red circle", two)
    assert not caption_is_correct("a large red circle", two)  # one object missing
    assert not caption_is_correct("a small red circle and a small red circle", two)  # a size wrong
    assert not caption_is_correct("a red circle and a red circle", two)  # sizes asked for, not given


def test_extra_tokens_come_after_the_words():
    from mmcourse.data import Tokenizer

    plain, extended = Tokenizer(), Tokenizer(extra_tokens=("<enc>", "<dec>"))
    assert extended.itos[:len(plain)] == plain.itos
    assert extended.stoi["<enc>"] == len(plain) and extended.vocab_size == len(plain) + 2
    with pytest.raises(ValueError, match="extra_tokens"):
        Tokenizer(extra_tokens=("red",))


def test_decoding_an_id_outside_the_vocabulary_and_a_zero_context_are_errors():
    tok = Tokenizer()
    with pytest.raises(ValueError, match=r"token ids must be ints in \[0, \d+\), got \[-1\]"):
        tok.decode([1, -1, 2])  # would wrap to the last word
    with pytest.raises(ValueError, match="got \\[1000\\]"):
        tok.decode(torch.tensor([1000]))
    with pytest.raises(ValueError, match="context_length must be >= 2"):
        tok(["a red circle"], 0)  # 0 used to mean "as long as the longest"
    with pytest.raises(TypeError, match="context_length: expected an int"):
        tok(["a red circle"], 4.5)
