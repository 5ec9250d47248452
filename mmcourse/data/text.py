"""Text of the shapes world: captions, noisy captions, questions with annotator answers, and a tokenizer.

Captions and questions are built from a scene's object list (`Scenes.objects(i)`), with a seeded
`random.Random` (deterministic on every machine), so the words always agree with the pixels.
"""

from __future__ import annotations

import random
import re

import torch
from torch import Tensor

from mmcourse.data.world import COLOUR_NAMES, SHAPES, SIZES, check_names, check_objects, check_pairs
from mmcourse.utils import check_number, check_tensor, describe

__all__ = [
    "ZERO_SHOT_TEMPLATES", "ANSWERS", "QUESTION_TYPES", "DIRECTIONS", "SPEEDS", "NUMBER_WORDS",
    "object_phrase", "relation", "caption", "parse_caption", "caption_is_correct", "class_phrases",
    "class_prompts", "corrupt_objects", "make_question",
    "annotator_answers", "motion_caption", "world_words",
    "SPECIAL_TOKENS", "PAD_ID", "SOT_ID", "EOT_ID", "UNK_ID", "IMAGE_ID", "Tokenizer", "pad_batch",
]

# ----------------------------------------------------------------------------------------------- words
SHAPE_SYNONYMS = {"circle": ("disk", "round shape"), "square": ("box", "block"), "triangle": ("wedge",)}
SIZE_SYNONYMS = {"small": ("little", "tiny"), "large": ("big",)}
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles"}
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")
RELATIONS = {  # relation -> paraphrases, and the relation seen from the other object
    "left": ("left of", "to the left of"),
    "right": ("right of", "to the right of"),
    "above": ("above", "over"),
    "below": ("below", "under"),
}
INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}
# "{}" is the object phrase with its article, e.g. "an orange circle". Training captions use all of these.
ZERO_SHOT_TEMPLATES = ("{}", "a photo of {}", "a picture of {}", "there is {}")
LIST = ("{}", "a picture of {}", "there is {}", "an image of {}", "{} on a dark background")
COUNTED = "{n} shapes: {}"
RELATIONAL = ("{0} {rel} {1}", "{0} is {rel} {1}", "a picture of {0} {rel} {1}")
POSITIONS = {  # (column, row) thirds of the image -> phrase
    (0, 0): "in the top left", (1, 0): "at the top", (2, 0): "in the top right",
    (0, 1): "on the left", (1, 1): "in the middle", (2, 1): "on the right",
    (0, 2): "in the bottom left", (1, 2): "at the bottom", (2, 2): "in the bottom right",
}
DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = ("slowly", "quickly")
MOTION = ("{0} moves {dir}", "{0} moving {dir}", "{0} goes {dir}")
ANSWERS = COLOUR_NAMES + SHAPES + ("0", "1", "2", "3") + ("yes", "no") + tuple(RELATIONS)
QUESTION_TYPES = ("colour", "shape", "count", "relation", "exists")


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def object_phrase(obj: dict, *, size: bool = True, synonym: bool = False,
                  rng: random.Random | None = None) -> str:
    """'a large red circle'; with synonym=True the shape/size word may be a synonym (needs rng)."""
    shape, size_word = obj["shape"], obj["size"]
    if synonym:
        shape = rng.choice((shape,) + SHAPE_SYNONYMS[shape])
        size_word = rng.choice((size_word,) + SIZE_SYNONYMS[size_word])
    words = ([size_word] if size else []) + [obj["colour"], shape]
    return f"{article(words[0])} {' '.join(words)}"


def check_rng(rng) -> random.Random:
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng: expected a random.Random (e.g. mmcourse.utils.python_rng(seed)), got {describe(rng)}")
    return rng


