"""Bad input, property-based (hypothesis): random shapes, dtypes, sizes and numbers fed to the functions that check
their arguments. A valid input never raises; an invalid one always raises one of the clear errors of
test_bad_input.py (ValueError, TypeError, IndexError, KeyError) naming the argument. Which inputs are valid is
worked out here from each argument's contract, never by asking the function. The results of valid calls keep their
promises: losses are finite and >= 0, metrics stay in [0, 1], the tokenizer gives back what it was given.
derandomize=True: the same examples on every run."""

import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmcourse import data as D
from mmcourse import losses as L
from mmcourse import metrics as M
from mmcourse import nn as N
from mmcourse import results
from mmcourse.data import SPECIAL_TOKENS
from mmcourse.nn import fusion as NF
from mmcourse.train import fit
from mmcourse.utils import check_number, check_tensor

CLEAR = (ValueError, TypeError, IndexError, KeyError)
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
# anything a learner might pass for a number: ints, floats with NaN / inf, bools, None, short strings
NUMBERS = st.one_of(st.integers(-3, 10), st.floats(-5, 5), st.sampled_from([math.nan, math.inf, -math.inf]),
                    st.booleans(), st.none(), st.text(max_size=2))
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.int64, torch.int32, torch.bool])
TOK = D.Tokenizer()
WORDS = [w for w in TOK.itos if w.isalnum() and w not in SPECIAL_TOKENS]


def raises_naming(name: str, fn) -> None:
    with pytest.raises(CLEAR) as info:
        fn()
    assert name in str(info.value), f"the error does not name {name!r}: {info.value}"


def is_int(x, low: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= low


def is_real(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(shape=st.lists(st.integers(0, 3), max_size=4), data=st.data(), dtype=DTYPES,
       want=st.sampled_from([None, "float", "int"]))
def test_check_tensor_refuses_exactly_the_tensors_outside_its_spec(shape, data, dtype, want):
    # the spec: the shape itself with some sizes left open (None), some changed, or an unrelated one
    same = [data.draw(st.sampled_from([n, None, n + 1])) for n in shape]
    spec = data.draw(st.sampled_from([same, same, same[:-1], same + [None],
                                      data.draw(st.lists(st.one_of(st.none(), st.integers(0, 3)), max_size=4))]))
    is_int_dtype = not dtype.is_floating_point and dtype != torch.bool
    ok_dtype = {None: True, "float": dtype.is_floating_point, "int": is_int_dtype}
    ok = len(shape) == len(spec) and all(s is None or s == n for s, n in zip(spec, shape)) and ok_dtype[want]
    call = lambda: check_tensor(torch.zeros(shape, dtype=dtype), "x", shape=tuple(spec), dtype=want)  # noqa: E731
    call() if ok else raises_naming("x", call)


@settings(max_examples=50, deadline=None, derandomize=True, database=None)
@given(data=st.data(), integer=st.booleans(), low=st.one_of(st.integers(-2, 2), st.none()),
       high=st.one_of(st.integers(-2, 4), st.none()), low_open=st.booleans())
def test_check_number_refuses_exactly_what_lies_outside_its_bounds(data, integer, low, high, low_open):
    x = data.draw(st.one_of(st.sampled_from([v for v in (low, high, 0.5) if v is not None]), NUMBERS))  # bounds often
    ok = (is_int(x, -10**9) if integer else is_real(x)) and (low is None or x > low or (x == low and not low_open)) \
        and (high is None or x <= high)
    call = lambda: check_number(x, "x", integer=integer, low=low, high=high, low_open=low_open)  # noqa: E731
    if ok:
        assert call() == x
    else:
        raises_naming("x", call)


@SETTINGS
@given(B=st.integers(0, 4), D=st.integers(1, 4), dB=st.integers(-1, 1), dD=st.integers(-1, 1),
       dtype=st.sampled_from([torch.float32, torch.int64]), scale=NUMBERS, loss=st.sampled_from(["clip", "siglip"]))
def test_contrastive_losses_check_pairs_and_scale_and_are_nonnegative(B, D, dB, dD, dtype, scale, loss):
    x, y = torch.randn(B, D), torch.randn(max(0, B + dB), max(0, D + dD)).to(dtype)
    fn = L.clip_loss if loss == "clip" else lambda x, y, s: L.siglip_loss(x, y, s, -1.0)
    call = lambda: fn(x, y, scale)  # noqa: E731
    if y.shape != x.shape or dtype != torch.float32:
        raises_naming("text_features", call)
    elif B == 0:
        raises_naming("image_features", call)
    elif not (is_real(scale) and scale > 0):
        raises_naming("logit_scale", call)
    else:
        value = call()
        assert value.ndim == 0 and torch.isfinite(value) and value >= 0


@SETTINGS
@given(st.data())
def test_lm_loss_takes_exactly_the_labels_that_are_ids_or_ignored(data):
    B, Ln, V = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5)), data.draw(st.integers(2, 6))
    labels = data.draw(st.lists(st.lists(st.one_of(st.just(-100), st.integers(-2, V + 1)), min_size=Ln, max_size=Ln),
                                min_size=B, max_size=B))
    targets = [t for row in labels for t in row[1:]]
    ok = all(t == -100 or 0 <= t < V for t in targets) and any(t != -100 for t in targets)
    call = lambda: L.lm_loss(torch.randn(B, Ln, V), torch.tensor(labels))  # noqa: E731
    if ok:
        value = call()
        assert torch.isfinite(value) and value >= 0
    else:
        raises_naming("labels", call)


