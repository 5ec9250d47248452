"""Chapter 02 exercises: the symmetric contrastive loss, EOT pooling, the zero-shot classifier, Recall@K (build);
a SigLIP loss from a tutorial (fix); the temperature a short training can start from (experiment); three
questions (quiz)."""

from __future__ import annotations

import contextlib
import io
import math

import torch
import torch.nn.functional as F

from mmcourse.data import SHAPES, CaptionDataset
from mmcourse.grading.core import devices, expect_close, fail, register, register_quiz
from mmcourse.losses import clip_loss as _clip_loss
from mmcourse.losses import siglip_loss as _siglip_loss
from mmcourse.metrics.retrieval import recall_at_k as _recall_at_k
from mmcourse.models.clip import CLIP, CLIPConfig, zero_shot_predict
from mmcourse.models.clip import zero_shot_classifier as _zero_shot_classifier
from mmcourse.nn import pool_eot as _pool_eot
from mmcourse.recipes import clip_tiny


# ---------------------------------------------------------------- 02.clip_loss
def clip_loss(image_features, text_features, logit_scale):
    """Reference: (CE(s·x̂ŷᵀ, arange B) + CE(s·ŷx̂ᵀ, arange B)) / 2 with x̂, ŷ L2-normalised rows."""
    return _clip_loss(image_features, text_features, logit_scale)


def _logits(image_features, text_features, logit_scale):
    return logit_scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T


def _loss_image_to_text_only(image_features, text_features, logit_scale):
    """takes the loss of one direction only (image → text), not the mean of both"""
    logits = _logits(image_features, text_features, logit_scale)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def _loss_divides_by_scale(image_features, text_features, logit_scale):
    """divides the logits by logit_scale instead of multiplying: s is the multiplier, not τ"""
    logits = _logits(image_features, text_features, 1.0) / logit_scale
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _loss_not_normalised(image_features, text_features, logit_scale):
    """forgets to L2-normalise the features before the dot product"""
    logits = logit_scale * image_features @ text_features.T
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _loss_fixed_temperature(image_features, text_features, logit_scale):
    """uses a fixed temperature 0.07 instead of the learned logit_scale"""
    logits = _logits(image_features, text_features, 1.0) / 0.07
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _loss_scale_detached(image_features, text_features, logit_scale):
    """detaches logit_scale, so the temperature cannot learn"""
    return _clip_loss(image_features, text_features, logit_scale.detach())


@register("02.clip_loss", clip_loss, [_loss_image_to_text_only, _loss_divides_by_scale, _loss_not_normalised,
                                      _loss_fixed_temperature, _loss_scale_detached])
def _test_clip_loss(fn):
    g = torch.Generator().manual_seed(20)
    n = 0
    for device in devices():
        for B, D, scale, spread in [(8, 16, 10.0, 3.0), (5, 32, 1 / 0.07, 0.5), (1, 4, 30.0, 1.0),
                                    (16, 8, 100.0, 2.0), (3, 64, 1.0, 5.0)]:
            x = (spread * torch.randn(B, D, generator=g)).to(device).requires_grad_(True)
            y = (torch.randn(B, D, generator=g) + x.detach().cpu() / spread).to(device).requires_grad_(True)
            s = torch.tensor(scale, device=device, requires_grad=True)
            case = f"B={B}, D={D}, logit_scale={scale:.4g}"
            loss = fn(x, y, s)
            expect_close(loss, clip_loss(x, y, s), case, "normalise both, logits = logit_scale · x̂ ŷᵀ, then the "
                         "mean of the cross-entropies over the rows (image→text) and the columns (text→image)")
            if not isinstance(loss, torch.Tensor) or loss.shape != ():
                fail(f"{case}: the loss must be a scalar tensor", "shape ()", getattr(loss, "shape", loss))
            loss.backward()
            if s.grad is None or (B > 1 and s.grad.abs() < 1e-8):
                fail(f"{case}: no gradient reaches logit_scale", "a learnable temperature", "none",
                     "multiply by the tensor itself (no float(), .item() or a constant 0.07)")
            if x.grad is None or y.grad is None:
                fail(f"{case}: no gradient reaches the features", "x.grad and y.grad", None)
            n += 1
    return n