def check_strings(texts, arg: str) -> list[str]:
    """`texts` as a list, or a clear error naming `arg` unless it is a list of str (a bare str is not)."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{arg}: expected a list of str, got {describe(texts)}")
    return list(texts)


def relation(a: dict, b: dict) -> str:
    """Where `a` is relative to `b`, along the axis where they differ most: left, right, above or below."""
    check_objects([a], "a", ("x", "y"))
    check_objects([b], "b", ("x", "y"))
    dx, dy = a["x"] - b["x"], a["y"] - b["y"]
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


def position_phrase(obj: dict) -> str:
    return POSITIONS[(min(int(obj["x"] * 3), 2), min(int(obj["y"] * 3), 2))]


def caption(objects: list[dict], rng: random.Random | None = None, *, augment: bool = True,
            p_drop_size: float = 0.4, p_position: float = 0.3, p_photo: float = 0.25,
            p_synonym: float = 0.15, p_relation: float = 0.5) -> str:
    """A caption of a scene's objects.

    augment=False gives the canonical caption ('a large red circle and a small blue square'); with
    augment=True (needs rng) the template, object order, synonyms, and whether size/position words and
    the prefix 'a photo of' appear are drawn at random: call it again each epoch to re-augment.
    """
    if not check_objects(objects, keys=("colour", "shape", "size") + (("x", "y") if augment else ())):
        raise ValueError("objects: the scene has no objects to caption")
    if not augment:
        return join([object_phrase(o) for o in objects])
    check_rng(rng)
    for name, p in (("p_drop_size", p_drop_size), ("p_position", p_position), ("p_photo", p_photo),
                    ("p_synonym", p_synonym), ("p_relation", p_relation)):
        check_number(p, name, low=0, high=1)
    objects = rng.sample(objects, len(objects))  # vary the order
    keep_size = rng.random() >= p_drop_size
    phrases = [object_phrase(o, size=keep_size, synonym=rng.random() < p_synonym, rng=rng) for o in objects]
    if len(objects) == 2 and rng.random() < p_relation:
        rel = rng.choice(RELATIONS[relation(objects[0], objects[1])])
        text = rng.choice(RELATIONAL).format(*phrases, rel=rel)
    else:
        template = rng.choice(LIST + ((COUNTED,) if len(objects) > 1 else ()))
        text = template.format(join(phrases), n=NUMBER_WORDS[len(phrases)])
        if len(objects) == 1 and rng.random() < p_position:
            text += " " + position_phrase(objects[0])
    starts_with_object = text.startswith(("a ", "an ")) and not text.startswith(("a picture", "an image"))
    if starts_with_object and rng.random() < p_photo:
        text = "a photo of " + text
    return text


_SIZE_WORD = {w: size for size in SIZES for w in (size, *SIZE_SYNONYMS[size])}
_SHAPE_WORD = {w: shape for shape in SHAPES for w in (shape, *SHAPE_SYNONYMS[shape])}
_OBJECT = re.compile(r"\b(?:a|an) (?:({sizes}) )?({colours}) ({shapes})\b".format(
    sizes="|".join(_SIZE_WORD), colours="|".join(COLOUR_NAMES), shapes="|".join(_SHAPE_WORD)))


def parse_caption(text: str) -> list[dict]:
    """The objects a caption names, in order: [{"colour", "shape", "size"}] with synonyms mapped back to the
    world's names and size None where the caption leaves it out. Templates, relations and positions are skipped:
    'a photo of a big red disk left of a blue box' -> [large red circle, None blue square]."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {describe(text)}")
    return [{"colour": colour, "shape": _SHAPE_WORD[shape], "size": _SIZE_WORD.get(size)}
            for size, colour, shape in _OBJECT.findall(text.lower())]


def caption_is_correct(text: str, objects: list[dict], sizes: bool = True) -> bool:
    """Whether `text` names exactly the scene's objects, each once, with the right colour and shape and (when
    `sizes`) the right size: the multisets of parsed and true objects are equal, in any order."""
    keys = ("colour", "shape", "size") if sizes else ("colour", "shape")
    check_objects(objects, keys=keys)
    said = sorted(tuple(str(o[k]) for k in keys) for o in parse_caption(text))
    return said == sorted(tuple(o[k] for k in keys) for o in objects)


