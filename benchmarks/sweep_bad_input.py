"""Bad input swept across the public API: how does each call answer? (The issue "Nothing silently wrong".)

Every public function (each module's __all__, the public methods of its classes, the recipes' small helpers) has
one known-good call below. The sweep perturbs one argument at a time with the bad inputs a learner gives -- a
tensor of the wrong rank or dtype, a str / None / list instead of a tensor or a number, an empty input, NaN and
inf, a size of 0, -1, 2.5 or 10**12, a batch one row too long, an id out of range, an unknown name -- runs every
call in a pool of worker processes with a time limit per call, and sorts the answers:

    clear    a ValueError / TypeError / IndexError / KeyError raised by mmcourse whose message names the argument
             (the rule of tests/test_bad_input.py)
    unclear  any other error: one that does not name the argument, or a raw error from inside torch or Python
    silent   the call returned: a result computed from bad input
    hang     no answer within --timeout seconds (the worker is killed); crash: the worker died

A perturbation that is valid input for its argument (None where None means "the default", NaN that comes out as
a NaN loss, which `fit` stops at) is marked valid where the argument is declared, with the reason, and not run.
Models, callables and generators are duck-typed and passed as they are; data objects (scenes, speech, a dataset, a
History, a state dict) are perturbed. A mismatch of the batch (or of a shape two arguments share) may be reported
on either argument.
Prints a table per module, the totals and every call that was not clear; asserts nothing.

    python benchmarks/sweep_bad_input.py [--timeout 20] [--workers 2] [--only substring] [--list]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import itertools  # noqa: E402
import multiprocessing as mp  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections import Counter, deque  # noqa: E402
from multiprocessing.connection import wait  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

import mmcourse  # noqa: E402
from mmcourse import data as D  # noqa: E402
from mmcourse import distributed, grading, results, strategies, train, utils, viz  # noqa: E402
from mmcourse import losses as L  # noqa: E402
from mmcourse import metrics as M  # noqa: E402
from mmcourse import nn as N  # noqa: E402
from mmcourse.data import chat  # noqa: E402
from mmcourse.losses import distributed as LD  # noqa: E402
from mmcourse.models import blip as MB  # noqa: E402
from mmcourse.models import clip as MC  # noqa: E402
from mmcourse.models import clip_port as MP  # noqa: E402
from mmcourse.models import fusion as MF  # noqa: E402
from mmcourse.models import llava as ML  # noqa: E402
from mmcourse.models import videobert as MV  # noqa: E402
from mmcourse.nn import fusion as NF  # noqa: E402
from mmcourse.recipes import blip_tiny, fusion_tiny, llava_tiny, strategies_tiny, tiny_lm  # noqa: E402

torch.set_num_threads(1)
NAN, INF, HUGE = float("nan"), float("inf"), 10**12
CLEAR = (ValueError, TypeError, IndexError, KeyError)
PACKAGE = str(Path(mmcourse.__file__).parent)
MEMORY = 4 * 2**30  # a worker may allocate this much above what it holds at start (a huge size fails fast)

# Reasons a perturbation is valid input (declared with the argument: valid={kind: reason}).
NAN_OUT = "NaN / inf in, NaN / inf out: visible in the result (fit stops at a non-finite loss)"
ANY_DTYPE = "any dtype works: the values are converted"
OPTIONAL = "None means the default"
EMPTY_OK = "empty input has a well-defined answer here"
ANY_INT = "any int is a valid value here"
ANY_SIZE = "a long schedule or a large bound is not an error"
EMPTY_BATCH = "an empty batch gives an empty result"
NAN_DRAWN = "NaN / inf pixels are drawn as gaps: visible in the figure"
ANY_LEAD = "any leading dims are allowed"


class Arg:
    """One argument of a good call: make() builds its good value afresh; bad maps each perturbation kind to a
    maker of the bad value; valid maps the kinds that are valid input here to why; says: other words an error
    may name it by."""

    def __init__(self, make, bad, valid=None, says=(), batch=False):
        self.make, self.bad, self.valid, self.says, self.batch = make, bad, dict(valid or {}), says, batch


def _fresh(value):
    return lambda: copy.deepcopy(value)


def _poke(t: torch.Tensor, value) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[-1] = value
    return t


def T(make, *, ids=None, batch=False, valid=None, says=()) -> Arg:
    """A tensor, built by make(). ids=V: token / class ids in [0, V) (also tried: V and -1); batch: its first dim
    is the batch that other arguments share (also tried: one row more)."""
    x = make()
    bad = {"ndim+1": lambda: make()[None], "str": lambda: "tensor", "None": lambda: None,
           "list": lambda: make().tolist()}
    if x.ndim >= 1:
        bad |= {"ndim-1": lambda: make()[0], "empty": lambda: make()[:0]}
    bad["dtype"] = (lambda: make().long()) if x.is_floating_point() else (lambda: make().float())
    if x.is_floating_point():
        bad |= {"nan": lambda: _poke(make(), NAN), "inf": lambda: _poke(make(), INF)}
    if ids is not None:
        bad |= {"id=V": lambda: _poke(make(), ids), "id=-1": lambda: _poke(make(), -1)}
    if batch:
        bad["batch+1"] = lambda: torch.cat([make(), make()[:1]])
    return Arg(make, bad, valid, says, batch)


def I(value, *, low=1, high=None, huge=True, valid=None, says=()) -> Arg:  # noqa: E743
    """An int (a size, a count, an id) in [low, high]; huge: also try 10**12."""
    bad = {"float": lambda: value + 0.5, "str": lambda: str(value), "None": lambda: None}
    if low is not None:
        bad |= {"0": lambda: 0} if low > 0 else {}
        bad |= {"-1": lambda: -1} if low > -1 else {}
    if high is not None:
        bad["high+1"] = lambda: high + 1
    elif huge:
        bad["huge"] = lambda: HUGE
    return Arg(lambda: value, bad, valid, says)


def F(value, *, low=None, high=None, low_open=False, valid=None, says=()) -> Arg:
    """A real number in [low, high] (low excluded when low_open)."""
    bad = {"nan": lambda: NAN, "inf": lambda: INF, "str": lambda: str(value), "None": lambda: None}
    if low is not None:
        bad["below"] = lambda: low - 1.0
        bad |= {"at-low": lambda: float(low)} if low_open else {}
    if high is not None:
        bad["above"] = lambda: high + 1.0
    return Arg(lambda: value, bad, valid, says)


def S(value, *, valid=None, says=()) -> Arg:
    """A name from a fixed set (a mode, a split, a loss)."""
    return Arg(lambda: value, {"unknown": lambda: "nope", "int": lambda: 5, "None": lambda: None}, valid, says)


def TEXT(value, *, valid=None, says=()) -> Arg:
    """Free text."""
    return Arg(lambda: value, {"int": lambda: 5, "None": lambda: None, "empty": lambda: ""}, valid, says)


def NAMES(value, *, valid=None, says=()) -> Arg:
    """A list of names from a fixed set."""
    bad = {"unknown": lambda: ["nope"], "str": lambda: value[0], "empty": lambda: [], "None": lambda: None,
           "int": lambda: [5]}
    return Arg(_fresh(value), bad, valid, says)


def LIST(value, *, item=5, valid=None, says=(), batch=False) -> Arg:
    """A list of things; item: a wrong item (tried as [item]); batch: one entry per example of the batch."""
    bad = {"empty": lambda: [], "str": lambda: "text", "None": lambda: None, "item": lambda: [item]}
    return Arg(_fresh(value), bad, valid, says, batch)


def OBJ(value, *, valid=None, says=()) -> Arg:
    """An object of a given kind (scenes, speech, a dataset, a History, launch's fn): tried as None and as a str."""
    return Arg(lambda: value, {"None": lambda: None, "str": lambda: "object"}, valid, says)


def SEED(value=0) -> Arg:
    return Arg(lambda: value, {"float": lambda: 0.5, "str": lambda: "0", "None": lambda: None})


def RNG() -> Arg:
    return Arg(lambda: random.Random(0), {"None": lambda: None, "int": lambda: 0, "str": lambda: "rng"})


# ------------------------------------------------------------------------------------------------ the good calls
SPECS: list[tuple[str, str, object, dict]] = []


def spec(module: str, label: str, fn, /, **args) -> None:
    """A known-good call fn(**args) of the function `label`; each Arg among the args is perturbed in turn."""
    SPECS.append((module, label, fn, args))


def later(fn):
    """A function of the call's result: for calls that return a sampler (step -> batch), draw step 0 too."""
    return lambda *a, **kw: fn(*a, **kw)(0)


_counter = itertools.count()
scenes = D.sample_scenes(3, 0)
objs = scenes.objects(0)
two = D.sample_scenes(4, 0, min_objects=2, max_objects=2).objects(0)
tok = D.Tokenizer()
V = len(tok)
ids = lambda: torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]])  # noqa: E731
ds = D.CaptionDataset(8, 16)
speech = D.speak([["red", "circle"], ["one", "two"]])
chat_tok = chat.chat_tokenizer()
conv = chat.tokenize_conversation([("user", "<image> what colour is the circle?"), ("assistant", "red")], chat_tok)
history = train.History(loss=[1.0, 0.5, 0.25], evals=[{"step": 3, "accuracy": 0.5}])
quiet = dict(progress=False, device="cpu")

