"""Chapter 05 exercises: the batched splice of image features into the token embeddings, with label masking
(build); a one-image-per-row splice that leaves the image positions in the loss (fix); a training recipe within a
step budget (experiment); three questions (quiz)."""

from __future__ import annotations

import contextlib
import functools
import io

import torch
from torch import nn

from mmcourse import zoo
from mmcourse.grading.core import devices, expect_close, expect_equal, fail, register, register_quiz
from mmcourse.grading.memo import remembered
from mmcourse.losses.lm import lm_loss
from mmcourse.models.llava import PROJECTORS
from mmcourse.models.llava import splice as _splice
from mmcourse.nn import TextDecoder
from mmcourse.recipes import llava_tiny

IMG, PAD, IGNORE = -200, 0, -100
VOCAB, WIDTH = 12, 4


def _cases(device, g):
    """Right-padded ids with 1, 0, 2 and 1 placeholders (first, none, two, last in the row), labels on some
    tokens; the last case labels every token, the placeholders too (pre-training style: labels = ids)."""
    rows = [[1, 5, IMG, 6, 7, 2], [1, 8, 9], [1, IMG, 5, IMG, 6], [1, 7, 3, IMG]]
    L = max(map(len, rows))
    ids = torch.tensor([r + [PAD] * (L - len(r)) for r in rows])
    masked = torch.where((ids > 5) & (ids != IMG), ids, IGNORE)
    everything = torch.where(ids != PAD, ids, IGNORE)
    out = []
    for labels, n in ((masked, 3), (everything, 2)):
        images = torch.randn(4, n, WIDTH, generator=g)
        out.append((ids.to(device), labels.to(device), images.to(device), f"{n} features per image, labels "
                    + ("on some answer tokens" if labels is masked else "on every token, the placeholders too")))
    return out


def _embedding(device):
    torch.manual_seed(50)
    return nn.Embedding(VOCAB, WIDTH).to(device)