# ---------------------------------------------------------------- 02.pool_eot
def pool_eot(hidden, ids, eot_id):
    """Reference: hidden (B, L, D) at each row's first end-of-text token -> (B, D)."""
    return _pool_eot(hidden, ids, eot_id)


def _pool_last(hidden, ids, eot_id):
    """pools at the last position, not at <eot>"""
    return hidden[:, -1]


def _pool_argmax_hidden(hidden, ids, eot_id):
    """pools where the hidden state is largest, not where the ids hold <eot>"""
    position = hidden.amax(dim=-1).argmax(dim=1)
    return hidden[torch.arange(len(hidden), device=hidden.device), position]


def _pool_argmax_ids(hidden, ids, eot_id):
    """pools at ids.argmax(): right only when <eot> has the largest id of the vocabulary"""
    return hidden[torch.arange(len(hidden), device=hidden.device), ids.argmax(dim=1)]


def _pool_before_eot(hidden, ids, eot_id):
    """pools one position before <eot>"""
    position = (ids == eot_id).int().argmax(dim=1) - 1
    return hidden[torch.arange(len(hidden), device=hidden.device), position]


def _pool_last_eot(hidden, ids, eot_id):
    """pools at the last <eot> of a row, not the first"""
    position = ids.shape[1] - 1 - (ids == eot_id).int().flip(1).argmax(dim=1)
    return hidden[torch.arange(len(hidden), device=hidden.device), position]


def _pool_mean(hidden, ids, eot_id):
    """averages over all positions instead of pooling at <eot>"""
    return hidden.mean(dim=1)


def _token_ids(lengths, L, eot_id, vocab, g):
    """Rows: <sot>=1, random word ids above eot_id, <eot>, then padding 0."""
    ids = torch.zeros(len(lengths), L, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, 0] = 1
        ids[i, 1:n - 1] = torch.randint(eot_id + 1, vocab, (n - 2,), generator=g)
        ids[i, n - 1] = eot_id
    return ids


@register("02.pool_eot", pool_eot, [_pool_last, _pool_argmax_hidden, _pool_argmax_ids, _pool_before_eot,
                                    _pool_last_eot, _pool_mean])
def _test_pool_eot(fn):
    g = torch.Generator().manual_seed(21)
    n = 0
    for device in devices():
        for lengths, L, D in [([4, 7, 3], 7, 5), ([5], 9, 3), ([2, 6, 9, 4], 10, 8)]:
            ids = _token_ids(lengths, L, 2, 40, g).to(device)
            twice = len(lengths) > 2  # then the first row holds <eot> twice: one inside the words
            if twice:
                ids[0, 1] = 2
            hidden = torch.randn(len(lengths), L, D, generator=g).to(device).requires_grad_(True)
            case = (f"hidden {tuple(hidden.shape)}, captions of {lengths} tokens, eot_id=2"
                    + (", the first row with <eot> at positions 1 and " + str(lengths[0] - 1) if twice else ""))
            got = fn(hidden, ids, 2)
            expect_close(got, pool_eot(hidden, ids, 2), case,
                         "find the first <eot> in the ids (ids == eot_id) — not in the hidden states, not at the "
                         "last position, and not with ids.argmax(): here <eot> is id 2, smaller than the words' ids")
            if got.grad_fn is None:
                fail(f"{case}: no gradient flows back to hidden", "grad_fn set", None, "index, don't copy values")
            n += 1
    return n


# ---------------------------------------------------------------- 02.zero_shot_classifier
def zero_shot_classifier(model, tokenize, classnames, templates):
    """Reference: (embed_dim, n_classes), per class the re-normalised mean of its normalised prompt embeddings."""
    return _zero_shot_classifier(model, tokenize, classnames, templates)


def _zs_no_prompt_normalisation(model, tokenize, classnames, templates):
    """averages the prompt embeddings before normalising each one"""
    device = model.logit_scale.device
    columns = [model.encode_text(tokenize([t.format(c) for t in templates]).to(device)).mean(0) for c in classnames]
    return F.normalize(torch.stack(columns, dim=1), dim=0)