# utils
spec("utils", "make_generator", utils.make_generator, seed=SEED(), stream="x")
spec("utils", "python_rng", utils.python_rng, seed=SEED(), stream="x")
spec("utils", "seed_everything", utils.seed_everything, seed=SEED())
spec("utils", "get_device", utils.get_device, prefer=S("cpu", valid={"None": OPTIONAL}))
spec("utils", "check_tensor", utils.check_tensor, x=T(lambda: torch.randn(2, 3), valid={
    "nan": "check_tensor checks shapes and dtypes, not values", "inf": "check_tensor checks shapes, not values"}),
     name="x", shape=(2, 3), dtype="float")
spec("utils", "check_number", utils.check_number, x=F(0.5, low=0, high=1), name="x", low=0, high=1)

# data: the world
spec("data", "sample_scenes", D.sample_scenes, n=I(3), seed=SEED(), min_objects=I(1), max_objects=I(3, high=8),
     split=S("all"), colours=NAMES(["red", "blue", "green"], says=("colour",), valid={"None": OPTIONAL}),
     shapes=NAMES(["circle", "square"], says=("shape",), valid={"None": OPTIONAL}),
     sizes=NAMES(["small"], says=("size",), valid={"None": OPTIONAL}))
spec("data", "shape_twins", D.shape_twins, scenes=OBJ(scenes), seed=SEED(), split=S("train"))
spec("data", "render", D.render, scenes=OBJ(scenes), resolution=I(16, low=8), seed=SEED(),
     colour_jitter=F(0.03, low=0), noise=F(0.02, low=0))
spec("data", "allowed_pairs", D.world.allowed_pairs, split=S("train"),
     held_out=LIST([("green", "triangle")], item=("mauve", "circle"), valid={"empty": "no pair held out"}))
spec("data", "Scenes.objects", scenes.objects, i=I(0, low=0, high=2, valid={
     "-1": "a negative index counts from the end, as in Python"}))
spec("data", "Scenes.boxes", scenes.boxes, resolution=I(32, low=1, valid={"huge": "boxes scale to any resolution"}))
spec("data", "Scenes.from_objects", D.Scenes.from_objects, scenes=LIST([objs], item={"colour": "red"}))
# data: text
spec("data", "caption", D.caption, objects=LIST(objs, item={"colour": "red"}), rng=RNG(),
     **{p: F(0.3, low=0, high=1) for p in ("p_drop_size", "p_position", "p_photo", "p_synonym", "p_relation")})
spec("data", "parse_caption", D.parse_caption, text=TEXT("a red circle", valid={"empty": EMPTY_OK}))
spec("data", "caption_is_correct", D.caption_is_correct, text=TEXT("a red circle", valid={"empty": EMPTY_OK}),
     objects=LIST(objs, item={"colour": "red"}, valid={"empty": EMPTY_OK}))
spec("data", "class_prompts", D.class_prompts, templates=LIST(["a photo of {}"], item=5))
spec("data", "corrupt_objects", D.corrupt_objects, objects=LIST(objs, item={"colour": "red"}), rng=RNG(),
     kind=S("swap"), pairs=LIST([(c, s) for c in D.COLOUR_NAMES for s in D.SHAPES], item=("mauve", "x"),
                                valid={"None": OPTIONAL}))
spec("data", "relation", D.relation, a=OBJ(two[0]), b=OBJ(two[1]))
spec("data", "make_question", D.make_question, objects=LIST(objs, item={"colour": "red"}), rng=RNG(),
     qtype=S("colour", says=("question type",), valid={"None": "None draws a question type at random"}))
spec("data", "annotator_answers", D.annotator_answers, answer=S("red"), rng=RNG(), n_match=I(3, low=0, high=10))
spec("data", "motion_caption", D.motion_caption, obj=OBJ(objs[0]), direction=S("left"),
     speed=S("slowly", valid={"None": OPTIONAL}), rng=OBJ(random.Random(0), valid={"None": OPTIONAL}))
spec("data", "Tokenizer", D.Tokenizer, words=LIST(["red", "circle"], valid={
     "None": OPTIONAL, "empty": "a vocabulary of the special tokens alone is allowed"}),
     extra_tokens=LIST(("<x>",), item=5, valid={"empty": EMPTY_OK}))
spec("data", "Tokenizer.encode", tok.encode, text=TEXT("a red circle"))
spec("data", "Tokenizer.encode_batch", tok.encode_batch, texts=LIST(["a red circle", "a square"], valid={
     "str": "a single str is one text"}),
     context_length=I(8, low=2, valid={"None": OPTIONAL, "huge": ANY_SIZE}))
spec("data", "Tokenizer.decode", tok.decode, ids=T(lambda: torch.tensor([1, 5, 2]), ids=V,
     valid={"list": "a list of ids is accepted", "empty": EMPTY_OK}))
spec("data", "Tokenizer.decode_batch", tok.decode_batch, ids=T(ids, ids=V, valid={"empty": EMPTY_BATCH}))
spec("data", "pad_batch", D.pad_batch, rows=LIST([[1, 5, 2], [1, 2]], item="x"),
     context_length=I(6, low=2, valid={"None": OPTIONAL}))
# data: audio and video
spec("data", "random_sentences", D.random_sentences, n=I(3), seed=SEED(), min_words=I(2), max_words=I(4),
     words=NAMES(["red", "circle"], says=("speech word",)))
spec("data", "speak", D.speak, sentences=LIST([["red", "circle"]], item=["mauve"], says=("speech word",)), seed=SEED(),
     sample_rate=I(8000), gap=Arg(lambda: (0.04, 0.12), {"nan": lambda: (NAN, 0.1), "neg": lambda: (-0.1, 0.1),
                                                          "str": lambda: "0.1", "None": lambda: None}))
spec("data", "add_noise", D.add_noise, signal=T(lambda: torch.randn(2, 100), batch=True, valid={"nan": NAN_OUT,
     "inf": NAN_OUT}), noise=T(lambda: torch.randn(2, 100), batch=True, valid={"nan": NAN_OUT, "inf": NAN_OUT}),
     snr_db=F(0.0), lengths=T(lambda: torch.tensor([100, 50]), batch=True, valid={"None": OPTIONAL}))
spec("data", "white_noise", D.white_noise, shape=Arg(lambda: (2, 3), {"neg": lambda: (-1, 3), "str": lambda: "23",
     "None": lambda: None, "float": lambda: (2.5, 3), "huge": lambda: (HUGE, HUGE)}), seed=SEED())
spec("data", "babble_noise", D.babble_noise, n=I(2), num_samples=I(800), seed=SEED(), talkers=I(2), pool=I(4),
     sample_rate=I(8000))
spec("data", "object_sounds", D.object_sounds, colour=T(lambda: torch.tensor([0, 3]), ids=8, batch=True),
     shape=T(lambda: torch.tensor([1, 2]), ids=3, batch=True), seed=SEED(), duration=F(0.1, low=0, low_open=True),
     sample_rate=I(8000))
spec("data", "scene_sounds", D.scene_sounds, scenes=OBJ(scenes), seed=SEED(), duration=F(0.1, low=0, low_open=True),
     sample_rate=I(8000))
RATE = I(8000, valid={"huge": "any sample rate computes"})
spec("data", "mel_filterbank", D.mel_filterbank, n_freqs=I(129), sample_rate=RATE, n_mels=I(40),
     f_min=F(0.0, low=0), f_max=F(4000.0, valid={"None": OPTIONAL}))
spec("data", "log_mel_spectrogram", D.log_mel_spectrogram, wave=T(lambda: torch.randn(2, 800), valid={
     "nan": NAN_OUT, "inf": NAN_OUT, "ndim-1": "a single wave (S,) is allowed", "ndim+1": ANY_LEAD}),
     sample_rate=RATE, n_fft=I(256),
     hop_length=I(80, valid={"huge": "a hop beyond the wave gives one frame"}), n_mels=I(40),
     floor=F(1e-10, low=0, low_open=True))
spec("data", "moving_shapes", D.moving_shapes, n=I(2), seed=SEED(), frames=I(4), resolution=I(16), split=S("all"))
spec("data", "talking_mouth", D.talking_mouth, speech=OBJ(speech), fps=I(50), size=I(16), seed=SEED(),
     noise=F(0.02, low=0))
# data: datasets and samplers
spec("data", "ShapesDataset", D.ShapesDataset, n=I(4), resolution=I(16), seed=SEED(), split=S("all"),
     max_objects=I(1, high=8))