# ---------------------------------------------------------------- 05.splice
def splice(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """Reference: `mmcourse.models.llava.splice` -> (embeds (B, T, D), labels (B, T))."""
    s = _splice(ids, image_embeds, embedding, labels, image_token_index=image_token_index, pad_id=pad_id)
    return s.embeds, s.labels


def _by_loop(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD, *, image_label=None,
             by_row=False, overwrite=False, left=False, detach=False):
    """The splice row by row, with one of the mistakes below switched on."""
    embeds, new_labels, k = [], [], 0
    for b, (row, lab) in enumerate(zip(ids, labels, strict=True)):
        real = row != pad_id
        row, lab = row[real], lab[real]
        e, y, j = [], [], 0
        while j < len(row):
            if row[j] != image_token_index:
                e.append(embedding(row[j:j + 1]))
                y.append(lab[j:j + 1])
                j += 1
                continue
            image = image_embeds[b if by_row else k]
            k += 1
            image = image.detach() if detach else image
            e.append(image)
            fill = lab[j] if image_label == "placeholder" else (0 if image_label == "zero" else IGNORE)
            y.append(torch.full((len(image),), int(fill), dtype=labels.dtype, device=ids.device))
            j += len(image) if overwrite else 1
        embeds.append(torch.cat(e))
        new_labels.append(torch.cat(y))
    T = max(len(x) for x in embeds)
    D = image_embeds.shape[-1]

    def pad(x, value):
        extra = x.new_full((T - len(x), *x.shape[1:]), value)
        return torch.cat([extra, x] if left else [x, extra])

    return torch.stack([pad(x, 0.0) for x in embeds]).reshape(len(ids), T, D), \
        torch.stack([pad(y, IGNORE) for y in new_labels])


def _splice_images_by_row(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """gives row b the b-th image: wrong as soon as a row has no placeholder or two"""
    return _by_loop(ids, labels, image_embeds, embedding, image_token_index, pad_id, by_row=True)


def _splice_labels_zero(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """labels the image positions 0 (a token id) instead of -100: the loss trains the model to predict token 0
    at every image position"""
    return _by_loop(ids, labels, image_embeds, embedding, image_token_index, pad_id, image_label="zero")


def _splice_labels_like_ids(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """repeats the placeholder's own label over the image positions instead of -100"""
    return _by_loop(ids, labels, image_embeds, embedding, image_token_index, pad_id, image_label="placeholder")


def _splice_overwrite(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """writes the image over the tokens after the placeholder instead of shifting them right"""
    return _by_loop(ids, labels, image_embeds, embedding, image_token_index, pad_id, overwrite=True)


def _splice_left_padded(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """pads the shorter rows on the left instead of the right"""
    return _by_loop(ids, labels, image_embeds, embedding, image_token_index, pad_id, left=True)


def _splice_detached(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    # Detaches the image features: the right values, but no gradient reaches the projector. No docstring (the
    # grader names a mistake only from outputs); the gradient check's hint names it.
    return _by_loop(ids, labels, image_embeds, embedding, image_token_index, pad_id, detach=True)


def _real(ids, n_features, T):
    """(B, T) True at the spliced rows' real positions (text and image features), False at the padding."""
    lengths = (ids != PAD).sum(1) + (n_features - 1) * (ids == IMG).sum(1)
    return torch.arange(T, device=ids.device)[None] < lengths[:, None]


@register("05.splice", splice, [_splice_images_by_row, _splice_labels_zero, _splice_labels_like_ids,
                               _splice_overwrite, _splice_left_padded, _splice_detached])
def _test_splice(fn):
    g = torch.Generator().manual_seed(5)
    n = 0
    for device in devices():
        embedding = _embedding(device)
        for ids, labels, images, case in _cases(device, g):
            images = images.clone().requires_grad_(True)
            got = fn(ids, labels, images, embedding)
            if not (isinstance(got, tuple) and len(got) == 2):
                fail(f"{case}: return a pair (embeds, labels)", "a tuple of two tensors",
                     type(got).__name__ if not isinstance(got, tuple) else f"a tuple of {len(got)}")
            embeds, new_labels = got
            want_embeds, want_labels = splice(ids, labels, images, embedding)
            B, T = want_labels.shape
            if not isinstance(embeds, torch.Tensor) or tuple(embeds.shape) != (B, T, WIDTH):
                fail(f"{case}: the shape of embeds (4 rows; T = the longest row once every placeholder becomes "
                     f"its image's {images.shape[1]} rows)", (B, T, WIDTH),
                     tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else embeds,
                     "each placeholder takes the place of one token and adds N − 1 positions; the rows stay "
                     "right-padded to the longest")
            expect_equal(new_labels, want_labels, f"{case}: the labels",
                         "a text token keeps its label and moves right by N − 1 for every image before it in its row; "
                         "image positions and padding get -100, so no loss is computed there")
            real = _real(ids, images.shape[1], T)
            expect_close(embeds[real], want_embeds[real].detach(), f"{case}: the embeddings at the real positions",
                         "row by row, left to right: a token's embedding, or, at a placeholder, the N rows of the next "
                         "image (images in reading order: row 0's placeholders, then row 1's, ...)")
            upstream = torch.randn(B, T, WIDTH, generator=g).to(device) * real[..., None]
            grads = torch.autograd.grad((embeds * upstream).sum(), [images], allow_unused=True)[0]
            want = torch.autograd.grad((want_embeds * upstream).sum(), [images])[0]
            expect_close(torch.zeros_like(images) if grads is None else grads, want,
                         f"{case}: the gradient reaching the image features",
                         "the image features must stay in the graph (no .detach(), no torch.tensor(...) copy): the "
                         "projector learns through them")
            n += 1
    return n


# ---------------------------------------------------------------- 05.fix_splice
def fixed_splice(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """Reference for the one-image-per-row splice: the same as the batched one."""
    return splice(ids, labels, image_embeds, embedding, image_token_index, pad_id)


def _one_per_row_buggy(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """labels the image positions 0 (a token id) instead of -100: the loss scores the image positions"""
    embeds, new_labels = [], []
    for b in range(len(ids)):
        j = int((ids[b] == image_token_index).nonzero())
        text = embedding(ids[b].masked_fill(ids[b] == image_token_index, pad_id))
        embeds.append(torch.cat([text[:j], image_embeds[b], text[j + 1:]]))
        image_labels = torch.zeros(image_embeds.shape[1], dtype=labels.dtype)
        new_labels.append(torch.cat([labels[b, :j], image_labels, labels[b, j + 1:]]))
    return torch.stack(embeds), torch.stack(new_labels)


def _one_per_row_keeps_placeholder(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """inserts the image after its placeholder instead of in its place: one extra position per row"""
    embeds, new_labels = [], []
    for b in range(len(ids)):
        j = int((ids[b] == image_token_index).nonzero())
        text = embedding(ids[b].masked_fill(ids[b] == image_token_index, pad_id))
        embeds.append(torch.cat([text[:j + 1], image_embeds[b], text[j + 1:]]))
        image_labels = torch.full((image_embeds.shape[1],), IGNORE, dtype=labels.dtype, device=ids.device)
        new_labels.append(torch.cat([labels[b, :j + 1], image_labels, labels[b, j + 1:]]))
    return torch.stack(embeds), torch.stack(new_labels)


def _one_per_row_overwrite(ids, labels, image_embeds, embedding, image_token_index=IMG, pad_id=PAD):
    """writes the image over the tokens after the placeholder instead of shifting them right"""
    return _by_loop(ids, labels, image_embeds, embedding, image_token_index, pad_id, overwrite=True)


def _stand_in_lm(device):
    torch.manual_seed(51)
    return TextDecoder(VOCAB, 16, WIDTH, 1, 1, eot_id=2, pad_id=PAD, sot_id=1).to(device).eval()


@register("05.fix_splice", fixed_splice, [_one_per_row_buggy, _one_per_row_keeps_placeholder,
                                          _one_per_row_overwrite])
def _test_fix_splice(fn):
    g = torch.Generator().manual_seed(6)
    n = 0
    for device in devices():
        embedding, lm = _embedding(device), _stand_in_lm(device)
        rows = [[1, 5, IMG, 6, 7, 2], [1, IMG, 8, 9, 2, PAD], [1, 7, 3, 4, IMG, 2]]
        ids = torch.tensor(rows, device=device)
        labels = torch.where((ids > 5) | (ids == 2), ids, IGNORE)
        images = torch.randn(3, 3, WIDTH, generator=g).to(device)
        case = "3 rows, one image of 3 features each, labels on the answer tokens and <eot>"
        got = fn(ids, labels, images, embedding)
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(x, torch.Tensor) for x in got)):
            fail(f"{case}: return a pair of tensors (embeds, labels)", "(embeds, labels)", got)
        embeds, new_labels = got
        want_embeds, want_labels = fixed_splice(ids, labels, images, embedding)
        if new_labels.shape == want_labels.shape and not torch.equal(new_labels.cpu(), want_labels.cpu()):
            with torch.no_grad():
                logits = lm(embeds=want_embeds)
                wrong = (new_labels != IGNORE) & (want_labels == IGNORE)
                scored, total = int(wrong.sum()), int((new_labels[:, 1:] != IGNORE).sum())
                loss_got = lm_loss(logits, new_labels.to(device)).item()
                loss_want = lm_loss(logits, want_labels).item()
            fail(f"{case}: the labels put {scored} image or padding positions into the loss; with a stand-in "
                 f"language model they are {scored} of the {total} positions it averages over, and move it from "
                 f"{loss_want:.3f} to {loss_got:.3f}", want_labels, new_labels,
                 "an image position has no next token to predict from the text: its label must be -100 "
                 "(torch.full(..., -100, device=ids.device)), like the user's turns and the padding")
        expect_equal(new_labels, want_labels, f"{case}: the labels")
        if tuple(embeds.shape) != tuple(want_embeds.shape):
            fail(f"{case}: the shape of embeds", tuple(want_embeds.shape), tuple(embeds.shape),
                 "the image's N features take the place of its placeholder: L + N − 1 positions")
        real = _real(ids, images.shape[1], want_embeds.shape[1])
        expect_close(embeds[real], want_embeds[real].detach(), f"{case}: the embeddings at the real positions",
                     "a token's embedding, and the row's image in place of its placeholder")
        n += 1
    return n


# ---------------------------------------------------------------- 05.recipe (experiment)
MAX_STEPS, MIN_EXACT, QUICK = 300, 0.6, 300


@functools.cache
def _quick_set():
    """The frozen CLIP tower and tiny LM of the zoo, and 300 test questions on new images of the training pairs."""
    visual = zoo.load("clip-tiny", verbose=False).visual
    return visual, zoo.load("tiny-lm", verbose=False), llava_tiny.vqa_set(visual, n=QUICK)


@remembered
def recipe_exact(projector: str, stage1: bool, tune_lm: bool, steps: int) -> float:
    """A LLaVA of the zoo's tower and LM with this projector, stage 1 or not, `steps` of stage 2 (the LM tuned or
    frozen): the share of QUICK test questions, relations aside, that it answers exactly right."""
    visual, lm, data = _quick_set()
    model = llava_tiny.build(visual, lm, projector)
    with contextlib.redirect_stdout(io.StringIO()):
        if stage1:
            llava_tiny.train(model, stage=1, progress=False)
        llava_tiny.train(model, stage=2, tune_lm=tune_lm, steps=steps, progress=False)
    return llava_tiny.breakdown(llava_tiny.answer(model, data.questions, data.features), data)["no relations"]


def _recipe_reference():
    return {"projector": "merge2x2", "stage1": False, "tune_lm": True, "steps": 300}


def _recipe_over_budget():
    """trains the full recipe's 1 600 stage-2 steps, over the exercise's budget"""
    return {"projector": "merge2x2", "stage1": True, "tune_lm": True, "steps": 1600}


def _recipe_unknown_projector():
    """a projector the course does not have"""
    return {"projector": "qformer", "stage1": False, "tune_lm": True, "steps": 300}


def _recipe_too_short():
    """the merger, stage 2 only, stopped after 50 steps"""
    return {"projector": "merge2x2", "stage1": False, "tune_lm": True, "steps": 50}


@register("05.recipe", _recipe_reference, [_recipe_over_budget, _recipe_unknown_projector, _recipe_too_short])
def _test_recipe(fn):
    recipe = fn()
    keys = {"projector", "stage1", "tune_lm", "steps"}
    if not isinstance(recipe, dict) or set(recipe) != keys:
        fail("my_recipe() must return a dict with the keys projector, stage1, tune_lm, steps", "e.g. {'projector': "
             "'linear', 'stage1': False, 'tune_lm': False, 'steps': 100}", recipe)
    if not all(isinstance(recipe[k], bool) for k in ("stage1", "tune_lm")):
        fail("stage1 and tune_lm are True or False", "two bools", (recipe["stage1"], recipe["tune_lm"]))
    if recipe["projector"] not in PROJECTORS:
        fail("unknown projector", f"one of {PROJECTORS}", recipe["projector"])
    steps = recipe["steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        fail("steps: the stage-2 budget is at most 300 steps", f"an int in [1, {MAX_STEPS}]", steps)
    got = recipe_exact(recipe["projector"], recipe["stage1"], recipe["tune_lm"], steps)
    if got < MIN_EXACT:
        fail(f"{recipe}: {got:.3f} of the questions (relations aside) answered exactly right",
             f"≥ {MIN_EXACT}", f"{got:.3f}", "the lecture's section 6 measured each choice alone at 300 steps: which "
             "projector learns fastest per step, and whether stage 1 pays for a model this small")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("05.quiz_penultimate", "LLaVA feeds its projector the patch tokens of the CLIP vision tower's "
              "penultimate layer, not its last. Why?", "b",
              "CLIP's loss sees only the class token's output of the last layer. The last block's patch outputs feed "
              "nothing, so nothing trains them for what they say about their own place; the layer before is what "
              "the last block's class token reads from, patch by patch. LLaVA's authors found those features "
              "better for answers about details.",
              choices={"a": "the last layer has no patch tokens, only the class token",
                       "b": "the last layer is shaped by CLIP's global image-text objective (only its class token "
                            "is used); the layer before keeps each patch's local detail",
                       "c": "it saves one block of computation",
                       "d": "the penultimate layer's features are already in the language model's embedding space"},
              wrong={"a": "every layer of a ViT keeps one token per patch besides the class token; CLIP just does "
                          "not use the last layer's patch tokens.",
                     "c": "a block is a small part of the cost, and LLaVA runs the whole tower anyway when it "
                          "extracts features once.",
                     "d": "no layer of the vision tower is in the language model's space: that is what the "
                          "projector learns."})
register_quiz("05.quiz_stage1", "Stage 1 trains only the projector, on image-caption pairs, with the language model "
              "frozen. What does it teach?", "a",
              "with the language model frozen, the only thing that can change is where the image lands in its "
              "embedding space: stage 1 aligns the projected features with the words the model already reads, so "
              "it can describe an image. Following instructions about the image is stage 2's work, where the "
              "language model is trained too.",
              choices={"a": "to map the image features into the language model's embedding space, where the frozen "
                            "model can describe them",
                       "b": "the language model to answer questions about images",
                       "c": "the vision tower to see the world's shapes",
                       "d": "the language model new words for what it sees"},
              wrong={"b": "the language model is frozen in stage 1 and the data are captions, not questions: "
                          "answering is learned in stage 2.",
                     "c": "the vision tower is frozen in both stages.",
                     "d": "the vocabulary and the language model are frozen: only the projector learns."})
register_quiz("05.quiz_loss_positions", "A training conversation has a system text and a user turn of 12 tokens in "
              "all (the <image> placeholder among them), one image of 16 projected features, then the assistant's "
              "answer of 2 tokens and <eot>. After the splice, how many positions carry loss?", 3.0,
              "only the assistant's tokens carry labels: the 2 answer tokens and <eot>. The system text, the user "
              "turn and the 16 image positions get -100.",
              wrong={30.0: "that is every position after the splice (11 + 16 + 3): only the assistant's answer is "
                           "trained on.",
                     19.0: "the 16 image positions carry no label: there is no next token of the text to predict "
                           "there.",
                     2.0: "the <eot> after the answer carries a label too: the model must learn to stop."})