def _zs_no_renormalisation(model, tokenize, classnames, templates):
    """does not normalise the averaged class embedding again"""
    device = model.logit_scale.device
    columns = [model.encode_text(tokenize([t.format(c) for t in templates]).to(device), normalize=True).mean(0)
               for c in classnames]
    return torch.stack(columns, dim=1)


def _zs_first_template_only(model, tokenize, classnames, templates):
    """uses the first template only, not the whole ensemble"""
    device = model.logit_scale.device
    ids = tokenize([templates[0].format(c) for c in classnames]).to(device)
    return model.encode_text(ids, normalize=True).T


def _zs_class_rows(model, tokenize, classnames, templates):
    """returns (n_classes, embed_dim): the classes must be the columns"""
    return _zero_shot_classifier(model, tokenize, classnames, templates).T


_WORDS = ["<pad>", "<eot>", "a", "an", "photo", "of", "picture", "there", "is", "red", "blue", "green", "circle",
          "square", "triangle", "the"]


def _tokenize(texts, length=10):
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    for i, text in enumerate(texts):
        words = [_WORDS.index(w) for w in text.split()][: length - 1]
        ids[i, : len(words) + 1] = torch.tensor([*words, 1])
    return ids


@register("02.zero_shot_classifier", zero_shot_classifier,
          [_zs_no_prompt_normalisation, _zs_no_renormalisation, _zs_first_template_only, _zs_class_rows])
def _test_zero_shot_classifier(fn):
    n = 0
    for device in devices():
        torch.manual_seed(22)
        model = CLIP(CLIPConfig.tiny(vocab_size=len(_WORDS), eot_id=1, context_length=10, embed_dim=24)).to(device)
        model.eval()
        with torch.no_grad():  # spread the prompt norms apart: normalising before averaging must matter
            model.text.text_projection.mul_(torch.linspace(0.2, 3.0, 24, device=device))
        for classnames, templates in [
            (["a red circle", "a blue square", "a green triangle"], ["{}", "a photo of {}", "there is {}"]),
            (["the red square"], ["a picture of {}", "{}"]),
            (["a blue circle", "a green square"], ["there is {}"]),
            (["a red triangle", "a red square", "a blue triangle", "a green circle"],
             ["a photo of {}", "a picture of {}", "{}", "there is {}"]),
        ]:
            case = f"{len(classnames)} classes x {len(templates)} templates"
            got = fn(model, _tokenize, classnames, templates)
            expect_close(got, zero_shot_classifier(model, _tokenize, classnames, templates), case,
                         "one column per class: encode each prompt, normalise each, average, normalise the mean; "
                         "shape (embed_dim, n_classes)", atol=1e-5)
            n += 1
    return n


# ---------------------------------------------------------------- 02.recall_at_k
def recall_at_k(similarity, relevant, k):
    """Reference: the fraction of queries with at least one relevant item among their k most similar items."""
    return _recall_at_k(similarity, relevant, k)


def _recall_strict(similarity, relevant, k):
    """counts the top k − 1 items only"""
    top = similarity.topk(k, dim=1).indices[:, :k - 1]
    return relevant.gather(1, top).any(dim=1).float().mean().item()


def _recall_ir(similarity, relevant, k):
    """computes information-retrieval recall (relevant found / all relevant) instead of a hit rate"""
    top = similarity.topk(k, dim=1).indices
    return (relevant.gather(1, top).sum(1) / relevant.sum(1)).mean().item()


def _recall_lowest_first(similarity, relevant, k):
    """takes the k lowest similarities instead of the highest"""
    top = similarity.topk(k, dim=1, largest=False).indices
    return relevant.gather(1, top).any(dim=1).float().mean().item()


def _recall_first_relevant_only(similarity, relevant, k):
    """only counts the first relevant item of each query, not any of them"""
    top = similarity.topk(k, dim=1).indices
    return (top == relevant.int().argmax(dim=1, keepdim=True)).any(dim=1).float().mean().item()


def _recall_over_items(similarity, relevant, k):
    """ranks along the wrong dimension (queries per item instead of items per query)"""
    top = similarity.topk(min(k, similarity.shape[0]), dim=0).indices
    return relevant.gather(0, top).any(dim=0).float().mean().item()