spec("data", "CaptionDataset", D.CaptionDataset, n=I(4), resolution=I(16), captions_per_image=I(2),
     noise_fraction=F(0.5, low=0, high=1), noise_kinds=NAMES(["swap"], says=("noise kind",)),
     context_length=I(24, low=2, valid={"None": OPTIONAL, "huge": ANY_SIZE}))
spec("data", "VQADataset", D.VQADataset, n=I(4), resolution=I(16), questions_per_image=I(2),
     question_types=NAMES(["colour", "count"], says=("question type",)), min_agreement=I(3, low=0, high=10))
spec("data", "ObjectSoundDataset", D.ObjectSoundDataset, n=I(2), resolution=I(16),
     sound_duration=F(0.1, low=0, low_open=True))
spec("data", "MovingShapesDataset", D.MovingShapesDataset, n=I(2), resolution=I(16), frames=I(4))
spec("data", "AVSpeechDataset", D.AVSpeechDataset, n=I(2), seed=SEED(), snr_db=F(5.0, valid={"None": OPTIONAL}),
     noise=S("white", valid={"None": "None: no noise"}), min_words=I(1), max_words=I(2), fps=I(50),
     mouth_size=I(8))
spec("data", "pad_stack", D.pad_stack, tensors=LIST([torch.ones(2, 3), torch.ones(1, 3)], item="x"),
     value=F(0.0))
spec("data", "epoch_batches", later(D.epoch_batches), dataset=OBJ(ds), batch_size=I(4), seed=SEED())
spec("data", "inverse_frequency_weights", D.inverse_frequency_weights, labels=T(lambda: torch.tensor([0, 1, 1, 2])),
     num_classes=I(3, valid={"None": OPTIONAL}))
spec("data", "balanced_batches", later(D.balanced_batches), labels=T(lambda: torch.tensor([0, 1, 1, 2])),
     batch_size=I(4, valid={"huge": ANY_SIZE}), seed=SEED())
spec("data", "class_frequencies", D.class_frequencies, indices=T(lambda: torch.tensor([0, 3, 2]), ids=4, valid={
     "ndim+1": "indices of any shape are flattened", "ndim-1": "indices of any shape are flattened"}),
     labels=T(lambda: torch.tensor([0, 1, 1, 2])), num_classes=I(3))
spec("data", "pacing", D.pacing, step=I(2, low=0, valid={"huge": ANY_SIZE}), steps=I(10, valid={"huge": ANY_SIZE}),
     start=F(0.2, low=0, high=1, low_open=True), doubling=F(0.25, low=0, low_open=True))
spec("data", "curriculum_batches", later(D.curriculum_batches), difficulty=T(lambda: torch.rand(6), valid={
     "dtype": "integer difficulties (counts) are allowed", "inf": "inf sorts last: the hardest"}),
     batch_size=I(4, valid={"huge": ANY_SIZE}), steps=I(10, valid={"huge": ANY_SIZE}), seed=SEED(), pace=D.pacing)
spec("data", "chat.tokenize_conversation", chat.tokenize_conversation,
     turns=LIST([("user", "<image> what colour is it?"), ("assistant", "red")], item=("robot", "hi")),
     tok=chat_tok, system=TEXT("answer questions", valid={"None": "None: no system text",
                                                                "empty": "'' is no system text"}))
spec("data", "chat.pad_conversations", chat.pad_conversations, rows=LIST([conv], item=[1, 2]),
     pad_id=I(0, low=0, valid={"huge": ANY_INT}), context_length=I(40, valid={"None": OPTIONAL, "huge": ANY_SIZE}))
spec("data", "chat.qa_turns", chat.qa_turns, objects=LIST(two, item={"colour": "red"}), rng=RNG(),
     questions=I(2), question_types=NAMES(["colour", "count"], says=("question type",)),
     p_describe=F(0.5, low=0, high=1))

# nn
mha, cross = N.MultiheadAttention(8, 2), N.MultiheadAttention(8, 2, kv_dim=6)
block, trf = N.ResidualAttentionBlock(8, 2), N.Transformer(8, 1, 2)
dec = N.TextDecoder(20, 8, 16, 1, 2, eot_id=2, pad_id=0, sot_id=1)
dec_mem = N.TextDecoder(20, 8, 16, 1, 2, eot_id=2, pad_id=0, sot_id=1, memory_dim=6)
vit = N.VisionTransformer(16, 4, 16, 1, 2)
vq = N.VectorQuantizer(8, 4)
x8 = lambda: torch.randn(2, 3, 8)  # noqa: E731
qkv = lambda: torch.randn(2, 2, 3, 4)  # noqa: E731
spec("nn", "MLP", N.MLP, width=I(8), mlp_ratio=F(4.0, low=0, low_open=True), act=S("gelu"))
spec("nn", "MLP.forward", N.MLP(8), x=T(x8, valid={"nan": NAN_OUT, "inf": NAN_OUT, "ndim+1": ANY_LEAD,
                                                    "ndim-1": ANY_LEAD, "empty": EMPTY_BATCH}))
spec("nn", "MultiheadAttention", N.MultiheadAttention, dim=I(8), n_heads=I(2), kv_dim=I(6, valid={"None": OPTIONAL}),
     dropout=F(0.0, low=0, high=1))
spec("nn", "MultiheadAttention.forward", mha, x=T(x8, batch=True, valid={"nan": NAN_OUT, "inf": NAN_OUT}),
     key_padding_mask=T(lambda: torch.tensor([[False, False, True], [False, True, True]]), batch=True,
                        valid={"None": OPTIONAL}))
spec("nn", "MultiheadAttention.forward (cross)", cross, x=T(x8, batch=True, valid={"nan": NAN_OUT, "inf": NAN_OUT}),
     context=T(lambda: torch.randn(2, 5, 6), batch=True, valid={"nan": NAN_OUT, "inf": NAN_OUT}))
spec("nn", "ResidualAttentionBlock", N.ResidualAttentionBlock, width=I(8), heads=I(2),
     mlp_ratio=F(4.0, low=0, low_open=True), cross_dim=I(6, valid={"None": OPTIONAL}), dropout=F(0.0, low=0, high=1))
spec("nn", "ResidualAttentionBlock.forward", block, x=T(x8, valid={"nan": NAN_OUT, "inf": NAN_OUT,
                                                                   "empty": EMPTY_BATCH}))
spec("nn", "Transformer", N.Transformer, width=I(8), layers=I(1, low=0), heads=I(2), act=S("gelu"))
spec("nn", "Transformer.forward", trf, x=T(x8, valid={"nan": NAN_OUT, "inf": NAN_OUT, "empty": EMPTY_BATCH}),
     attn_mask=T(lambda: torch.ones(3, 3, dtype=torch.bool).tril(), valid={
         "None": OPTIONAL, "ndim+1": "any shape broadcastable to (B, H, Lq, Lk)",
         "dtype": "a float mask is added to the scores"}))
spec("nn", "TextDecoder", N.TextDecoder, vocab_size=I(20), context_length=I(8), width=I(16), layers=I(1, low=0),
     heads=I(2), eot_id=I(2, low=0, high=19), pad_id=I(0, low=0, high=19),
     sot_id=I(1, low=0, high=19, valid={"None": OPTIONAL}), memory_dim=I(6, valid={"None": OPTIONAL}))
spec("nn", "TextDecoder.forward", dec_mem, ids=T(ids, ids=20, batch=True),
     memory=T(lambda: torch.randn(2, 5, 6), batch=True, valid={"None": "None: no cross-attention", "nan": NAN_OUT,
                                                               "inf": NAN_OUT}))
spec("nn", "TextDecoder.generate", dec.generate, ids=T(lambda: torch.tensor([[1, 5], [1, 6]]), ids=20, batch=True,
     valid={"None": "None starts from sot_id"}), lengths=T(lambda: torch.tensor([2, 1]), batch=True,
                                                          valid={"None": OPTIONAL}),
     max_new_tokens=I(3, valid={"huge": "generation stops at context_length"}),
     temperature=F(1.0, low=0, low_open=True), top_k=I(5, valid={"None": OPTIONAL, "huge": ANY_SIZE}),
     top_p=F(0.9, low=0, high=1, low_open=True), do_sample=True, generator=torch.Generator().manual_seed(0))
spec("nn", "TextDecoder.generate (beams)", dec.generate, ids=T(lambda: torch.tensor([[1, 5], [1, 6]]), ids=20,
     valid={"None": "None starts from sot_id"}), num_beams=I(2, valid={"huge": "capped by the vocabulary"}),
     length_penalty=F(1.0), max_new_tokens=3)
spec("nn", "VisionTransformer", N.VisionTransformer, image_size=I(16), patch_size=I(4), width=I(16),
     layers=I(1, low=0), heads=I(2), output_dim=I(8, valid={"None": OPTIONAL}), in_channels=I(3))
