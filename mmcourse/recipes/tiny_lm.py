"""The course's language model: a small decoder pre-trained with next-token prediction on the world's text. The zoo
entry "tiny-lm" is this recipe; chapter 05 (LLaVA) gives it eyes.

    model = build()                               # nn.TextDecoder: width 64, 4 layers, context 128
    train(model)                                  # STEPS steps on `corpus()`: captions and conversations
    perplexity(model, corpus(2000, seed=1000))    # on text it never saw

The corpus is what a language model could read about this world without ever seeing an image: captions, and
conversations in the chat format (`mmcourse.data.chat`) whose first user turn gives a description of a scene
("a red circle left of a blue square. what colour is the circle?") or gives nothing at all. Every token is a
target, as in any pre-training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmcourse.data import caption, sample_scenes
from mmcourse.data.chat import Tokenized, chat_tokenizer, pad_conversations, qa_turns, tokenize_conversation
from mmcourse.losses.lm import lm_loss
from mmcourse.nn import TextDecoder
from mmcourse.train import History, fit
from mmcourse.utils import check_sizes, describe, get_device, make_generator, python_rng, seed_everything

__all__ = ["VERSION", "CONTEXT_LENGTH", "STEPS", "BATCH_SIZE", "HYPER", "tokenizer", "build", "corpus", "batches",
           "train", "perplexity"]

VERSION = 1
CONTEXT_LENGTH = 192  # room for a LLaVA conversation: 64 image positions and four question-answer turns
TEXTS = 30_000
STEPS = 1500
BATCH_SIZE = 64
HYPER = dict(lr=3e-3, betas=(0.9, 0.98), weight_decay=0.05, warmup=100, grad_clip=1.0)
KINDS = ("caption", "described", "blind")  # what a document of the corpus is; drawn uniformly


def tokenizer():
    return chat_tokenizer()


def build(seed: int = 0, **overrides) -> TextDecoder:
    """The untrained decoder (tied embeddings, GELU), initialised from `seed`."""
    tok = tokenizer()
    seed_everything(seed)
    sizes = dict(width=64, layers=4, heads=4) | overrides
    return TextDecoder(tok.vocab_size, CONTEXT_LENGTH, **sizes, eot_id=tok.eot_id, pad_id=tok.pad_id,
                       sot_id=tok.sot_id)


def corpus(n: int = TEXTS, seed: int = 0) -> list[Tokenized]:
    """n documents about random scenes of 1-3 shapes (any colour-shape pair), labels = ids: a caption; a
    conversation about a scene that the first user turn describes ("described"); or one that no turn describes,
    whose answers no reader could know ("blind")."""
    tok, rng = tokenizer(), python_rng(seed, "lm-corpus")
    scenes = sample_scenes(n, seed, max_objects=3)
    docs = []
    for i in range(n):
        objects, kind = scenes.objects(i), rng.choice(KINDS)
        if kind == "caption":
            ids = tok.encode(caption(objects, rng))
        else:
            context = caption(objects, rng) + "." if kind == "described" else ""
            turns = qa_turns(objects, rng, rng.randint(1, 3), image=context, p_describe=0.2 * (kind == "blind"))
            ids = tokenize_conversation(turns, tok).ids
        docs.append(Tokenized(ids, ids))
    return docs


def batches(docs: Sequence[Tokenized], batch_size: int = BATCH_SIZE, seed: int = 0):
    """step -> {"ids", "labels"} (B, L): epochs of shuffled documents, the last partial batch dropped."""
    if not isinstance(docs, (list, tuple)) or not docs or not all(isinstance(d, Tokenized) for d in docs):
        raise TypeError(f"docs: expected a non-empty list of Tokenized documents, got {describe(docs)}")
    check_sizes(batch_size=batch_size)
    per_epoch = len(docs) // batch_size
    if per_epoch < 1:
        raise ValueError(f"batch_size must be at most the number of documents ({len(docs)}), got {batch_size}")
    pad = tokenizer().pad_id

    def batch(step: int) -> dict:
        epoch, i = divmod(step, per_epoch)
        order = torch.randperm(len(docs), generator=make_generator(seed, f"lm-batches/{epoch}"))
        ids, labels = pad_conversations([docs[k] for k in order[i * batch_size:(i + 1) * batch_size].tolist()], pad)
        return {"ids": ids, "labels": labels}

    return batch


def train(model: TextDecoder, docs: Sequence[Tokenized] | None = None, steps: int = STEPS,
          batch_size: int = BATCH_SIZE, seed: int = 0, device: torch.device | str | None = None,
          **fit_kw) -> History:
    """Pre-train in place on `docs` (default `corpus()`) with next-token loss and `HYPER`; fit_kw go to `fit`."""
    docs = corpus() if docs is None else docs
    seed_everything(seed)
    fit_kw = {"desc": "tiny-lm", **HYPER, **fit_kw}
    return fit(model, lm_step, batches(docs, batch_size, seed), steps, device=device or get_device(), **fit_kw)


def lm_step(model: TextDecoder, batch: dict) -> Tensor:
    return lm_loss(model(batch["ids"]), batch["labels"])


@torch.no_grad()
def perplexity(model: TextDecoder, docs: Sequence[Tokenized], batch_size: int = 500) -> float:
    """exp(mean next-token loss) over every target token of `docs`."""
    model.eval()
    pad, dev = tokenizer().pad_id, model.positional_embedding.device
    total, count = 0.0, 0
    for s in range(0, len(docs), batch_size):
        ids, labels = pad_conversations(docs[s:s + batch_size], pad)
        labels = labels.to(dev)
        n = int((labels[:, 1:] != -100).sum())
        total += lm_loss(model(ids.to(dev)), labels).item() * n
        count += n
    return float(torch.tensor(total / count).exp())
