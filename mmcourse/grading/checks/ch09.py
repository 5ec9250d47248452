"""Chapter 09 exercises: tensor fusion and cross-attention fusion (build); a late fusion that mixes up its classes
(fix); a modality-dropout rate for a missing-modality bar (experiment); three questions (quiz)."""

from __future__ import annotations

import contextlib
import functools
import io
import math

import torch

from mmcourse import zoo
from mmcourse.grading.core import devices, expect_close, fail, register, register_quiz
from mmcourse.grading.memo import remembered
from mmcourse.recipes import fusion_tiny


# ---------------------------------------------------------------- 09.tensor_fusion
def tensor_fusion(za, zb):
    """Reference: vec([za; 1] ⊗ [zb; 1]) per example, (B, (Da + 1)(Db + 1)), index i * (Db + 1) + j."""
    one = za.new_ones(za.shape[0], 1)
    return (torch.cat([za, one], 1)[:, :, None] * torch.cat([zb, one], 1)[:, None, :]).flatten(1)


def _tfn_no_ones(za, zb):
    """leaves out the appended 1s: only the products, the unimodal terms za and zb are lost"""
    return (za[:, :, None] * zb[:, None, :]).flatten(1)


def _tfn_ones_first(za, zb):
    """puts the 1 in front ([1; za]) instead of appending it"""
    one = za.new_ones(za.shape[0], 1)
    return (torch.cat([one, za], 1)[:, :, None] * torch.cat([one, zb], 1)[:, None, :]).flatten(1)


def _tfn_concat(za, zb):
    """concatenates [za; zb; 1] instead of multiplying: no products at all"""
    return torch.cat([za, zb, za.new_ones(za.shape[0], 1)], 1)


def _tfn_transposed(za, zb):
    """flattens [zb; 1] ⊗ [za; 1]: the two factors' order swapped"""
    return tensor_fusion(zb, za)


@register("09.tensor_fusion", tensor_fusion, [_tfn_no_ones, _tfn_ones_first, _tfn_concat, _tfn_transposed])
def _test_tensor_fusion(fn):
    g = torch.Generator().manual_seed(90)
    n = 0
    for device in devices():
        for B, Da, Db in [(3, 2, 4), (1, 3, 3), (5, 4, 1)]:
            za, zb = torch.randn(B, Da, generator=g).to(device), torch.randn(B, Db, generator=g).to(device)
            expect_close(fn(za, zb), tensor_fusion(za, zb), f"za {tuple(za.shape)}, zb {tuple(zb.shape)}",
                         "per example: append a 1 to each vector, take the outer product (Da + 1) × (Db + 1) with "
                         "za's entries as rows, flatten it row by row")
            n += 1
    return n