def join(phrases: list[str]) -> str:
    """'a, b and c'."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def class_phrases() -> list[str]:
    """'a red circle', 'an orange square', ...: one phrase per class, in CLASS_NAMES order."""
    return [object_phrase({"colour": c, "shape": s, "size": None}, size=False) for c in COLOUR_NAMES for s in SHAPES]


def class_prompts(templates=ZERO_SHOT_TEMPLATES) -> list[list[str]]:
    """Zero-shot prompts [class][template], classes in CLASS_NAMES order (colour * len(SHAPES) + shape)."""
    if not check_strings(templates, "templates") or not all("{}" in t for t in templates):
        raise ValueError(f"templates: expected a non-empty list of strings with '{{}}', got {templates!r}")
    return [[t.format(phrase) for t in templates] for phrase in class_phrases()]


def corrupt_objects(objects: list[dict], rng: random.Random, kind: str = "swap",
                    pairs: list[tuple[str, str]] | None = None) -> list[dict]:
    """A wrong description of the scene, for noisy 'web' captions.

    kind="swap": one object gets another colour or shape, chosen so that no object of the scene has the
    new (colour, shape) pair. kind="unrelated": 1-3 objects whose pairs all differ from the scene's.
    New pairs come from `pairs` ((colour, shape) names; default all 24), so a training split's wrong captions
    never name a held-out pair.
    """
    if not check_objects(objects):
        raise ValueError("objects: the scene has no objects to describe wrongly")
    check_rng(rng)
    scene = {(o["colour"], o["shape"]) for o in objects}
    pairs = [(c, s) for c in COLOUR_NAMES for s in SHAPES] if pairs is None else check_pairs(pairs, "pairs")
    free = [p for p in pairs if p not in scene]
    if kind == "swap":
        k = rng.randrange(len(objects))
        target = objects[k]
        options = [(c, s) for c, s in free if (c == target["colour"]) != (s == target["shape"])]
        if not options:
            raise ValueError(f"pairs: none differs from {target['colour']} {target['shape']} in exactly one "
                             "attribute and is new to the scene")
        c, s = rng.choice(options)
        return [dict(o, colour=c, shape=s) if i == k else o for i, o in enumerate(objects)]
    if kind == "unrelated":
        if not free:
            raise ValueError("pairs: every pair is already in the scene")
        picks = rng.sample(free, min(len(free), rng.randint(1, min(3, len(objects) + 1))))
        return [{"colour": c, "shape": s, "size": rng.choice(SIZES), "x": rng.random(), "y": rng.random()}
                for c, s in picks]
    raise ValueError(f"unknown corruption kind {kind!r}; allowed: swap, unrelated")


# --------------------------------------------------------------------------------------- questions
COLOUR_Q = ("what colour is the {shape}?", "what is the colour of the {shape}?",
            "which colour is the {shape}?")
SHAPE_Q = ("what shape is the {colour} object?", "what is the shape of the {colour} object?",
           "which shape is {colour}?")
COUNT_Q = ("how many shapes are there?", "how many objects are in the image?")
COUNT_COLOUR_Q = ("how many {colour} objects are there?",)
COUNT_SHAPE_Q = ("how many {plural} are there?",)
RELATION_Q = ("is the {0} {rel} the {1}?",)
WHERE_Q = ("where is the {0} relative to the {1}?",)
EXISTS_Q = ("is there {0}?", "is there {0} in the image?")
YES_NO_REL = {"left": "left of", "right": "right of", "above": "above", "below": "below"}


def make_question(objects: list[dict], rng: random.Random, qtype: str | None = None) -> dict:
    """One question about the scene: {"question", "answer", "type"}; qtype from QUESTION_TYPES or random.

    Every question names objects unambiguously and its answer is one of ANSWERS.
    """
    if not check_objects(objects):
        raise ValueError("objects: the scene has no objects to ask about")
    check_rng(rng)
    if qtype is None:
        qtype = rng.choice([t for t in QUESTION_TYPES if t != "relation" or len(objects) > 1])
    check_names([qtype], QUESTION_TYPES, "question type")
    shapes = [o["shape"] for o in objects]
    colours = [o["colour"] for o in objects]
    if qtype == "colour":
        unique = [o for o in objects if shapes.count(o["shape"]) == 1]
        if unique:
            o = rng.choice(unique)
            q = rng.choice(COLOUR_Q).format(shape=o["shape"])
            return {"question": q, "answer": o["colour"], "type": qtype}
        qtype = "count"  # no shape appears once: ask a count instead
    if qtype == "shape":
        unique = [o for o in objects if colours.count(o["colour"]) == 1]
        if unique:
            o = rng.choice(unique)
            q = rng.choice(SHAPE_Q).format(colour=o["colour"])
            return {"question": q, "answer": o["shape"], "type": qtype}
        qtype = "count"  # no colour appears once: ask a count instead
    if qtype == "count":
        form = rng.randrange(3)
        if form == 0:
            return {"question": rng.choice(COUNT_Q), "answer": str(len(objects)), "type": qtype}
        if form == 1:
            c = rng.choice(COLOUR_NAMES)
            q = rng.choice(COUNT_COLOUR_Q).format(colour=c)
            return {"question": q, "answer": str(colours.count(c)), "type": qtype}
        s = rng.choice(SHAPES)
        q = rng.choice(COUNT_SHAPE_Q).format(plural=PLURALS[s])
        return {"question": q, "answer": str(shapes.count(s)), "type": qtype}
    if qtype == "relation":
        if len(objects) < 2:
            raise ValueError("make_question: a relation question needs a scene with at least 2 objects")
        a, b = rng.sample(objects, 2)
        names = [f"{o['colour']} {o['shape']}" for o in (a, b)]
        truth = relation(a, b)
        if rng.random() < 0.5:
            return {"question": rng.choice(WHERE_Q).format(*names), "answer": truth, "type": qtype}
        asked = truth if rng.random() < 0.5 else rng.choice([r for r in RELATIONS if r != truth])
        q = rng.choice(RELATION_Q).format(*names, rel=YES_NO_REL[asked])
        return {"question": q, "answer": "yes" if asked == truth else "no", "type": qtype}
    # exists: half the time an object of the scene, half the time a pair that is not there
    present = list(zip(colours, shapes, strict=True))
    absent = [(c, s) for c in COLOUR_NAMES for s in SHAPES if (c, s) not in present]
    yes = rng.random() < 0.5
    c, s = rng.choice(present if yes else absent)
    q = rng.choice(EXISTS_Q).format(object_phrase({"colour": c, "shape": s, "size": None}, size=False))
    return {"question": q, "answer": "yes" if yes else "no", "type": qtype}


def _variants(answer: str) -> tuple[list[str], list[str]]:
    """Surface forms of an answer that the official VQA normalisation maps back to it (case, punctuation,
    articles, number words), and near-misses that mean the same but do not normalise to it."""
    same = [answer, answer.capitalize(), answer + ".", answer + "!"]
    if answer.isdigit():
        same += [NUMBER_WORDS[int(answer)], NUMBER_WORDS[int(answer)].capitalize()]
        near = [f"{answer} shapes", f"{NUMBER_WORDS[int(answer)]} of them"]
    elif answer in SHAPES:
        same += [f"a {answer}", f"the {answer}"]
        near = list(SHAPE_SYNONYMS[answer]) + [f"{answer} shape"]
    elif answer in COLOUR_NAMES:
        near = [f"{article(answer)} {answer} one", f"{answer} colour"]
    elif answer in ("yes", "no"):
        near = ["yeah", "yep"] if answer == "yes" else ["nope", "no way"]
    else:  # a relation
        near = [RELATIONS[answer][1], f"on the {answer}" if answer in ("left", "right") else f"{answer} it"]
    return same, near


def annotator_answers(answer: str, rng: random.Random, n_match: int) -> list[str]:
    """Ten VQA-style annotator answers for a question whose true answer is `answer`.

    Exactly `n_match` of them normalise (official VQA normalisation) to `answer`, in varied surface forms
    ("2", "two", "Two."; "circle", "a circle"); the others are near-misses that do not normalise to it
    ("a red one", "disk", "yeah") or wrong answers of the same kind.
    """
    check_names([answer], ANSWERS, "answer")
    check_number(n_match, "n_match", integer=True, low=0, high=10)
    check_rng(rng)
    same, near = _variants(answer)
    kind = next(group for group in (COLOUR_NAMES, SHAPES, ("0", "1", "2", "3"), ("yes", "no"),
                                    tuple(RELATIONS)) if answer in group)
    wrong = [a for a in kind if a != answer]
    answers = [answer if i == 0 else rng.choice(same) for i in range(n_match)]
    answers += [rng.choice(near) if rng.random() < 0.5 else rng.choice(wrong) for _ in range(10 - n_match)]
    rng.shuffle(answers)
    return answers


def motion_caption(obj: dict, direction: str, speed: str | None = None, bounced: bool = False,
                   rng: random.Random | None = None) -> str:
    """'a red circle moves left' (+ ' quickly', + ' and bounces'); a random paraphrase when rng is given."""
    check_objects([obj], "obj", ("colour", "shape"))
    check_names([direction], DIRECTIONS, "direction")
    template = check_rng(rng).choice(MOTION) if rng is not None else MOTION[0]
    text = template.format(object_phrase(obj, size=False), dir=direction)
    if speed is not None:
        text += " " + check_names([speed], SPEEDS, "speed")[0]
    return text + (" and bounces" if bounced else "")


def world_words() -> list[str]:
    """Every word any text generator of the world can produce (sorted, deterministic): the vocabulary."""
    texts = [*LIST, COUNTED, *RELATIONAL, *ZERO_SHOT_TEMPLATES, *POSITIONS.values(), *MOTION,
             *(p for ps in RELATIONS.values() for p in ps), *COLOUR_Q, *SHAPE_Q, *COUNT_Q, *COUNT_COLOUR_Q,
             *COUNT_SHAPE_Q, *RELATION_Q, *WHERE_Q, *EXISTS_Q, *ANSWERS, *NUMBER_WORDS, *DIRECTIONS, *SPEEDS,
             *COLOUR_NAMES, *SIZES, *PLURALS.values(), join(list(SHAPES)), "a an the photo of bounces",
             *(s for ss in (*SHAPE_SYNONYMS.values(), *SIZE_SYNONYMS.values()) for s in ss)]
    for answer in ANSWERS:
        same, near = _variants(answer)
        texts += same + near
    words = {w for t in texts for w in split_words(re.sub(r"\{[^}]*\}", " ", t))}
    return sorted(words - set(SPECIAL_TOKENS))


# --------------------------------------------------------------------------------------- tokenizer
SPECIAL_TOKENS = ("<pad>", "<sot>", "<eot>", "<unk>", "<image>")
PAD_ID, SOT_ID, EOT_ID, UNK_ID, IMAGE_ID = range(len(SPECIAL_TOKENS))
_TOKEN = re.compile(r"<image>|[a-z0-9]+|[^\sa-z0-9]")


def split_words(text: str) -> list[str]:
    """Lower-case and split into words and single punctuation marks; '<image>' stays one token."""
    return _TOKEN.findall(text.lower())


class Tokenizer:
    """Word-level tokenizer over the world's vocabulary.

    Ids: <pad>=0, <sot>=1, <eot>=2, <unk>=3, <image>=4, then the words in sorted order. Note that <eot> is
    NOT the largest id: find it with `mmcourse.nn.eot_positions(ids, EOT_ID)`, never with ids.argmax().
    `extra_tokens` (e.g. BLIP's "<enc>", "<dec>") get the ids after the words, so every word keeps its id; a
    model puts them in place itself (`stoi["<enc>"]`), they are never parsed from text; an extra token that is a plain
    word or mark ("4", "(") is read from text like any word.
    """

    def __init__(self, words=None, extra_tokens: tuple[str, ...] = ()):
        words = world_words() if words is None else sorted(set(check_strings(words, "words")) - set(SPECIAL_TOKENS))
        check_strings(extra_tokens, "extra_tokens")
        clash = set(extra_tokens) & {*SPECIAL_TOKENS, *words}
        if clash or len(set(extra_tokens)) != len(extra_tokens):
            raise ValueError(f"extra_tokens must be new and distinct, got {extra_tokens} (already known: {clash})")
        self.itos = list(SPECIAL_TOKENS) + words + list(extra_tokens)
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.sot_id, self.eot_id, self.unk_id = PAD_ID, SOT_ID, EOT_ID, UNK_ID
        self.image_id = IMAGE_ID

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """<sot> word ids <eot>; unknown words become <unk>."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {describe(text)}")
        words = split_words(text)
        if not words:
            raise ValueError(f"text: no words to encode in {text!r} (empty text)")
        return [SOT_ID] + [self.stoi.get(w, UNK_ID) for w in words] + [EOT_ID]

    def encode_batch(self, texts: list[str], context_length: int | None = None,
                     truncate: bool = True) -> Tensor:
        """(B, L) long ids padded with <pad>=0. L = context_length, or the longest text when None.

        Too-long texts are cut (truncate=True) keeping <sot> and the final <eot>, or raise (truncate=False).
        """
        if isinstance(texts, str):
            texts = [texts]
        if not check_strings(texts, "texts"):
            raise ValueError("texts: an empty list, nothing to encode")
        return pad_batch([self.encode(t) for t in texts], context_length, truncate)

    __call__ = encode_batch

    def decode(self, ids) -> str:
        """Text of one row of ids, up to the first <eot>, without special tokens except <image>/<unk>."""
        if isinstance(ids, Tensor):
            check_tensor(ids, "ids", ndim=1, dtype="int")
        elif not isinstance(ids, (list, tuple)):
            raise TypeError(f"ids: expected a list or 1-d tensor of token ids, got {describe(ids)}")
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self.itos)]
        if bad:
            raise ValueError(f"decode: token ids must be ints in [0, {len(self.itos)}), got {bad[:5]}")
        words = []
        for i in ids:
            if i == EOT_ID:
                break
            if i not in (PAD_ID, SOT_ID):
                words.append(self.itos[i])
        return re.sub(r" ([?,.:!])", r"\1", " ".join(words))

    def decode_batch(self, ids: Tensor) -> list[str]:
        check_tensor(ids, "ids", ndim=2, dtype="int")
        return [self.decode(row) for row in ids]