spec("nn", "VisionTransformer.forward", vit, images=T(lambda: torch.rand(2, 3, 16, 16),
                                                      valid={"nan": NAN_OUT, "inf": NAN_OUT, "empty": EMPTY_BATCH}))
spec("nn", "VisionTransformer.patch_tokens", vit.patch_tokens, images=T(lambda: torch.rand(2, 3, 16, 16), valid={
     "nan": NAN_OUT, "inf": NAN_OUT, "empty": EMPTY_BATCH}), layer=I(-1, low=None, high=1))
spec("nn", "VectorQuantizer", N.VectorQuantizer, num_codes=I(8), dim=I(4), beta=F(0.25, low=0),
     decay=F(0.99, low=0, high=1), reset_threshold=F(0.1, low=0, high=1, valid={"None": OPTIONAL}))
spec("nn", "VectorQuantizer.forward", vq, z=T(lambda: torch.randn(2, 4, 3), valid={"nan": NAN_OUT, "inf": NAN_OUT}))
ANY_CODES = "codes of any shape"
spec("nn", "VectorQuantizer.lookup", vq.lookup, codes=T(lambda: torch.tensor([[0, 7], [1, 2]]), ids=8, valid={
     "ndim+1": ANY_CODES, "ndim-1": ANY_CODES, "empty": EMPTY_BATCH}))
pq = N.ProductQuantizer(8, 4, groups=2)
spec("nn", "ProductQuantizer", N.ProductQuantizer, num_codes=I(8), dim=I(4), groups=I(2, high=4))
spec("nn", "ProductQuantizer.forward", pq, z=T(lambda: torch.randn(2, 4, 3), valid={"nan": NAN_OUT, "inf": NAN_OUT}))
spec("nn", "ProductQuantizer.lookup", pq.lookup, codes=T(lambda: torch.tensor([[[0, 7], [1, 2]]]), ids=8, valid={
     "ndim+1": ANY_CODES, "empty": EMPTY_BATCH}))
spec("nn", "perplexity", N.perplexity, codes=T(lambda: torch.tensor([0, 1, 1, 3]), ids=4, valid={
     "ndim+1": ANY_CODES, "ndim-1": ANY_CODES}), num_codes=I(4))
spec("nn", "attention_rollout", N.attention_rollout, attn_list=LIST([torch.rand(2, 2, 5, 5).softmax(-1)] * 2,
                                                                     item=torch.rand(2, 5)))
spec("nn", "eot_positions", N.eot_positions, ids=T(ids, valid={"empty": EMPTY_BATCH}),
     eot_id=I(2, low=0, valid={"huge": ANY_INT}))
spec("nn", "pool_eot", N.pool_eot, hidden=T(lambda: torch.randn(2, 4, 8), batch=True,
                                            valid={"nan": NAN_OUT, "inf": NAN_OUT}),
     ids=T(ids, batch=True), eot_id=I(2, low=0, valid={"huge": ANY_INT}))
spec("nn", "patchify", N.patchify, images=T(lambda: torch.rand(2, 3, 8, 8), valid={
     "nan": NAN_OUT, "inf": NAN_OUT, "dtype": "patchify rearranges any dtype", "empty": EMPTY_BATCH}),
     patch_size=I(4))
for name, fn in (("scaled_dot_product_attention", N.scaled_dot_product_attention),
                 ("fast_attention", N.fast_attention)):
    spec("nn", name, fn, q=T(qkv, batch=True, valid={"nan": NAN_OUT, "inf": NAN_OUT}),
         k=T(qkv, batch=True, valid={"nan": NAN_OUT, "inf": NAN_OUT}),
         v=T(qkv, batch=True, valid={"nan": NAN_OUT, "inf": NAN_OUT}),
         key_padding_mask=T(lambda: torch.tensor([[False, False, True], [False, False, False]]), batch=True,
                            valid={"None": OPTIONAL}), dropout_p=F(0.0, low=0, high=1))
spec("nn", "fusion.EarlyFusion", NF.EarlyFusion, in_a=I(6), in_b=I(4), width=I(8), hidden=I(16))
spec("nn", "fusion.EarlyFusion.forward", NF.EarlyFusion(6, 4, 8), a=T(lambda: torch.randn(2, 6), batch=True,
     valid={"nan": NAN_OUT, "inf": NAN_OUT}), b=T(lambda: torch.randn(2, 4), batch=True,
                                                  valid={"nan": NAN_OUT, "inf": NAN_OUT}))
spec("nn", "fusion.LateFusion", NF.LateFusion, n_modalities=I(2))
spec("nn", "fusion.LateFusion.forward", NF.LateFusion(2), logits=LIST([torch.randn(2, 3), torch.randn(2, 3)],
                                                                        item="logits"))
for name, cls in (("ConcatFusion", NF.ConcatFusion), ("TensorFusion", NF.TensorFusion),
                  ("CrossAttentionFusion", NF.CrossAttentionFusion),
                  ("MultimodalTransformerFusion", NF.MultimodalTransformerFusion)):
    spec("nn", f"fusion.{name}", cls, dim_a=I(4), dim_b=I(6), width=I(8))
    spec("nn", f"fusion.{name}.forward", cls(4, 6, 8), a=T(lambda: torch.randn(2, 3, 4), batch=True,
         valid={"nan": NAN_OUT, "inf": NAN_OUT}), b=T(lambda: torch.randn(2, 5, 6), batch=True,
                                                      valid={"nan": NAN_OUT, "inf": NAN_OUT}))
MASKED = {"nan": NAN_OUT, "inf": NAN_OUT, "dtype": ANY_DTYPE}
spec("nn", "fusion.modality_dropout", NF.modality_dropout, a=T(lambda: torch.randn(2, 3), batch=True, valid=MASKED),
     b=T(lambda: torch.randn(2, 4), batch=True, valid=MASKED), p=F(0.5, low=0, high=1))

# losses
feats = lambda: torch.randn(2, 4)  # noqa: E731
FEAT = dict(valid={"nan": NAN_OUT, "inf": NAN_OUT})
spec("losses", "clip_loss", L.clip_loss, image_features=T(feats, batch=True, **FEAT),
     text_features=T(feats, batch=True, **FEAT), logit_scale=F(10.0, low=0, low_open=True))
spec("losses", "siglip_loss", L.siglip_loss, image_features=T(feats, batch=True, **FEAT),
     text_features=T(feats, batch=True, **FEAT), logit_scale=F(10.0, low=0, low_open=True), logit_bias=F(-10.0))
spec("losses", "symmetric_cross_entropy", L.symmetric_cross_entropy,
     logits_per_image=T(lambda: torch.randn(2, 2), batch=True, **FEAT),
     logits_per_text=T(lambda: torch.randn(2, 2), batch=True, **FEAT),
     targets=T(lambda: torch.tensor([0, 1]), ids=2, batch=True))
spec("losses", "hard_negative_probs", L.hard_negative_probs, sim=T(lambda: torch.randn(3, 3)),
     same=T(lambda: torch.zeros(3, 3, dtype=torch.bool), valid={"None": OPTIONAL}))
spec("losses", "sample_hard_negatives", L.sample_hard_negatives, sim=T(lambda: torch.randn(3, 3)),
     same=T(lambda: torch.zeros(3, 3, dtype=torch.bool), valid={"None": OPTIONAL}),
     generator=torch.Generator())
spec("losses", "itm_loss", L.itm_loss, score=lambda img, ids: img.mean(1)[:, :2] + ids[:, :1].float(),
     image_tokens=T(lambda: torch.randn(2, 3, 4), batch=True, **FEAT), ids=T(ids, batch=True),
     neg_text=T(lambda: torch.tensor([1, 0]), ids=2, batch=True),
     neg_image=T(lambda: torch.tensor([1, 0]), ids=2, batch=True))
spec("losses", "lm_loss", L.lm_loss, logits=T(lambda: torch.randn(2, 4, 20), batch=True, **FEAT),
     labels=T(ids, ids=20, batch=True), ignore_index=I(-100, low=None, valid={"huge": ANY_INT}),
     label_smoothing=F(0.1, low=0, high=1))
spec("losses", "bert_mask", L.bert_mask, ids=T(ids, ids=20, batch=True), mask_id=I(3, low=0, valid={"huge": ANY_INT}),
     vocab_size=I(20, valid={"huge": "a vocabulary may be large"}), p=F(0.15, low=0, high=1),
     maskable=T(lambda: torch.ones(2, 4, dtype=torch.bool), batch=True, valid={"None": OPTIONAL}))
spec("losses", "distributed.gather_features", LD.gather_features, x=T(feats, valid={**FEAT["valid"],
                                                                                   "empty": EMPTY_BATCH}))
spec("losses", "distributed_clip_loss", LD.distributed_clip_loss, image_features=T(feats, batch=True, **FEAT),
     text_features=T(feats, batch=True, **FEAT), logit_scale=F(10.0, low=0, low_open=True))