@SETTINGS
@given(st.data())
def test_retrieval_metrics_stay_in_their_ranges_and_recall_grows_with_k(data):
    nq, ni = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6))
    sim = torch.tensor(data.draw(st.lists(st.lists(st.integers(-2, 2), min_size=ni, max_size=ni), min_size=nq,
                                          max_size=nq)), dtype=torch.float32)  # small integers: many ties
    rel = torch.tensor(data.draw(st.lists(st.lists(st.booleans(), min_size=ni, max_size=ni), min_size=nq,
                                          max_size=nq)))
    if not rel.any(1).all():
        raises_naming("relevant", lambda: M.recall_at_k(sim, rel, 1))
        return
    # the rank of a query: 1 + the irrelevant items scoring at least its best relevant one (ties count against it)
    ranks = [1 + sum(s >= max(s for s, r in zip(row, rr) if r) and not r for s, r in zip(row, rr))
             for row, rr in zip(sim.tolist(), rel.tolist())]
    recalls = [M.recall_at_k(sim, rel, k) for k in range(1, ni + 1)]
    assert recalls == pytest.approx([sum(r <= k for r in ranks) / nq for k in range(1, ni + 1)])
    assert all(0 <= r <= 1 for r in recalls) and recalls == sorted(recalls) and recalls[-1] == 1
    mrr, mrr_1 = M.mean_reciprocal_rank(sim, rel), M.mrr_at_k(sim, rel, 1)
    assert mrr == pytest.approx(sum(1 / r for r in ranks) / nq) and 0 < mrr <= 1 and mrr_1 == recalls[0] <= mrr
    assert 1 <= M.median_rank(sim, rel) <= ni and M.mean_rank(sim, rel) == pytest.approx(sum(ranks) / nq)


CAPTIONS = st.lists(st.sampled_from(["a", "red", "circle", "blue", "square", "big"]), min_size=1, max_size=5).map(
    " ".join)


@SETTINGS
@given(st.data())
def test_caption_metrics_stay_in_0_1_and_a_copy_of_a_reference_scores_1(data):
    n = data.draw(st.integers(1, 3))
    refs = [data.draw(st.lists(CAPTIONS, min_size=1, max_size=3)) for _ in range(n)]
    hyps = [data.draw(CAPTIONS) for _ in range(n)]
    assert all(0 <= b <= 1 for b in M.corpus_bleu(hyps, refs, max_n=2))
    assert 0 <= M.rouge_l(hyps, refs) <= 1 and M.cider_d(hyps, refs) >= 0
    assert M.rouge_l([r[0] for r in refs], refs) == pytest.approx(1.0)
    assert M.sentence_bleu(refs[0][0], refs[0], max_n=1)[0] == pytest.approx(1.0, abs=1e-6)


@SETTINGS
@given(answers=st.lists(st.sampled_from(["2", "3"]), min_size=10, max_size=10),
       prediction=st.sampled_from(["2", "two"]))
