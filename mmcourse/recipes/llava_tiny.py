"""Chapter 05's tiny LLaVA: chapter 02's CLIP image tower and the course's language model, joined by a projector
and trained in two stages.

    visual, lm = zoo.load("clip-tiny").visual, zoo.load("tiny-lm")
    model = build(visual, lm)                      # copies of both, a fresh "merge2x2" projector
    train(model, stage=1)                          # feature alignment: the projector alone, on captions
    train(model, stage=2)                          # instruction tuning: projector + LM, multi-turn questions
    evaluate(model, vqa_sets(visual))              # official VQA accuracy on new images: seen and held-out pairs

Training images have 1-3 shapes of the 20 training colour-shape pairs, new ones at every step (`stream`). "seen"
test images are new scenes of those pairs; "held-out" test images show only the 4 pairs that neither CLIP nor LLaVA
ever saw in an image.

Seeds 0-4 on one thread (`benchmarks/bench_seeds_llava.py`, about 190 s each): 0.898-0.941 of the questions
other than relations answered exactly right on new images of the seen pairs, official VQA accuracy 0.725-0.755
(always answering the truth scores 0.840 against these annotators); relation questions stay at chance (0.33-0.42),
and held-out pairs get training-pair answers (0.44-0.51 exactly right). Stage 1 teaches this small language model
little: pre-trained on text only, it never learned to repeat or read a described scene well, so the projector alone
cannot make it describe images.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mmcourse.data import VQADataset, caption, render, sample_scenes
from mmcourse.data.chat import (
    DESCRIBE,
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    SYSTEM,
    Tokenized,
    chat_tokenizer,
    pad_conversations,
    qa_turns,
    tokenize_conversation,
)
from mmcourse.data.text import QUESTION_TYPES, check_rng, check_strings
from mmcourse.metrics.vqa import normalize_answer, vqa_accuracy
from mmcourse.models.llava import LLaVA
from mmcourse.nn import TextDecoder, VisionTransformer
from mmcourse.train import History, fit
from mmcourse.utils import check_tensor, get_device, make_generator, python_rng, seed_everything

__all__ = ["BATCH_SIZE", "STAGES", "HYPER", "patch_features", "KINDS", "conversation",
           "stream", "build", "train", "VQASet", "vqa_set", "in_words", "vqa_sets", "answer",
           "breakdown", "evaluate", "prompts"]

BATCH_SIZE = 32
STAGES = {1: dict(steps=300, lr=2e-3, warmup=15), 2: dict(steps=1600, lr=2e-3, warmup=40)}
HYPER = dict(betas=(0.9, 0.98), weight_decay=0.0, grad_clip=1.0)
QUESTIONS = (2, 4)  # questions per training conversation, at least and at most


@torch.no_grad()
def patch_features(visual: VisionTransformer, images: Tensor, layer: int = -2, batch_size: int = 500) -> Tensor:
    """images (N, 3, H, W) -> the frozen tower's patch tokens after block `layer`, CLS dropped (N, P, width), on
    the CPU: what `LLaVA.image_features` computes, once for a whole dataset."""
    check_tensor(images, "images", shape=("N", 3, "H", "W"), dtype="float")
    visual.eval()
    device = next(visual.parameters()).device
    return torch.cat([visual.patch_tokens(x.to(device), layer).cpu() for x in images.split(batch_size)])


KINDS = ("caption", "qa")  # stage 1 describes the image; stage 2 asks 2-4 questions about it


def conversation(objects: list[dict], rng: random.Random, kind: str) -> list[tuple[str, str]]:
    """A training conversation about a scene: "caption" ("<image> describe the image" -> a caption naming every
    object's size, colour and shape) or "qa" (2-4 questions and answers, the first after the image)."""
    if kind == "caption":
        return [("user", "<image> " + rng.choice(DESCRIBE)), ("assistant", caption(objects, rng, p_drop_size=0.0))]
    if kind == "qa":
        return qa_turns(objects, rng, check_rng(rng).randint(*QUESTIONS), p_describe=0.1)
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")


def stream(visual: VisionTransformer, kind: str, batch_size: int = BATCH_SIZE, seed: int = 0, layer: int = -2):
    """step -> {"ids", "labels", "features"}: batch_size new scenes of 1-3 shapes (training pairs only) per step,
    their frozen patch features after block `layer`, a conversation of `kind` about each. No image is seen twice."""
    tok = chat_tokenizer()

    def batch(step: int) -> dict:
        scenes = sample_scenes(batch_size, make_generator(seed, f"llava-scenes/{step}"), max_objects=3,
                               split="train")
        rng = python_rng(seed, f"llava-conversations/{step}")
        rows = [tokenize_conversation(conversation(scenes.objects(i), rng, kind), tok) for i in range(batch_size)]
        ids, labels = pad_conversations(rows, tok.pad_id)
        return {"ids": ids, "labels": labels,
                "features": patch_features(visual, render(scenes, 32, make_generator(seed, f"llava-render/{step}")),
                                           layer)}

    return batch


def build(visual: VisionTransformer, lm: TextDecoder, projector: str = "merge2x2", seed: int = 0) -> LLaVA:
    """LLaVA over copies of the image tower and the language model (the zoo's stay as they are) and a projector
    initialised from `seed`."""
    seed_everything(seed)
    return LLaVA(copy.deepcopy(visual), copy.deepcopy(lm), image_token_index=IMAGE_TOKEN_INDEX, projector=projector)


def train(model: LLaVA, stage: int, tune_lm: bool = True, batch_size: int = BATCH_SIZE, seed: int = 0,
          device: torch.device | str | None = None, **fit_kw) -> History:
    """Stage 1 trains the projector alone on captions; stage 2 the projector and (tune_lm) the language model on
    questions. Each step draws new scenes (`stream`). `STAGES[stage]` gives steps, lr and warm-up; fit_kw go to
    `mmcourse.train.fit` and override them."""
    if stage not in STAGES:
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    model.requires_grad_(False)
    model.projector.requires_grad_(True)
    model.language_model.requires_grad_(stage == 2 and tune_lm)
    seed_everything(seed)

    def step(model: LLaVA, batch: dict) -> Tensor:
        return model(batch["ids"], batch["labels"], features=batch["features"]).loss

    fit_kw = {"desc": f"stage {stage}", **HYPER, **STAGES[stage], **fit_kw}
    steps = fit_kw.pop("steps")
    data = stream(model.vision_tower, KINDS[stage - 1], batch_size, seed + 100 * stage, model.feature_layer)
    return fit(model, step, data, steps, device=device or get_device(), **fit_kw)


@dataclass
class VQASet:
    """Test questions, one per image: features, the questions, ten annotator answers each, the true answers."""

    images: Tensor  # (N, 3, 32, 32)
    features: Tensor  # (N, P, vision_width)
    questions: list[str]
    answers: list[list[str]]
    truths: list[str]
    types: list[str]
    objects: list[list[dict]]


def vqa_set(visual: VisionTransformer, n: int = 500, seed: int = 1000, split: str = "train") -> VQASet:
    """n new scenes of 1-3 shapes (split "train": the training pairs; "test": only the held-out pairs), one
    question each, with 10 annotator answers of which 3-10 agree with the truth."""
    ds = VQADataset(n, 32, seed, split=split, max_objects=3, questions_per_image=1, image_token=False)
    items = ds.items
    return VQASet(ds.images, patch_features(visual, ds.images), [q["question"] for q in items],
                  [q["answers"] for q in items], [q["answer"] for q in items], [q["type"] for q in items],
                  [ds.scenes.objects(i) for i in range(n)])


def in_words(data: VQASet, seed: int = 0) -> list[str]:
    """data's questions, each after a caption of its scene: the scene told in words, as the language model's
    pre-training conversations tell it ("a red circle and a blue square. what colour is the square?")."""
    rng = python_rng(seed, "llava-in-words")
    return [f"{caption(objects, rng)}. {q}" for objects, q in zip(data.objects, data.questions, strict=True)]


def vqa_sets(visual: VisionTransformer, n: int = 500, seed: int = 1000) -> dict[str, VQASet]:
    return {"seen": vqa_set(visual, n, seed, "train"), "held-out": vqa_set(visual, n, seed + 1, "test")}


def prompts(questions: Sequence[str], image: bool = True, *, system: str = SYSTEM, tok=None,
            replies: Sequence[str] | None = None) -> tuple[Tensor, Tensor]:
    """Generation prompts ids (B, L) right-padded, and their lengths (B,): after the `system` prompt, a first user
    turn per question ("<image> question", or the question alone), ending with <assistant> and with the start of
    each reply already written (`replies`, default none). tok: the chat tokenizer (or one grown from it)."""
    if not check_strings(questions, "questions"):
        raise ValueError("questions: an empty list, no prompt to make")
    tok = tok or chat_tokenizer()
    replies = [""] * len(questions) if replies is None else check_strings(replies, "replies")
    if len(replies) != len(questions):
        raise ValueError(f"replies: expected one per question ({len(questions)}), got {len(replies)}")
    rows = []
    for q, begun in zip(questions, replies, strict=True):
        ids = tokenize_conversation([("user", ("<image> " if image else "") + q)], tok, system=system,
                                    generation_prompt=True).ids
        ids += tok.encode(begun)[1:-1] if begun.strip() else []
        rows.append(Tokenized(ids, [IGNORE_INDEX] * len(ids)))
    ids, _ = pad_conversations(rows, tok.pad_id)
    return ids, torch.tensor([len(r.ids) for r in rows])


@torch.no_grad()
def answer(model: LLaVA | TextDecoder, questions: Sequence[str], features: Tensor | None = None,
           batch_size: int = 250, max_new_tokens: int = 8, *, system: str = SYSTEM, tok=None,
           replies: Sequence[str] | None = None, **generate_kw) -> list[str]:
    """Greedy answers (unless generate_kw say otherwise) to one question per image of features (N, P, width);
    a bare language model (features=None) answers the questions without any image. system, tok, replies: as in
    `prompts`; each answer is what comes after its begun reply."""
    tok = tok or chat_tokenizer()
    model.eval()
    out = []
    for s in range(0, len(questions), batch_size):
        ids, lengths = prompts(questions[s:s + batch_size], image=features is not None, system=system, tok=tok,
                               replies=None if replies is None else replies[s:s + batch_size])
        if features is None:
            dev = model.positional_embedding.device
            gen = model.generate(ids.to(dev), lengths=lengths.to(dev), max_new_tokens=max_new_tokens, **generate_kw)
        else:
            dev = next(model.projector.parameters()).device
            gen = model.generate(ids.to(dev), features=features[s:s + batch_size].to(dev),
                                 max_new_tokens=max_new_tokens, **generate_kw)
        out += tok.decode_batch(gen.ids.cpu())
    return out


def breakdown(predictions: Sequence[str], data: VQASet) -> dict:
    """Predictions (one per question of data) -> official VQA accuracy, the share answered exactly right (after
    the official normalisation), the official accuracy of always answering the truth (the annotators' ceiling),
    and the exact share per question type and without the relation questions."""
    right = [normalize_answer(p) == normalize_answer(t) for p, t in zip(predictions, data.truths, strict=True)]

    def share(keep) -> float:
        hits = [r for r, t in zip(right, data.types, strict=True) if keep(t)]
        return sum(hits) / max(len(hits), 1)

    return {"official": vqa_accuracy(list(predictions), data.answers), "exact": share(lambda t: True),
            "ceiling": vqa_accuracy(data.truths, data.answers), "no relations": share(lambda t: t != "relation"),
            "by type": {k: share(lambda t, k=k: t == k) for k in QUESTION_TYPES if k in data.types}}


def evaluate(model: LLaVA, sets: dict[str, VQASet]) -> dict[str, dict]:
    """`breakdown` of the model's greedy answers on each set."""
    return {name: breakdown(answer(model, data.questions, data.features), data) for name, data in sets.items()}