spec("losses", "distributed_siglip_loss", LD.distributed_siglip_loss, image_features=T(feats, batch=True, **FEAT),
     text_features=T(feats, batch=True, **FEAT), logit_scale=F(10.0, low=0, low_open=True), logit_bias=F(-10.0))

# metrics
sim = lambda: torch.randn(3, 3)  # noqa: E731
rel = lambda: torch.eye(3, dtype=torch.bool)  # noqa: E731
for name, fn in (("first_relevant_rank", M.first_relevant_rank), ("mean_reciprocal_rank", M.mean_reciprocal_rank),
                 ("median_rank", M.median_rank), ("mean_rank", M.mean_rank)):
    spec("metrics", name, fn, similarity=T(sim, batch=True), relevant=T(rel, batch=True))
spec("metrics", "recall_at_k", M.recall_at_k, similarity=T(sim, batch=True), relevant=T(rel, batch=True),
     k=I(1, valid={"huge": ANY_SIZE}))
spec("metrics", "mrr_at_k", M.mrr_at_k, similarity=T(sim), relevant=T(lambda: torch.tensor([0, 2, 1]), ids=3),
     k=I(1, valid={"huge": ANY_SIZE}))
spec("metrics", "retrieval_metrics", M.retrieval_metrics, similarity=T(sim), relevant=T(rel),
     ks=LIST((1, 2), item=0, says=("k",), valid={"empty": "no Recall@k asked for"}))
spec("metrics", "image_text_retrieval", M.image_text_retrieval, similarity=T(lambda: torch.randn(2, 4)),
     image_ids=T(lambda: torch.tensor([0, 0, 1, 1]), ids=2), ks=LIST((1, 2), item=0, says=("k",),
                                                                     valid={"empty": "no Recall@k asked for"}))
spec("metrics", "tokenize", M.tokenize, text=TEXT("A dog.", valid={"empty": EMPTY_OK}))
HYPS, REFS = ["a red circle", "a blue square"], [["a red circle", "a red disk"], ["a blue square"]]
BATCH = dict(valid={"nan": NAN_OUT, "inf": NAN_OUT, "empty": EMPTY_BATCH})
spec("metrics", "corpus_bleu", M.corpus_bleu, hypotheses=LIST(HYPS), references=LIST(REFS),
     max_n=I(4, valid={"huge": ANY_SIZE}))
spec("metrics", "sentence_bleu", M.sentence_bleu, hypothesis=TEXT("a red circle", valid={"empty": EMPTY_OK}),
     references=LIST(REFS[0]), max_n=I(4, valid={"huge": ANY_SIZE}))
spec("metrics", "rouge_l", M.rouge_l, hypotheses=LIST(HYPS), references=LIST(REFS),
     beta=F(1.2, low=0, low_open=True))
spec("metrics", "sentence_rouge_l", M.sentence_rouge_l, hypothesis=TEXT("a red circle", valid={"empty": EMPTY_OK}),
     references=LIST(REFS[0]), beta=F(1.2, low=0, low_open=True))
spec("metrics", "cider_d", M.cider_d, hypotheses=LIST(HYPS), references=LIST(REFS),
     n=I(4, valid={"huge": ANY_SIZE}), sigma=F(6.0, low=0, low_open=True))
spec("metrics", "sentence_cider_d", M.sentence_cider_d, hypothesis=TEXT("a red circle", valid={"empty": EMPTY_OK}),
     references=LIST(REFS[0]), corpus_references=LIST(REFS), n=I(4, valid={"huge": ANY_SIZE}),
     sigma=F(6.0, low=0, low_open=True))
spec("metrics", "caption_metrics", M.caption_metrics, hypotheses=LIST(HYPS), references=LIST(REFS))
spec("metrics", "sentence_caption_metrics", M.sentence_caption_metrics,
     hypothesis=TEXT("a red circle", valid={"empty": EMPTY_OK}), references=LIST(REFS[0]),
     corpus_references=LIST(REFS))
spec("metrics", "normalize_answer", M.normalize_answer, answer=TEXT("Two.", valid={"empty": EMPTY_OK}))
spec("metrics", "process_punctuation", M.process_punctuation, text=TEXT("a/b", valid={"empty": EMPTY_OK}))
spec("metrics", "process_digit_article", M.process_digit_article, text=TEXT("the two", valid={"empty": EMPTY_OK}))
ANSWERS = ["2"] * 6 + ["3"] * 4
spec("metrics", "vqa_score", M.vqa_score, prediction=TEXT("two", valid={"empty": EMPTY_OK}),
     answers=LIST(ANSWERS, item=2))
spec("metrics", "vqa_accuracy", M.vqa_accuracy, predictions=LIST(["two"], item=2), answers=LIST([ANSWERS], item=2))
spec("metrics", "vqa_accuracy_simplified", M.vqa_accuracy_simplified, predictions=LIST(["two"], item=2),
     answers=LIST([ANSWERS], item=2))
spec("metrics", "edit_distance", M.edit_distance, hypothesis=LIST(["a", "b"], valid={
     "empty": EMPTY_OK, "item": "any hashable tokens", "str": "a str is a sequence of characters"}),
     reference=LIST(["a", "c"], valid={"empty": EMPTY_OK, "item": "any hashable tokens",
                                       "str": "a str is a sequence of characters"}))
spec("metrics", "word_error_rate", M.word_error_rate, hypotheses=LIST(["a b"], item=None),
     references=LIST(["a c"], item=None))
spec("metrics", "char_error_rate", M.char_error_rate, hypotheses=LIST(["ab"]), references=LIST(["ac"]))
spec("metrics", "clip_score", M.clip_score, image_features=T(feats, batch=True), text_features=T(feats, batch=True),
     w=F(2.5, low=0, low_open=True), reduction=S("mean"))
spec("metrics", "ref_clip_score", M.ref_clip_score, image_features=T(feats, batch=True),
     text_features=T(feats, batch=True), reference_features=T(lambda: torch.randn(2, 3, 4), batch=True),
     w=F(2.5, low=0, low_open=True), reduction=S("mean"))

# models
clip = MC.CLIP(MC.CLIPConfig.tiny(30, 2, context_length=8))
images = lambda: torch.rand(2, 3, 32, 32)  # noqa: E731
IMG = dict(valid={"nan": NAN_OUT, "inf": NAN_OUT})
spec("models", "CLIP(CLIPConfig.tiny)", lambda **kw: MC.CLIP(MC.CLIPConfig.tiny(**kw)), vocab_size=I(30),
     eot_id=I(2, low=0, high=29), context_length=I(8), embed_dim=I(16), vision_layers=I(1, low=0),
     text_heads=I(4), loss=S("clip"))
spec("models", "CLIP.encode_image", clip.encode_image, images=T(images, **BATCH))
spec("models", "CLIP.encode_text", clip.encode_text, ids=T(ids, ids=30, valid={"empty": EMPTY_BATCH}))
spec("models", "CLIP.forward", clip, images=T(images, batch=True, **IMG), ids=T(ids, ids=30, batch=True))
spec("models", "CLIP.contrastive_loss", clip.contrastive_loss, images=T(images, batch=True, **IMG),
     ids=T(ids, ids=30, batch=True))
spec("models", "TextTransformer", MC.TextTransformer, vocab_size=I(30), context_length=I(8), width=I(16),
     layers=I(1, low=0), heads=I(2), output_dim=I(8), eot_id=I(2, low=0, high=29))
spec("models", "encode_images", MC.encode_images, model=clip, images=T(images, **BATCH), batch_size=I(1, valid={
     "huge": ANY_SIZE}))
spec("models", "encode_texts", MC.encode_texts, model=clip, ids=T(ids, ids=30, valid={"empty": EMPTY_BATCH}),
     batch_size=I(1, valid={"huge": ANY_SIZE}))
spec("models", "zero_shot_classifier", MC.zero_shot_classifier, model=clip,
     tokenize=lambda texts: torch.tensor([[1, 5, 2]] * len(texts)), classnames=LIST(["red"]),
     templates=LIST(["a photo of {}"], item=5))
spec("models", "zero_shot_predict", MC.zero_shot_predict, model=clip, images=T(images, **BATCH),
     weights=T(lambda: torch.randn(64, 3)), batch_size=I(1, valid={"huge": ANY_SIZE}))
plain = MC.CLIP(MC.CLIPConfig.tiny(30, 2, context_length=8, conv_stem=False))
openai = {re.sub(r"^text\.", "", k).replace("attn.qkv.", "attn.in_proj_"): v for k, v in plain.state_dict().items()}
spec("models", "clip_port.convert_state_dict", MP.convert_state_dict, state_dict=Arg(
     lambda: {"attn.in_proj_weight": torch.ones(1)}, {"None": lambda: None, "str": lambda: "weights",
                                                      "list": lambda: [torch.ones(1)]}))