@register("02.recall_at_k", recall_at_k, [_recall_strict, _recall_ir, _recall_lowest_first,
                                          _recall_first_relevant_only, _recall_over_items])
def _test_recall_at_k(fn):
    g = torch.Generator().manual_seed(23)
    n = 0
    for device in devices():
        for n_q, per_query, k in [(6, 1, 1), (10, 1, 3), (8, 5, 5), (7, 3, 2), (1, 3, 2), (5, 4, 10)]:
            n_items = n_q * per_query
            owner = torch.arange(n_items) // per_query  # item j belongs to query owner[j]
            relevant = (torch.arange(n_q)[:, None] == owner[None, :]).to(device)
            similarity = (torch.randn(n_q, n_items, generator=g) + 1.5 * relevant.cpu()).to(device)
            case = f"{n_q} queries x {n_items} items, {per_query} relevant each, k={k}"
            expect_close(fn(similarity, relevant, k), recall_at_k(similarity, relevant, k), case,
                         "a query is a hit when ANY of its relevant items is among its k highest similarities "
                         "(top k per row, largest first); Recall@K is the fraction of hits", atol=1e-6)
            n += 1
    return n


# ---------------------------------------------------------------- 02.siglip_loss (fix)
def siglip_loss(image_features, text_features, logit_scale, logit_bias):
    """Reference: −Σ logsigmoid((2I − 1) · (s x̂ ŷᵀ + b)) / B."""
    return _siglip_loss(image_features, text_features, logit_scale, logit_bias)


def _siglip_logits(image_features, text_features, logit_scale, logit_bias):
    return _logits(image_features, text_features, logit_scale) + logit_bias


def _siglip_eye_labels(image_features, text_features, logit_scale, logit_bias):
    """labels from torch.eye are 0 off the diagonal: the negatives get a constant loss and no gradient"""
    logits = _siglip_logits(image_features, text_features, logit_scale, logit_bias)
    labels = torch.eye(len(logits), device=logits.device)
    return -F.logsigmoid(labels * logits).sum() / len(logits)


def _siglip_mean(image_features, text_features, logit_scale, logit_bias):
    """averages over all B² pairs instead of summing and dividing by B"""
    logits = _siglip_logits(image_features, text_features, logit_scale, logit_bias)
    labels = 2 * torch.eye(len(logits), device=logits.device) - 1
    return -F.logsigmoid(labels * logits).mean()


def _siglip_no_bias(image_features, text_features, logit_scale, logit_bias):
    """drops the learned bias b"""
    return _siglip_loss(image_features, text_features, logit_scale, 0.0)


@register("02.siglip_loss", siglip_loss, [_siglip_eye_labels, _siglip_mean, _siglip_no_bias])
def _test_siglip_loss(fn):
    g = torch.Generator().manual_seed(24)
    n = 0
    for device in devices():
        for B, D, scale, bias in [(6, 16, 10.0, -10.0), (1, 4, 5.0, -2.0), (12, 32, 30.0, -5.0), (3, 8, 1.0, 0.5)]:
            x = torch.randn(B, D, generator=g).to(device).requires_grad_(True)
            y = (torch.randn(B, D, generator=g) + x.detach().cpu()).to(device).requires_grad_(True)
            s = torch.tensor(scale, device=device, requires_grad=True)
            b = torch.tensor(bias, device=device, requires_grad=True)
            case = f"B={B}, D={D}, s={scale:g}, b={bias:g}"
            loss = fn(x, y, s, b)
            expect_close(loss, siglip_loss(x, y, s, b), case,
                         "the labels are +1 on the diagonal and −1 elsewhere (2·I − 1), created on the logits' "
                         "device; sum the B² log-sigmoids and divide by B")
            loss.backward()
            if b.grad is None or s.grad is None:
                fail(f"{case}: no gradient reaches the scale and the bias", "s.grad and b.grad", None)
            n += 1
    return n


# ---------------------------------------------------------------- 02.temperature_experiment
EXPERIMENT_STEPS, EXPERIMENT_BAR = 120, 0.9


