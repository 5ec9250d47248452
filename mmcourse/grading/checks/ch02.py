"""Chapter 02 exercises: the symmetric contrastive loss, EOT pooling, the zero-shot classifier, Recall@K."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmcourse.grading.core import devices, expect_close, fail, register
from mmcourse.losses import clip_loss as _clip_loss
from mmcourse.metrics.retrieval import recall_at_k as _recall_at_k
from mmcourse.models.clip import CLIP, CLIPConfig
from mmcourse.models.clip import zero_shot_classifier as _zero_shot_classifier
from mmcourse.nn import pool_eot as _pool_eot


# ---------------------------------------------------------------- 02.clip_loss
def clip_loss(image_features, text_features, logit_scale):
    """Reference: (CE(s·x̂ŷᵀ, arange B) + CE(s·ŷx̂ᵀ, arange B)) / 2 with x̂, ŷ L2-normalised rows."""
    return _clip_loss(image_features, text_features, logit_scale)


def _logits(image_features, text_features, logit_scale):
    return logit_scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T


def _loss_image_to_text_only(image_features, text_features, logit_scale):
    logits = _logits(image_features, text_features, logit_scale)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def _loss_divides_by_scale(image_features, text_features, logit_scale):
    logits = _logits(image_features, text_features, 1.0) / logit_scale
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _loss_not_normalised(image_features, text_features, logit_scale):
    logits = logit_scale * image_features @ text_features.T
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _loss_fixed_temperature(image_features, text_features, logit_scale):  # the study guide's "/ 0.07"
    logits = _logits(image_features, text_features, 1.0) / 0.07
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def _loss_scale_detached(image_features, text_features, logit_scale):  # the temperature can no longer learn
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
    return hidden[:, -1]


def _pool_argmax_hidden(hidden, ids, eot_id):  # the study guide's bug
    position = hidden.amax(dim=-1).argmax(dim=1)
    return hidden[torch.arange(len(hidden), device=hidden.device), position]


def _pool_argmax_ids(hidden, ids, eot_id):  # right only when <eot> has the largest id (OpenAI's vocabulary)
    return hidden[torch.arange(len(hidden), device=hidden.device), ids.argmax(dim=1)]


def _pool_before_eot(hidden, ids, eot_id):
    position = (ids == eot_id).int().argmax(dim=1) - 1
    return hidden[torch.arange(len(hidden), device=hidden.device), position]


def _pool_mean(hidden, ids, eot_id):
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
                                    _pool_mean])
def _test_pool_eot(fn):
    g = torch.Generator().manual_seed(21)
    n = 0
    for device in devices():
        for lengths, L, D in [([4, 7, 3], 7, 5), ([5], 9, 3), ([2, 6, 9, 4], 10, 8)]:
            ids = _token_ids(lengths, L, 2, 40, g).to(device)
            hidden = torch.randn(len(lengths), L, D, generator=g).to(device).requires_grad_(True)
            case = f"hidden {tuple(hidden.shape)}, captions of {lengths} tokens, eot_id=2"
            got = fn(hidden, ids, 2)
            expect_close(got, pool_eot(hidden, ids, 2), case,
                         "find <eot> in the ids (ids == eot_id) — not in the hidden states, not at the last "
                         "position, and not with ids.argmax(): here <eot> is id 2, smaller than the words' ids")
            if got.grad_fn is None:
                fail(f"{case}: no gradient flows back to hidden", "grad_fn set", None, "index, don't copy values")
            n += 1
    return n


# ---------------------------------------------------------------- 02.zero_shot_classifier
def zero_shot_classifier(model, tokenize, classnames, templates):
    """Reference: (embed_dim, n_classes), per class the re-normalised mean of its normalised prompt embeddings."""
    return _zero_shot_classifier(model, tokenize, classnames, templates)


def _zs_no_prompt_normalisation(model, tokenize, classnames, templates):
    device = model.logit_scale.device
    columns = [model.encode_text(tokenize([t.format(c) for t in templates]).to(device)).mean(0) for c in classnames]
    return F.normalize(torch.stack(columns, dim=1), dim=0)


def _zs_no_renormalisation(model, tokenize, classnames, templates):
    device = model.logit_scale.device
    columns = [model.encode_text(tokenize([t.format(c) for t in templates]).to(device), normalize=True).mean(0)
               for c in classnames]
    return torch.stack(columns, dim=1)


def _zs_first_template_only(model, tokenize, classnames, templates):
    device = model.logit_scale.device
    ids = tokenize([templates[0].format(c) for c in classnames]).to(device)
    return model.encode_text(ids, normalize=True).T


def _zs_class_rows(model, tokenize, classnames, templates):  # (n_classes, embed_dim): transposed
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


def _recall_strict(similarity, relevant, k):  # top k - 1 only
    top = similarity.topk(k, dim=1).indices[:, :k - 1]
    return relevant.gather(1, top).any(dim=1).float().mean().item()


def _recall_ir(similarity, relevant, k):  # relevant items found / all relevant items (information-retrieval recall)
    top = similarity.topk(k, dim=1).indices
    return (relevant.gather(1, top).sum(1) / relevant.sum(1)).mean().item()


def _recall_lowest_first(similarity, relevant, k):
    top = similarity.topk(k, dim=1, largest=False).indices
    return relevant.gather(1, top).any(dim=1).float().mean().item()


def _recall_first_relevant_only(similarity, relevant, k):
    top = similarity.topk(k, dim=1).indices
    return (top == relevant.int().argmax(dim=1, keepdim=True)).any(dim=1).float().mean().item()


def _recall_over_items(similarity, relevant, k):  # ranks each item among the queries (wrong dim)
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