spec("models", "clip_port.config_from_state_dict", MP.config_from_state_dict, state_dict=Arg(
     lambda: dict(openai), {"None": lambda: None, "str": lambda: "weights",
                                                             "empty": lambda: {}}))
spec("models", "clip_port.load_open_clip_state_dict", MP.load_open_clip_state_dict, model=plain,
     state_dict=Arg(lambda: dict(openai), {"None": lambda: None, "str": lambda: "weights", "empty": lambda: {}}))
blip_cfg = dict(vocab_size=30, context_length=10, enc_id=28, dec_id=29, eot_id=2, pad_id=0, vision_width=16,
                width=16, layers=1, heads=2, embed_dim=8)
blip = MB.BLIP(MB.BLIPConfig(**blip_cfg))
tokens = lambda: torch.randn(2, 5, 16)  # noqa: E731
spec("models", "BLIP(BLIPConfig)", lambda **kw: MB.BLIP(MB.BLIPConfig(**(blip_cfg | kw))), vocab_size=I(30),
     context_length=I(10), enc_id=I(28, low=0, high=29), pad_id=I(0, low=0, high=29), width=I(16), heads=I(2),
     label_smoothing=F(0.1, low=0, high=1))
spec("models", "BLIP.forward", blip, image_tokens=T(tokens, batch=True, **IMG), ids=T(ids, ids=30, batch=True),
     objectives=NAMES(("itc", "lm"), says=("objectives",)))
spec("models", "BLIP.encode_text", blip.encode_text, ids=T(ids, ids=30, batch=True),
     image_tokens=T(tokens, batch=True, valid={"None": "None: the unimodal encoder", **IMG["valid"]}))
spec("models", "BLIP.itm_prob", blip.itm_prob, image_tokens=T(tokens, batch=True, **IMG),
     ids=T(ids, ids=30, batch=True))
spec("models", "BLIP.generate", blip.generate, image_tokens=T(tokens, **IMG), max_new_tokens=I(3, valid={
     "huge": "generation stops at context_length"}))
spec("models", "fusion.SoundEncoder", MF.SoundEncoder, n_mels=I(8), frames=I(12), width=I(16), num_classes=I(4))
spec("models", "fusion.SoundEncoder.forward", MF.SoundEncoder(8, 12, 16), mel=T(lambda: torch.randn(2, 8, 12),
                                                                                  **BATCH))
spec("models", "fusion.ImageEncoder", MF.ImageEncoder, width=I(16), num_classes=I(4),
     channels=Arg(lambda: (4, 8), {"neg": lambda: (-1, 8), "str": lambda: "48", "None": lambda: None,
                                   "short": lambda: (4,)}))
spec("models", "fusion.ImageEncoder.forward", MF.ImageEncoder(16, 4, (4, 8)), images=T(lambda: torch.rand(2, 3, 8, 8),
                                                                                       **BATCH))
spec("models", "fusion.FusionClassifier", MF.FusionClassifier, method=S("concat"),
     image_shape=Arg(lambda: (5, 16), {"str": lambda: "16", "None": lambda: None, "neg": lambda: (5, -1),
                                       "empty": lambda: ()}),
     sound_shape=Arg(lambda: (3, 8), {"str": lambda: "8", "None": lambda: None, "neg": lambda: (3, -1),
                                      "empty": lambda: ()}),
     num_classes=I(4), width=I(16), heads=I(2, valid={"huge": "the concat method has no heads"}),
     modality_dropout=F(0.1, low=0, high=1))
for method in ("concat", "cross", "late"):
    spec("models", f"fusion.FusionClassifier.forward ({method})",
         MF.FusionClassifier(method, (5, 16), (3, 8), 4, 16, 2),
         image=T(lambda: torch.randn(2, 5, 16), batch=True, valid={"None": "a missing modality", **IMG["valid"]}),
         sound=T(lambda: torch.randn(2, 3, 8), batch=True, valid={"None": "a missing modality", **IMG["valid"]}))
two_stream = MF.TwoStreamClassifier(8, 12, 4, 16)
spec("models", "fusion.TwoStreamClassifier", MF.TwoStreamClassifier, n_mels=I(8), frames=I(12), num_classes=I(4),
     width=I(16))
spec("models", "fusion.TwoStreamClassifier.forward", two_stream, image=T(lambda: torch.rand(2, 3, 8, 8), batch=True,
     **IMG), sound=T(lambda: torch.randn(2, 8, 12), batch=True, **IMG))
spec("models", "fusion.TwoStreamClassifier.features", two_stream.features, stream=S("image"),
     x=T(lambda: torch.rand(2, 3, 8, 8), **BATCH))
lm = N.TextDecoder(20, 40, 16, 1, 2, eot_id=2, pad_id=0, sot_id=1)
vit2 = N.VisionTransformer(16, 4, 16, 2, 2)
llava = ML.LLaVA(vit2, lm, image_token_index=-200)
llava_ids = lambda: torch.tensor([[1, -200, 5, 2], [1, -200, 2, 0]])  # noqa: E731
spec("models", "llava.build_projector", ML.build_projector, kind=S("linear"), vision_width=I(16), width=I(8))
spec("models", "llava.splice", ML.splice, ids=T(llava_ids, batch=True), image_embeds=T(lambda: torch.randn(2, 3, 16),
     batch=True, **IMG), embed=lm.embed, image_token_index=I(-200, low=None, valid={"huge": ANY_INT}),
     pad_id=I(0, low=0, valid={"huge": ANY_INT}))
spec("models", "LLaVA", ML.LLaVA, vision_tower=vit2, language_model=lm,
     image_token_index=I(-200, low=None, high=-1), projector=S("linear"), feature_layer=I(-2, low=None, high=2))
spec("models", "LLaVA.forward", llava, ids=T(llava_ids, batch=True), labels=T(llava_ids, batch=True,
     valid={"None": "None: no loss", "id=-1": "a label id of -1 is ignored", "id=V": "-200 in labels is ignored"}),
     features=T(lambda: torch.randn(2, 16, 16), batch=True, **IMG))
spec("models", "videobert.VideoTokenizer", MV.VideoTokenizer, num_codes=I(8), dim=I(4), width=I(8),
     frames_per_token=I(1, high=2))
spec("models", "videobert.VideoTokenizer.forward", MV.VideoTokenizer(8, 4, 8),
     video=T(lambda: torch.rand(2, 3, 2, 8, 8), **IMG))
vbert = MV.VideoBERT(8, 4, 20, 5, 3, width=16, layers=1, heads=2)
spec("models", "videobert.VideoBERT", MV.VideoBERT, num_codes=I(8), video_length=I(4), vocab_size=I(20),
     text_length=I(5), text_mask_id=I(3, low=0, high=19), width=I(16), layers=I(1, low=0), heads=I(2))
video_codes = lambda: torch.tensor([[0, 1, 2, 8], [3, 4, 5, 6]]).unsqueeze(-1)  # noqa: E731  (B, Nv, G = 1)
spec("models", "videobert.VideoBERT.forward", vbert, codes=T(video_codes, ids=9, batch=True),
     ids=T(ids, ids=20, batch=True))
spec("models", "videobert.VideoBERT.fill_text", vbert.fill_text, codes=T(lambda: torch.tensor([[[0], [1], [2], [3]]]),
                                                                         ids=9),
     length=I(4, high=5, valid={"None": OPTIONAL}), rounds=I(2, high=4))

# train
lin = torch.nn.Linear(2, 1)
loss_fn = lambda m, b: m(b).pow(2).mean()  # noqa: E731
spec("train", "fit", train.fit, model=lin, loss_fn=loss_fn, data=lambda s: torch.randn(4, 2),
     steps=I(2, valid={"huge": "a long training is not an error"}), lr=F(1e-3, low=0, low_open=True),
     weight_decay=F(0.0, low=0), warmup=I(1, low=0, valid={"huge": ANY_SIZE}),
     grad_clip=F(1.0, low=0, low_open=True, valid={"None": OPTIONAL}),
     betas=Arg(lambda: (0.9, 0.99), {"nan": lambda: (NAN, 0.99), "above": lambda: (1.5, 0.99), "str": lambda: "0.9",
                                     "None": lambda: None}),
     eval_every=I(1, valid={"None": OPTIONAL, "huge": ANY_SIZE}), eval_fn=lambda m: {"x": 1.0}, progress=False,
     device=S("cpu", valid={"None": "None picks the best device"}))
spec("train", "param_groups", train.param_groups, model=lin, weight_decay=F(0.01, low=0))
spec("train", "warmup_cosine", train.warmup_cosine, step=I(2, low=0, valid={"huge": ANY_SIZE}),
     steps=I(10, valid={"huge": ANY_SIZE}), warmup=I(2, low=0, valid={"huge": ANY_SIZE}))
spec("train", "to_device", train.to_device, batch={"x": torch.ones(2)}, device=S("cpu"))