def test_vqa_score_is_the_leave_one_out_share_of_agreeing_annotators(answers, prediction):
    m = answers.count("2")  # "two" normalises to "2"
    expected = (m * min(1, (m - 1) / 3) + (10 - m) * min(1, m / 3)) / 10
    assert M.vqa_score(prediction, answers) == pytest.approx(expected)
    assert 0 <= M.vqa_accuracy([prediction], [answers]) <= 1


@SETTINGS
@given(h=st.lists(st.sampled_from("abc"), max_size=6), r=st.lists(st.sampled_from("abcd"), max_size=6))
def test_edit_distance_is_bounded_by_the_lengths_and_zero_only_for_equal_sequences(h, r):
    d = M.edit_distance(h, r)
    assert abs(len(h) - len(r)) <= d <= max(len(h), len(r)) and (d == 0) == (h == r)
    assert d == M.edit_distance(r, h)
    if r:
        assert M.word_error_rate([h], [r]) == d / len(r)
    else:
        raises_naming("references", lambda: M.word_error_rate([h], [r]))


@SETTINGS
@given(B=st.integers(1, 2), H=st.integers(1, 2), Lq=st.integers(1, 3), Lk=st.integers(1, 3), d=st.integers(1, 4),
       dk=st.integers(-1, 1), dropout=NUMBERS, masked=st.lists(st.booleans(), min_size=6, max_size=6))
def test_attention_checks_its_inputs_and_its_weights_sum_to_one_or_zero(B, H, Lq, Lk, d, dk, dropout, masked):
    q, k, v = torch.randn(B, H, Lq, d), torch.randn(B, H, Lk, max(1, d + dk)), torch.randn(B, H, Lk, 3)
    padding = torch.tensor(masked[:B * Lk]).view(B, Lk)
    call = lambda: N.scaled_dot_product_attention(q, k, v, key_padding_mask=padding, return_weights=True,  # noqa
                                                  dropout_p=dropout)
    if k.shape[-1] != d:
        raises_naming("k", call)
    elif not (is_real(dropout) and 0 <= dropout <= 1):
        raises_naming("dropout_p", call)
    else:
        out, weights = call()  # the weights before dropout
        expected = (~padding).any(1).float()[:, None, None].expand(B, H, Lq)  # 1, or 0 when every key is padding
        assert out.shape == (B, H, Lq, 3) and torch.isfinite(out).all()
        torch.testing.assert_close(weights.sum(-1), expected)


@SETTINGS
@given(words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=8))
def test_tokenizer_gives_back_the_words_it_was_given(words):
    text = " ".join(words)
    assert TOK.decode(TOK.encode(text)) == text
    ids = TOK([text, words[0]])
    assert TOK.decode_batch(ids) == [text, words[0]] and N.eot_positions(ids, D.EOT_ID).tolist() == [len(words) + 1, 2]


@SETTINGS
@given(ids=st.lists(st.integers(-2, len(TOK) + 1), max_size=6), context=NUMBERS)
def test_tokenizer_refuses_ids_out_of_range_and_short_contexts(ids, context):
    if all(0 <= i < len(TOK) for i in ids):
        assert isinstance(TOK.decode(ids), str)
    else:
        raises_naming("ids", lambda: TOK.decode(ids))
    text = "a large red circle left of a blue square"
    call = lambda: TOK([text], context)  # noqa: E731
    if context is None or is_int(context, 2):
        out = call()
        assert out.shape[1] == (len(TOK.encode(text)) if context is None else context) and (out == D.EOT_ID).any()
    else:
        raises_naming("context_length", call)


LABELS = torch.tensor([0, 1, 1, 2, 2, 2])


@SETTINGS
@given(batch_size=NUMBERS, step=NUMBERS, steps=NUMBERS, start=NUMBERS)
def test_samplers_take_exactly_positive_int_sizes(batch_size, step, steps, start):
    if is_int(batch_size, 1):
        drawn = D.balanced_batches(LABELS, batch_size)(0)
        assert drawn.shape == (batch_size,) and 0 <= drawn.min() and drawn.max() < len(LABELS)
    else:
        raises_naming("batch_size", lambda: D.balanced_batches(LABELS, batch_size))
    call = lambda: D.pacing(step, steps, start)  # noqa: E731
    if not is_int(step, 0):
        raises_naming("step", call)
    elif not is_int(steps, 1):
        raises_naming("steps", call)
    elif not (is_real(start) and 0 < start <= 1):
        raises_naming("start", call)
    else:
        assert start <= call() <= 1 and D.pacing(step + 1, steps, start) >= call()