def pad_batch(rows: list[list[int]], context_length: int | None = None, truncate: bool = True) -> Tensor:
    """Token-id lists (each <sot> … <eot>) -> (B, L) long ids, padded with <pad>=0 at the end.

    L = context_length, or the longest row when None. A longer row is cut to L tokens whose last is still <eot>
    (truncate=True; the text encoder pools there, so it must survive) or raises (truncate=False).
    """
    if isinstance(rows, str) or not isinstance(rows, (list, tuple)) or \
            not all(isinstance(r, (list, tuple)) and all(isinstance(i, int) for i in r) for r in rows):
        raise TypeError(f"rows: expected a list of token-id lists, got {describe(rows)}")
    if len(rows) == 0:
        raise ValueError("rows: an empty list, nothing to pad")
    if context_length is not None:
        check_number(context_length, "context_length", integer=True)
    L = max(len(r) for r in rows) if context_length is None else context_length
    if L < 2:
        raise ValueError(f"context_length must be >= 2 (room for <sot> and <eot>), got {L}")
    ids = torch.full((len(rows), L), PAD_ID, dtype=torch.long)
    for i, row in enumerate(rows):
        if len(row) > L:
            if not truncate:
                raise ValueError(f"row {i} has {len(row)} tokens, more than context_length={L}")
            row = list(row[:L - 1]) + [EOT_ID]
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return ids