# ---------------------------------------------------------------- 09.cross_attention_fusion
def cross_attention_fusion(a, b, w_q, w_k, w_v):
    """Reference: q = a w_q, k = b w_k, v = b w_v; weights = softmax_j(q k^T / sqrt(d)); (mean_i (weights v)_i,
    weights)."""
    q, k, v = a @ w_q, b @ w_k, b @ w_v
    weights = (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(-1)
    return (weights @ v).mean(1), weights


def _xattn_softmax_queries(a, b, w_q, w_k, w_v):
    """normalises the weights over the queries (dim 1) instead of over b's tokens"""
    q, k, v = a @ w_q, b @ w_k, b @ w_v
    weights = (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(1)
    return (weights @ v).mean(1), weights


def _xattn_no_scale(a, b, w_q, w_k, w_v):
    """leaves out the 1/sqrt(d) scaling of the scores"""
    q, k, v = a @ w_q, b @ w_k, b @ w_v
    weights = (q @ k.transpose(1, 2)).softmax(-1)
    return (weights @ v).mean(1), weights


def _xattn_swapped(a, b, w_q, w_k, w_v):
    """lets b's tokens attend to a's (queries from the wrong modality)"""
    q, k, v = b @ w_q, a @ w_k, a @ w_v
    weights = (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(-1)
    return (weights @ v).mean(1), weights


def _xattn_values_from_a(a, b, w_q, w_k, w_v):
    """takes the values from a instead of from b (only possible when both have as many tokens)"""
    q, k, v = a @ w_q, b @ w_k, a @ w_v
    weights = (q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])).softmax(-1)
    return (weights @ v).mean(1), weights


def _xattn_sum_pool(a, b, w_q, w_k, w_v):
    """sums the attended query tokens instead of averaging them"""
    out, weights = cross_attention_fusion(a, b, w_q, w_k, w_v)
    return out * a.shape[1], weights


@register("09.cross_attention_fusion", cross_attention_fusion,
          [_xattn_softmax_queries, _xattn_no_scale, _xattn_swapped, _xattn_values_from_a, _xattn_sum_pool])
def _test_cross_attention_fusion(fn):
    g = torch.Generator().manual_seed(91)
    n = 0
    for device in devices():
        for B, La, Lb, D, d in [(2, 3, 5, 4, 8), (3, 4, 4, 6, 6), (1, 1, 3, 2, 4)]:
            a, b = torch.randn(B, La, D, generator=g).to(device), torch.randn(B, Lb, D, generator=g).to(device)
            w = [(2 * torch.randn(D, d, generator=g)).to(device) for _ in range(3)]
            case = f"a {tuple(a.shape)}, b {tuple(b.shape)}, w_q, w_k, w_v ({D}, {d})"
            out = fn(a, b, *w)
            if not (isinstance(out, tuple) and len(out) == 2):
                fail(f"{case}: return a pair (fused, weights)", "a tuple of two tensors", type(out))
            fused, weights = cross_attention_fusion(a, b, *w)
            expect_close(out[1], weights, f"{case}: the attention weights (B, La, Lb)",
                         "queries from a, keys from b; scores q·k / sqrt(d); softmax over b's tokens (the last dim)")
            expect_close(out[0], fused, f"{case}: the fused vector (B, d)",
                         "weights @ (b w_v), then the mean over a's tokens")
            n += 1
    return n


# ---------------------------------------------------------------- 09.late_fusion (fix)
def late_fusion(image_logits, image_classes, sound_logits, sound_classes, weights):
    """Reference: w_image · softmax(image) + w_sound · softmax(sound, columns put in image_classes' order)."""
    order = [sound_classes.index(c) for c in image_classes]
    return weights[0] * image_logits.softmax(-1) + weights[1] * sound_logits[:, order].softmax(-1)


def _late_study_guide(image_logits, image_classes, sound_logits, sound_classes, weights):
    """adds the two probability vectors column by column although the two classifiers list their classes in
    different orders, and normalises over the batch (softmax on dim 0)"""
    return weights[0] * image_logits.softmax(0) + weights[1] * sound_logits.softmax(0)


def _late_unordered(image_logits, image_classes, sound_logits, sound_classes, weights):
    """adds the two probability vectors column by column: the sound's class order is never matched to the image's"""
    return weights[0] * image_logits.softmax(-1) + weights[1] * sound_logits.softmax(-1)


def _late_inverse_order(image_logits, image_classes, sound_logits, sound_classes, weights):
    """reorders with the inverse permutation (image_classes.index of each sound class)"""
    order = [image_classes.index(c) for c in sound_classes]
    return weights[0] * image_logits.softmax(-1) + weights[1] * sound_logits[:, order].softmax(-1)


def _late_batch_softmax(image_logits, image_classes, sound_logits, sound_classes, weights):
    """matches the class order but normalises over the batch (softmax on dim 0)"""
    order = [sound_classes.index(c) for c in image_classes]
    return weights[0] * image_logits.softmax(0) + weights[1] * sound_logits[:, order].softmax(0)


def _late_logits(image_logits, image_classes, sound_logits, sound_classes, weights):
    """averages the logits instead of the probabilities"""
    order = [sound_classes.index(c) for c in image_classes]
    return weights[0] * image_logits + weights[1] * sound_logits[:, order]


@register("09.late_fusion", late_fusion, [_late_study_guide, _late_unordered, _late_inverse_order,
                                          _late_batch_softmax, _late_logits])
def _test_late_fusion(fn):
    g = torch.Generator().manual_seed(92)
    classes = ["circle", "square", "triangle", "star"]
    n = 0
    for device in devices():
        for B, C, weights in [(4, 3, (0.5, 0.5)), (3, 4, (0.7, 0.3)), (2, 2, (0.2, 0.8))]:
            image_classes = classes[:C]
            perm = torch.randperm(C, generator=g).tolist()
            while C > 1 and perm == list(range(C)):
                perm = torch.randperm(C, generator=g).tolist()
            if C == 3:
                perm = [1, 2, 0]  # a cycle: its inverse is another permutation
            sound_classes = [image_classes[i] for i in perm]
            image_logits = (2 * torch.randn(B, C, generator=g)).to(device)
            sound_logits = (2 * torch.randn(B, C, generator=g)).to(device)
            case = f"B={B}, image classes {image_classes}, sound classes {sound_classes}, weights {weights}"
            expect_close(fn(image_logits, image_classes, sound_logits, sound_classes, weights),
                         late_fusion(image_logits, image_classes, sound_logits, sound_classes, weights), case,
                         "probabilities per example (softmax over the classes), the sound's columns put in the "
                         "image's class order, then the weighted sum")
            n += 1
    return n


# ---------------------------------------------------------------- 09.dropout_rate (experiment)
EXPERIMENT = dict(n_train=2000, n_test=1000, steps=200, kept=0.95, both=0.97)


@functools.cache
def experiment_data():
    """Chapter 09's control task as frozen features: 2 000 training and 1 000 test examples, with the image-only and
    sound-only models' test accuracy (about 10 s on a CPU, once per session)."""
    visual = zoo.load("clip-tiny", verbose=False).visual
    with contextlib.redirect_stdout(io.StringIO()):
        sound_encoder, _ = fusion_tiny.train_sound_encoder(seed=0, progress=False)
        train = fusion_tiny.features(fusion_tiny.task_data("control", EXPERIMENT["n_train"], 5), visual,
                                     sound_encoder)
        test = fusion_tiny.features(fusion_tiny.task_data("control", EXPERIMENT["n_test"], 6), visual, sound_encoder)
        ceiling = {m: fusion_tiny.accuracy(fusion_tiny.train("late", train, steps=EXPERIMENT["steps"],
                                                             modalities=(m,), progress=False, device="cpu")[0], test)
                   for m in ("image", "sound")}
    return train, test, ceiling


@remembered
def run_dropout(rate: float) -> dict[str, float]:
    """Concatenation fusion trained on the control task with modality dropout `rate`; its test accuracy with both
    modalities, without the image and without the sound."""
    train, test, _ = experiment_data()
    with contextlib.redirect_stdout(io.StringIO()):
        model, _ = fusion_tiny.train("concat", train, steps=EXPERIMENT["steps"], modality_dropout=rate,
                                     progress=False, device="cpu")
    return {"both": fusion_tiny.accuracy(model, test), "no image": fusion_tiny.accuracy(model, test, "image"),
            "no sound": fusion_tiny.accuracy(model, test, "sound")}


def _rate_reference():
    return 0.5


def _rate_none():
    """no modality dropout: the fused model collapses without the stream it leans on"""
    return 0.0


def _rate_tiny():
    """a rate so small that the model rarely sees a missing stream in training"""
    return 0.05


@register("09.dropout_rate", _rate_reference, [_rate_none, _rate_tiny])
def _test_dropout_rate(fn):
    rate = fn()
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        fail("my_dropout_rate() must return a rate", "a float in [0, 1]", rate)
    _, _, ceiling = experiment_data()
    got = run_dropout(float(rate))
    kept = {"no image": got["no image"] / ceiling["sound"], "no sound": got["no sound"] / ceiling["image"]}
    if got["both"] < EXPERIMENT["both"] or min(kept.values()) < EXPERIMENT["kept"]:
        fail(f"rate {rate:g}: accuracy with both {got['both']:.3f}; share of the single-modality ceiling kept "
             f"without the image {kept['no image']:.3f}, without the sound {kept['no sound']:.3f}",
             f"both ≥ {EXPERIMENT['both']} and each share ≥ {EXPERIMENT['kept']}",
             f"{got['both']:.3f}, {kept['no image']:.3f}, {kept['no sound']:.3f}",
             "the model must see each stream missing often enough in training: raise the rate")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("09.quiz_which_fusion", "A model must answer 'is the object you hear small or large?' from an image "
              "of two objects and a sound. Which fusion would you choose?", "c",
              "the answer depends on which object the sound belongs to: one modality must select or multiply a "
              "feature of the other. Cross-attention does exactly that (chapter 09's table: near perfect, with the "
              "attention on the heard object).",
              choices={"a": "late fusion with learned weights", "b": "late fusion averaging probabilities",
                       "c": "cross-attention from the sound's tokens to the image's",
                       "d": "any: with frozen encoders the fusion does not matter"},
              wrong={"a": "late fusion is a sum f(image) + g(sound); the interaction is an XOR-like pattern no sum "
                          "expresses, whatever the weights: it stayed at chance.",
                     "b": "averaging probabilities is still one verdict per modality, combined without interaction.",
                     "d": "that holds on the control task, where each modality suffices; on the interaction task "
                          "the methods ranged from chance to near perfect."})
register_quiz("09.quiz_dropout", "Why does a fused model trained on both modalities fail when one is missing at "
              "test time, and how does modality dropout fix it?", "b",
              "trained only on complete inputs, the model may lean on one stream and has never seen a zeroed one; "
              "modality dropout shows it zeroed streams in training, so it learns to answer from either alone.",
              choices={"a": "the missing modality's encoder has no weights; dropout adds them",
                       "b": "it never saw a zeroed stream and leans on one; dropout trains it on zeroed streams",
                       "c": "dropout regularises the fusion layer, which reduces overfitting in general",
                       "d": "it fails because of batch normalisation; dropout replaces it"},
              wrong={"a": "the encoders are unchanged; the input the fusion sees is what differs.",
                     "c": "ordinary dropout drops single units; modality dropout removes a whole stream — the "
                          "point is the missing stream, not general regularisation.",
                     "d": "the fusion models of this chapter have no batch normalisation."})
register_quiz("09.quiz_tfn_size", "Tensor fusion projects each pooled modality to 16 numbers, appends a 1 to each "
              "and takes the outer product. How many numbers does the fused vector have?", 289,
              "(16 + 1) × (16 + 1) = 289: the 256 products, the 16 + 16 unimodal terms (the products with a 1) and "
              "the constant 1.",
              wrong={256: "that leaves out the appended 1s, and with them the unimodal terms.",
                     32: "that is concatenation (16 + 16), not an outer product.",
                     33: "that is concatenation with a 1, not an outer product."})