LIN = torch.nn.Linear(2, 1)
FIT_ARGS = {  # name -> (is the value valid, default)
    "steps": (lambda v: is_int(v, 1), 2),
    "lr": (lambda v: is_real(v) and v > 0, 1e-3),
    "weight_decay": (lambda v: is_real(v) and v >= 0, 0.0),
    "warmup": (lambda v: is_int(v, 0), 0),
    "grad_clip": (lambda v: v is None or (is_real(v) and v > 0), None),
}


@pytest.mark.parametrize("name", sorted(FIT_ARGS))
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(value=NUMBERS)
def test_fit_takes_exactly_valid_numbers(name, value):
    kw = {n: default for n, (_, default) in FIT_ARGS.items()} | {name: value}
    steps = kw.pop("steps")
    call = lambda: fit(LIN, lambda m, b: m(b).pow(2).mean(), lambda s: torch.randn(4, 2), steps,  # noqa: E731
                       progress=False, device="cpu", **kw)
    if FIT_ARGS[name][0](value):
        assert len(call().loss) == steps
    else:
        raises_naming(name, call)


@SETTINGS
@given(value=NUMBERS, bar=NUMBERS, higher=st.one_of(st.booleans(), st.none()), seconds=NUMBERS)
def test_record_names_the_argument_that_is_no_number(value, bar, higher, seconds):
    call = lambda: results.record("00", "x", value, bar, higher_is_better=higher, seconds=seconds)  # noqa: E731
    if not isinstance(higher, bool):
        raises_naming("higher_is_better", call)
    elif not (seconds is None or (is_real(seconds) and seconds >= 0)):
        raises_naming("seconds", call)
    elif not is_real(bar):
        raises_naming("bar", call)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raises_naming("value", call)


@SETTINGS
@given(value=st.one_of(st.floats(-2, 2), st.just(math.nan)), bar=st.floats(-2, 2), higher=st.booleans())
def test_record_judges_the_bar(value, bar, higher):
    call = lambda: results.record("00", "x", value, bar, higher_is_better=higher)  # noqa: E731
    if value >= bar if higher else value <= bar:  # False for NaN
        assert call().passed
    elif results.strict():
        pytest.raises(results.BarNotMet, call)
    else:
        pytest.warns(results.BarMissedWarning, call)


SIZES = [  # (call with the size, its name, which sizes are valid)
    (lambda v: N.MLP(v), "width", lambda v: is_int(v, 1)),
    (lambda v: NF.LateFusion(v), "n_modalities", lambda v: is_int(v, 1)),
    (lambda v: D.white_noise((v, 2)), "shape", lambda v: is_int(v, 0)),
    (lambda v: N.patchify(torch.rand(1, 3, 4, 4), v), "patch_size", lambda v: is_int(v, 1) and 4 % v == 0),
    (lambda v: D.random_sentences(2, 0, v, 4), "min_words", lambda v: is_int(v, 1) and v <= 4),
    (lambda v: N.Transformer(8, v, 2), "layers", lambda v: is_int(v, 0)),
]


@pytest.mark.parametrize("make, name, valid", SIZES, ids=[name for _, name, _ in SIZES])
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(value=NUMBERS)
def test_sizes_take_exactly_their_valid_ints(make, name, valid, value):
    make(value) if valid(value) else raises_naming(name, lambda: make(value))


@SETTINGS
@given(st.data())
def test_captions_and_questions_refuse_bad_probabilities_and_counts(data):
    objects, rng = D.sample_scenes(1, data.draw(st.integers(0, 50))).objects(0), random.Random(0)
    p = data.draw(NUMBERS)
    call = lambda: D.caption(objects, rng, p_synonym=p)  # noqa: E731
    if is_real(p) and 0 <= p <= 1:
        assert D.parse_caption(call())
    else:
        raises_naming("p_synonym", call)
    n_match = data.draw(NUMBERS)
    call = lambda: D.annotator_answers("red", rng, n_match)  # noqa: E731
    if is_int(n_match, 0) and n_match <= 10:
        assert sum(M.normalize_answer(a) == "red" for a in call()) == n_match
    else:
        raises_naming("n_match", call)