# viz
attn = lambda: torch.rand(2, 2, 5, 5).softmax(-1)  # noqa: E731
image = lambda: torch.rand(3, 16, 16)  # noqa: E731
PIXELS = dict(valid={"nan": NAN_DRAWN, "inf": NAN_DRAWN, "dtype": ANY_DTYPE})
spec("viz", "cls_attention_grid", viz.cls_attention_grid, attn=T(attn, valid={
     "nan": NAN_OUT, "inf": NAN_OUT, "ndim+1": ANY_LEAD, "ndim-1": ANY_LEAD, "empty": EMPTY_BATCH}),
     n_prefix=I(1, low=0), query=I(0, low=0, high=4))
spec("viz", "plot_attention_maps", viz.plot_attention_maps, image=T(image, **PIXELS),
     attentions=LIST([attn()], item="a"),
     index=I(0, low=0, high=1), style=S("beside"))
spec("viz", "plot_attention_rollout", viz.plot_attention_rollout, image=T(image, **PIXELS),
     attentions=LIST([attn()], item="a"),
     index=I(1, low=0, high=1), style=S("overlay"))
spec("viz", "plot_word_attention", viz.plot_word_attention, image=T(image, **PIXELS),
     cross_attentions=LIST([torch.rand(1, 2, 3, 5)], item="a"), position=I(1, low=0, high=2), index=I(0, low=0, high=0))
spec("viz", "plot_attention_beside", viz.plot_attention_beside, images=T(lambda: torch.rand(2, 3, 16, 16), batch=True,
     valid={"nan": NAN_DRAWN, "inf": NAN_DRAWN}), maps=T(lambda: torch.rand(2, 2, 2), batch=True, valid={
         "nan": NAN_DRAWN, "inf": NAN_DRAWN}), titles=LIST(["a", "b"], valid={
         "None": OPTIONAL, "empty": "an empty list is no titles"}), ncols=I(2, valid={"huge": ANY_SIZE}))
spec("viz", "plot_pos_embedding_similarity", viz.plot_pos_embedding_similarity,
     pos_embedding=T(lambda: torch.randn(5, 8), valid={"nan": NAN_DRAWN, "inf": NAN_DRAWN}), n_prefix=I(1, low=0))
spec("viz", "play_audio", viz.play_audio, wave=T(lambda: torch.randn(800)), sample_rate=I(8000))
spec("viz", "plot_history", viz.plot_history, history=OBJ(history), smooth=I(2, valid={"huge": ANY_SIZE}),
     metrics=NAMES(["accuracy"], says=("metric",), valid={"None": OPTIONAL, "empty": "an empty list is no metrics"}))
spec("viz", "plot_loss_split", viz.plot_loss_split, local_batch=I(2), world_size=I(2))
spec("viz", "plot_matrices", viz.plot_matrices, panels=LIST([(torch.rand(2, 2), "p", "prob")], item=(1, "p", "prob")),
     size=F(2.0, low=0, low_open=True))
SCALES = "the time axis scales with it"
spec("viz", "plot_spectrogram", viz.plot_spectrogram, spec=T(lambda: torch.randn(8, 20), **PIXELS),
     sample_rate=I(8000, valid={"huge": SCALES}), hop_length=I(80, valid={"huge": SCALES}),
     timings=LIST([("red", 0.0, 0.1)], item="red", valid={"None": OPTIONAL, "empty": EMPTY_OK}))
spec("viz", "show_images", viz.show_images, images=T(lambda: torch.rand(2, 3, 8, 8), batch=True, **PIXELS),
     captions=LIST(["a", "b"], batch=True, valid={"None": OPTIONAL}), ncols=I(2, valid={"huge": ANY_SIZE}),
     boxes=T(lambda: torch.tensor([[[1.0, 1, 4, 4]], [[2.0, 2, 6, 6]]]), batch=True, valid={
         "None": OPTIONAL, **PIXELS["valid"]}))
spec("viz", "video_strip", viz.video_strip, video=T(lambda: torch.rand(2, 3, 8, 8), **PIXELS),
     every=I(1, valid={"huge": "every beyond the length shows the first frame"}),
     labels=LIST(["a", "b"], valid={"None": OPTIONAL}))
spec("viz", "show_video", viz.show_video, video=T(lambda: torch.rand(2, 3, 8, 8), **PIXELS),
     fps=F(8.0, low=0, low_open=True))

# results, grading, strategies, distributed
WARNS = "a non-finite value warns (and raises under MMCOURSE_STRICT=1): by design"
spec("results", "record", results.record, chapter=TEXT("00"), metric=TEXT("accuracy"),
     value=F(0.9, valid={"nan": WARNS, "inf": WARNS}), bar=F(0.5),
     higher_is_better=Arg(lambda: True, {"str": lambda: "yes", "None": lambda: None}),
     seconds=F(3.0, low=0, valid={"None": OPTIONAL}), device=TEXT("cpu", valid={
         "None": OPTIONAL, "empty": "'' means the current device"}))
spec("results", "table", results.table, results=LIST([results.Result("00", "x", 1.0, 0.5)], valid={"empty": EMPTY_OK}))
spec("results", "collect", results.collect, notebooks_dir=Arg(lambda: Path("notebooks"), {
     "missing": lambda: Path("no-such-dir"), "None": lambda: None, "int": lambda: 5}))
spec("grading", "check", grading.check, name=TEXT("00.quiz_snr", says=("exercise",)),
     obj=grading.exercises()["00.quiz_snr"].reference)
spec("grading", "register", lambda **kw: grading.register(**kw)(lambda obj: 1),
     name=Arg(lambda: f"99.sweep{next(_counter)}", {"int": lambda: 5, "None": lambda: None, "empty": lambda: ""}),
     reference=len, mutants=LIST([abs, min], item=5, says=("mutant",), valid={
         "empty": "a check may have no mutants (tests/test_grading.py registers one)"}), kind=S("function"))
spec("grading", "register_quiz", grading.register_quiz,
     name=Arg(lambda: f"99.quiz{next(_counter)}", {"int": lambda: 5, "None": lambda: None, "empty": lambda: ""}),
     question="two?", answer=2.0, explanation="two", tolerance=F(0.1, low=0))
logits = lambda: {"image": torch.randn(2, 3), "sound": torch.randn(2, 3)}  # noqa: E731
spec("strategies", "ogm_coefficients", strategies.ogm_coefficients, logits=Arg(logits, {
     "one": lambda: {"image": torch.randn(2, 3)}, "str": lambda: "logits", "None": lambda: None,
     "batch+1": lambda: {"image": torch.randn(3, 3), "sound": torch.randn(3, 3)}}, batch=True),
     labels=T(lambda: torch.tensor([0, 2]), ids=3, batch=True), alpha=F(1.0, low=0))
spec("strategies", "OGMGE", strategies.OGMGE, alpha=F(1.0, low=0), seed=SEED())
spec("distributed", "launch", distributed.launch, fn=OBJ(distributed.free_port), world_size=I(
     2, huge=False),  # not run: 10**12 processes would be spawned before anything failed
     backend=S("gloo"), timeout=Arg(lambda: 120.0, {"nan": lambda: NAN, "neg": lambda: -1.0, "str": lambda: "x"}),
     args=())
spec("distributed", "shard", distributed.shard, n=I(10), batch_size=I(2, valid={"huge": ANY_SIZE}), seed=SEED(),
     epoch=I(0, low=0, valid={"huge": ANY_INT}))
spec("distributed", "gradient_check", distributed.gradient_check, global_batch=I(4), loss=S("clip"))
spec("distributed", "loss_memory", distributed.loss_memory, local_batch=I(4), dim=I(8))

# recipes: the small helpers
spec("recipes", "fusion_tiny.task_data", fusion_tiny.task_data, task=S("control"), n=I(2), seed=SEED())
spec("recipes", "fusion_tiny.from_scenes", fusion_tiny.from_scenes, task=S("interaction"), scenes=OBJ(scenes),
     sounding=T(lambda: torch.tensor([0, 0, 0]), batch=True), seed=SEED())
spec("recipes", "strategies_tiny.task_data", strategies_tiny.task_data, n=I(2), seed=SEED())
spec("recipes", "strategies_tiny.long_tailed", strategies_tiny.long_tailed,
     labels=T(lambda: torch.tensor([0, 1, 1, 2])),
     imbalance=F(2.0, low=1), seed=SEED())
spec("recipes", "strategies_tiny.counting_data", strategies_tiny.counting_data, n=I(2), seed=SEED())
spec("recipes", "blip_tiny.encode", blip_tiny.encode, texts=LIST(["a red circle"]), tok=blip_tiny.tokenizer())
spec("recipes", "blip_tiny.same_description", blip_tiny.same_description, texts=LIST(["a red circle", "a box"]))
spec("recipes", "blip_tiny.caption_accuracy", blip_tiny.caption_accuracy, texts=LIST(["a large red circle"]),
     objects=LIST([objs], item=5))