def train_colours(scale: float, learn_scale: bool, steps: int = EXPERIMENT_STEPS, seed: int = 0):
    """A fresh tiny CLIP trained for `steps` steps (batch 64, lr 5e-3, no gradient clipping) on 4 000 single-shape
    images, its logit scale starting at `scale` and learned only if `learn_scale`; silent."""
    data = CaptionDataset(4000, 32, seed, split="train", max_objects=1, captions_per_image=1,
                          context_length=clip_tiny.CONTEXT_LENGTH)
    model = clip_tiny.build(seed=seed)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(scale))
    model.logit_scale.requires_grad_(learn_scale)
    with contextlib.redirect_stdout(io.StringIO()):  # the check's verdict is the only line it prints
        clip_tiny.train(model, data, steps=steps, batch_size=64, seed=seed, warmup=20, lr=5e-3, grad_clip=None,
                        eval_every=None, progress=False)
    return model.cpu()


def colour_accuracy(model, n: int = 1000, seed: int = 2024) -> float:
    """Zero-shot accuracy of `model` at naming the colour of new single-shape images (the 24-class prompts)."""
    images, labels = clip_tiny.zero_shot_sets(n, seed)["seen"]
    predicted = zero_shot_predict(model, images, clip_tiny.class_weights(model))
    return (predicted // len(SHAPES) == labels // len(SHAPES)).float().mean().item()


def _experiment_reference():
    return train_colours(1 / 0.07, learn_scale=True)


def _experiment_too_sharp():
    """a fixed scale of 100: the softmax is nearly a hard argmax from the first step and training stalls"""
    return train_colours(100.0, learn_scale=False)


def _experiment_untrained():
    """returns a model that was never trained"""
    return clip_tiny.build(seed=0)


@register("02.temperature_experiment", _experiment_reference, [_experiment_too_sharp, _experiment_untrained])
def _test_temperature_experiment(fn):
    model = fn()
    if not isinstance(model, CLIP):
        fail("my_experiment() must return the CLIP that train_colours trained", "a CLIP", type(model).__name__)
    accuracy = colour_accuracy(model)
    if accuracy < EXPERIMENT_BAR:
        fail(f"colour accuracy {accuracy:.1%} on 1 000 new images, below the bar", f"≥ {EXPERIMENT_BAR:.0%}",
             f"{accuracy:.1%}", "a softmax that starts too sharp learns slowly: start lower, or let s learn")
    return 1


# ---------------------------------------------------------------- quizzes
register_quiz("02.quiz_floor", "The loss floor at s = 1 for perfect features, batch 32 768", math.log1p(32767 / math.e),
              "log(1 + (B − 1)/e) grows with log B: a bigger batch makes s = 1 even worse, which is why the scale "
              "must be learned (and ends up large).", tolerance=0.01,
              wrong={round(math.log1p(127 / math.e), 2): "that is the floor for a batch of 128.",
                     round(math.log(32768), 2): "that is log B, the loss of a uniform guess, not the floor."})
register_quiz("02.quiz_gap", "Why does the modality gap not hurt zero-shot classification?", "b",
              "zero-shot ranks the class prompts for one image; adding the same vector to every text embedding "
              "adds the same number to every class score.",
              choices={"a": "normalisation removes it", "b": "a shared shift changes no argmax",
                       "c": "the temperature compensates", "d": "prompt ensembles remove it"},
              wrong={"a": "normalisation puts the embeddings on a sphere; the two cones stay apart on it.",
                     "c": "s multiplies every score alike: it cannot move one cone onto the other.",
                     "d": "every prompt of the ensemble is a text: their mean lies in the text cone too."})
register_quiz("02.quiz_duplicates", "SigLIP, k identical captions in a row: the best probability", "b",
              "−log σ(z) − (k − 1)·log(1 − σ(z)) is smallest at σ(z) = 1/k: the same compromise as the softmax.",
              choices={"a": "1", "b": "1/k", "c": "1/2", "d": "0"},
              wrong={"a": "the k − 1 other pairs have the same logit and are labelled −1: they pay for it.",
                     "c": "1/2 is the answer for k = 2 only.",
                     "d": "then the one positive pair pays an infinite loss."})