spec("recipes", "blip_tiny.filter_quality", blip_tiny.filter_quality, kept=T(lambda: torch.tensor([True, False]),
     batch=True), correct=T(lambda: torch.tensor([True, True]), batch=True))
spec("recipes", "llava_tiny.conversation", llava_tiny.conversation, objects=LIST(two, item={"colour": "red"}),
     rng=RNG(), kind=S("qa"))
spec("recipes", "llava_tiny.prompts", llava_tiny.prompts, questions=LIST(["what colour is it?"]))
spec("recipes", "tiny_lm.corpus", tiny_lm.corpus, n=I(2), seed=SEED())
spec("recipes", "tiny_lm.batches", later(tiny_lm.batches), docs=LIST([conv, conv], item=[1, 2]),
     batch_size=I(1), seed=SEED())


# ------------------------------------------------------------------------------------------------ running them
SHAPE_KINDS = ("batch+1", "empty", "ndim+1", "ndim-1")


class Case:
    def __init__(self, module, name, fn, args, arg=None, kind=None):
        self.module, self.name, self.fn, self.args, self.arg, self.kind = module, name, fn, args, arg, kind
        self.id = f"{name}({arg}={kind})" if arg else f"{name}(good call)"
        a = args.get(arg)
        self.names = () if a is None else (arg, *a.says)
        if a is not None and a.batch and kind in SHAPE_KINDS:  # a mismatch: reported on either side
            self.names += tuple(k for k, v in args.items() if isinstance(v, Arg) and v.batch)

    def kwargs(self) -> dict:
        kw = {k: v.make() if isinstance(v, Arg) else v for k, v in self.args.items()}
        if self.arg:
            kw[self.arg] = self.args[self.arg].bad[self.kind]()
        return kw


def build_cases() -> tuple[list[Case], list[Case], list[tuple[Case, str]]]:
    """The good calls, the bad calls, and the perturbations marked valid (with their reasons)."""
    good, bad, valid = [], [], []
    for module, name, fn, args in SPECS:
        good.append(Case(module, name, fn, args))
        for arg, a in args.items():
            if isinstance(a, Arg):
                for kind in a.bad:
                    case = Case(module, name, fn, args, arg, kind)
                    (valid.append((case, a.valid[kind])) if kind in a.valid else bad.append(case))
    return good, bad, valid


def _names(message: str, names) -> bool:
    """Whether the message names one of the argument's names: as a word (one-letter names followed by ':', '=',
    'must', 'and' ..., so that the article "a" does not count)."""
    for name in names:
        if len(name) > 1 and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message, re.IGNORECASE):
            return True
        if len(name) == 1 and re.search(rf"(?<!\w){name}(?=\s*[:=(,]|\s+(?:must|and|has|is|should)\b)|\band {name}\b",
                                        message):
            return True
    return False


def _origin(error: BaseException) -> str:
    """Where an error was raised: 'mmcourse', or the library (torch, numpy, ...) it came out of."""
    frames = traceback.extract_tb(error.__traceback__)
    path = frames[-1].filename if frames else ""
    if path.startswith(PACKAGE):
        return "mmcourse"
    lib = re.search(r"site-packages/([^/]+)", path)
    return lib.group(1) if lib else Path(path).name or "?"


def classify(case: Case) -> tuple[str, str]:
    """(status, detail) of one call: clear / unclear / silent for a bad call, ok / broken for a good one."""
    try:
        kwargs = case.kwargs()
    except Exception as e:
        return "sweep-error", f"building the arguments failed: {type(e).__name__}: {e}"
    try:
        out = case.fn(**kwargs)
    except Exception as e:
        message = str(e)
        line = f"{type(e).__name__}: {message.splitlines()[0] if message else ''}"[:200]
        if case.arg is None:
            return "broken", line
        origin = _origin(e)
        if isinstance(e, CLEAR) and origin == "mmcourse" and _names(message, case.names):
            return "clear", line
        return "unclear", line if origin == "mmcourse" else f"{line} [raised in {origin}]"
    return ("ok" if case.arg is None else "silent"), " ".join(f"returned {utils.describe(out)}".split())[:200]


def _worker(conn, cases: list[Case]) -> None:
    import resource

    vm = int(re.search(r"VmSize:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + MEMORY, vm + MEMORY))
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    warnings.simplefilter("ignore")
    while (i := conn.recv()) is not None:
        conn.send(classify(cases[i]))


def run(cases: list[Case], workers: int, timeout: float) -> list[tuple[str, str]]:
    """Every case in a pool of forked workers (many calls each); a call past `timeout` s is a hang (its worker is
    killed and replaced), a worker that dies is a crash."""
    ctx = mp.get_context("fork")
    todo, out = deque(range(len(cases))), [None] * len(cases)

    def start():
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(there, cases))  # not a daemon: launch() spawns processes
        proc.start()
        there.close()
        return {"proc": proc, "conn": here, "case": None, "since": 0.0}

    def feed(slot):
        slot["case"] = todo.popleft() if todo else None
        if slot["case"] is not None:
            slot["since"] = time.monotonic()
            slot["conn"].send(slot["case"])

    def replace(slot):
        slot["proc"].kill()
        slot["proc"].join()
        slot.update(start())

    slots = [start() for _ in range(workers)]
    for slot in slots:
        feed(slot)
    done = 0
    while any(s["case"] is not None for s in slots):
        ready = wait([s["conn"] for s in slots if s["case"] is not None], timeout=0.2)
        for slot in slots:
            if slot["case"] is None:
                continue
            if slot["conn"] in ready:
                try:
                    out[slot["case"]] = slot["conn"].recv()
                except EOFError:
                    slot["proc"].join()
                    out[slot["case"]] = "crash", f"the worker died (exit code {slot['proc'].exitcode})"
                    replace(slot)
            elif time.monotonic() - slot["since"] > timeout:
                out[slot["case"]] = "hang", f"no answer within {timeout:g} s"
                replace(slot)
            else:
                continue
            done += 1
            if sys.stderr.isatty():
                print(f"\r{done}/{len(cases)} calls", end="", file=sys.stderr, flush=True)
            feed(slot)
    for slot in slots:
        slot["conn"].send(None)
        slot["proc"].join(5)
    print(file=sys.stderr)
    return out


def report(good, good_out, bad, bad_out, valid, seconds) -> None:
    statuses = ("clear", "unclear", "silent", "hang", "crash")
    rows = {}
    for case, (status, _) in zip(bad, bad_out, strict=True):
        rows.setdefault(case.module, Counter())[status] += 1
    header = f"{'module':<12} {'calls':>6} " + " ".join(f"{s:>8}" for s in statuses) + f" {'% clear':>8}"
    print(header)
    print("-" * len(header))
    total = Counter()
    for module, counts in rows.items():
        total += counts
        n = sum(counts.values())
        print(f"{module:<12} {n:>6} " + " ".join(f"{counts[s]:>8}" for s in statuses)
              + f" {100 * counts['clear'] / n:>7.1f}%")
    print("-" * len(header))
    n = sum(total.values())
    print(f"{'total':<12} {n:>6} " + " ".join(f"{total[s]:>8}" for s in statuses)
          + f" {100 * total['clear'] / max(n, 1):>7.1f}%")
    functions = len({(c.module, c.name) for c in good})
    print(f"\n{n} bad calls of {functions} functions in {seconds:.0f} s; {len(valid)} perturbations marked valid "
          f"input and not run:")
    for reason, count in Counter(reason for _, reason in valid).most_common():
        print(f"  {count:>4}  {reason}")
    broken = [(c, d) for c, (s, d) in zip(good, good_out, strict=True) if s != "ok"]
    if broken:
        print(f"\nGOOD CALLS THAT FAILED ({len(broken)}): the sweep's own table is wrong there")
        for case, detail in broken:
            print(f"  {case.id}: {detail}")
    unclear = [(c, s, d) for c, (s, d) in zip(bad, bad_out, strict=True) if s != "clear"]
    print(f"\nnot clear ({len(unclear)}):")
    for case, status, detail in sorted(unclear, key=lambda x: ("hang crash silent unclear".find(x[1]), x[0].module)):
        print(f"  [{status}] {case.module}: {case.id}: {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds a call may take (default 20)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--only", default="", help="run only the calls whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the calls, run nothing")
    args = parser.parse_args()
    good, bad, valid = build_cases()
    good, bad = ([c for c in cases if args.only in f"{c.module}: {c.id}"] for cases in (good, bad))
    if args.list:
        for case in bad:
            print(f"{case.module}: {case.id}")
        print(f"{len(bad)} calls")
        return
    start = time.perf_counter()
    out = run(good + bad, args.workers, args.timeout)
    report(good, out[:len(good)], bad, out[len(good):], valid, time.perf_counter() - start)


if __name__ == "__main__":
    main()
