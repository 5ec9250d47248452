"""Chapter 12's counting assistant (`mmcourse.recipes.reasoning_tiny`): the tool and its call syntax, the loop that
runs a model's calls, the questions and their training conversations, and the grown model's plumbing.

The loop is driven by fake models (step functions) with hand-made replies; the model tests use an untrained
stand-in (chapter 02's untrained image tower, chapter 05's untrained LM) and check shapes and bookkeeping only."""

import dataclasses
import random

import pytest
import torch

from mmcourse.data.chat import IGNORE_INDEX, IMAGE_TOKEN_INDEX, chat_tokenizer
from mmcourse.data.text import PLURALS
from mmcourse.data.world import COLOUR_NAMES, SHAPES
from mmcourse.recipes import clip_tiny, llava_tiny, tiny_lm
from mmcourse.recipes import reasoning_tiny as R

OBJECTS = [  # left to right: x increases, but not in list order
    {"colour": "red", "shape": "circle", "size": "small", "x": 0.5, "y": 0.5},
    {"colour": "blue", "shape": "square", "size": "small", "x": 0.1, "y": 0.2},
    {"colour": "red", "shape": "triangle", "size": "small", "x": 0.9, "y": 0.8},
    {"colour": "pink", "shape": "circle", "size": "small", "x": 0.3, "y": 0.7},
]


def bound_tools(objects):
    return {"count": lambda **args: R.count(objects, **args)}


class FakeModel:
    """step(reply_so_far) -> continuation, from a list of replies (the last one repeats); it fails the test
    rather than hang when the loop keeps calling it."""

    def __init__(self, *outs, limit=50):
        self.outs, self.limit, self.seen = list(outs), limit, []

    def __call__(self, so_far):
        if len(self.seen) >= self.limit:
            raise AssertionError(f"the loop called the model {len(self.seen)} times and did not stop")
        self.seen.append(so_far)
        return self.outs[min(len(self.seen) - 1, len(self.outs) - 1)]


class CountingTool:
    def __init__(self, result=7):
        self.result, self.calls = result, []

    def __call__(self, **args):
        self.calls.append(args)
        return self.result


# ----------------------------------------------------------------------------------------------- parse_call
@pytest.mark.parametrize("text, expected", [
    ("count(colour=red, shape=circle)", ("count", {"colour": "red", "shape": "circle"})),
    ("count(shape=circle)", ("count", {"shape": "circle"})),
    ("count()", ("count", {})),
    ("count ( )", ("count", {})),
    ("count ( colour = red )", ("count", {"colour": "red"})),
    ("count ( colour = red, shape = circle )", ("count", {"colour": "red", "shape": "circle"})),
    ("  count(colour=red)  ", ("count", {"colour": "red"})),
])
def test_parse_call_reads_name_and_arguments(text, expected):
    assert R.parse_call(text) == expected


def test_parse_call_keeps_argument_order():
    assert list(R.parse_call("count(shape=circle, colour=red)")[1]) == ["shape", "colour"]


@pytest.mark.parametrize("text", [
    "count(colour=red", "count colour=red", "count(colour)", "count(colour=red, colour=blue)", "",
    "count(colour=red,)", "count(=red)", "count(colour=)", "(colour=red)", "count((colour=red))",
    "count(colour=red) = 2", "so 2",
])
def test_parse_call_rejects_malformed_text_naming_it(text):
    with pytest.raises(R.ToolError) as err:
        R.parse_call(text)
    assert repr(text.strip()) in str(err.value)


def test_parse_call_says_which_key_is_given_twice():
    with pytest.raises(R.ToolError, match="'colour' given twice"):
        R.parse_call("count(colour=red, colour=blue)")


@pytest.mark.parametrize("text", [None, 3, b"count()", ["count()"]])
def test_parse_call_refuses_non_text(text):
    with pytest.raises(TypeError, match="text"):
        R.parse_call(text)


def test_tool_error_is_an_exception_not_a_value_error():
    assert issubclass(R.ToolError, Exception) and not issubclass(R.ToolError, ValueError)


# ----------------------------------------------------------------------------------------------- execute
def test_execute_returns_the_tools_result_as_text():
    tool = CountingTool(3)
    assert R.execute("count(colour=red, shape=circle)", {"count": tool}) == "3"
    assert tool.calls == [{"colour": "red", "shape": "circle"}]
    assert R.execute("count ( colour = red )", bound_tools(OBJECTS)) == "2"
    assert R.execute("count()", bound_tools(OBJECTS)) == "4"


def test_execute_unknown_tool_names_it_and_lists_the_tools():
    with pytest.raises(R.ToolError) as err:
        R.execute("measure(shape=circle)", {"count": CountingTool(), "area": CountingTool()})
    assert "'measure'" in str(err.value) and "area, count" in str(err.value)


@pytest.mark.parametrize("text, says", [
    ("count(colour=magenta)", "unknown colour 'magenta'"),
    ("count(shape=hexagon)", "unknown shape 'hexagon'"),
    ("count(size=small)", "size"),  # an argument the tool does not take
])
def test_execute_tool_failure_says_so_with_the_tools_message(text, says):
    with pytest.raises(R.ToolError) as err:
        R.execute(text, bound_tools(OBJECTS))
    message = str(err.value)
    assert "'count' failed" in message and says in message and repr(text) in message
    assert err.value.__cause__ is not None


def test_execute_malformed_call_is_a_tool_error():
    with pytest.raises(R.ToolError, match="malformed"):
        R.execute("count(colour)", bound_tools(OBJECTS))


# ----------------------------------------------------------------------------------------------- count
@pytest.mark.parametrize("args, expected", [
    ({}, 4), ({"colour": "red"}, 2), ({"colour": "pink"}, 1), ({"colour": "green"}, 0),
    ({"shape": "circle"}, 2), ({"shape": "square"}, 1), ({"shape": "triangle"}, 1),
    ({"colour": "red", "shape": "circle"}, 1), ({"colour": "red", "shape": "square"}, 0),
    ({"colour": "blue", "shape": "square"}, 1),
])
def test_count_by_colour_shape_both_or_none(args, expected):
    assert R.count(OBJECTS, **args) == expected
    assert R.count([], **args) == 0


def test_count_unknown_names_list_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown colour 'magenta'") as err:
        R.count(OBJECTS, colour="magenta")
    assert all(c in str(err.value) for c in COLOUR_NAMES)
    with pytest.raises(ValueError, match="unknown shape 'circles'") as err:
        R.count(OBJECTS, shape="circles")
    assert all(s in str(err.value) for s in SHAPES)


# ----------------------------------------------------------------------------------------------- final_answer
@pytest.mark.parametrize("text, expected", [
    ("red circle, blue square. so 2", "2"),
    ("2", "2"),
    (" 2 ", "2"),
    ("count ( shape = circle ) = 2. so 2", "2"),
    ("so many. so 4", "4"),  # the last "so"
    ("so", "so"),  # nothing after it: the whole reply
])
def test_final_answer(text, expected):
    assert R.final_answer(text) == expected


def test_final_answer_when_the_last_so_ends_the_reply():
    assert R.final_answer("red circle. so 2 so") == "2"


# ----------------------------------------------------------------------------------------------- answer_with_tools
def test_a_direct_answer_makes_no_call():
    model = FakeModel("3")
    reply = R.answer_with_tools(model, {"count": CountingTool()})
    assert reply == R.Reply("3", "3", 0, 1) and model.seen == [""]


def test_one_call_then_an_answer():
    model, tool = FakeModel("count(shape=circle)", "so 3"), CountingTool(3)
    reply = R.answer_with_tools(model, {"count": tool})
    assert reply.answer == "3" and reply.calls == 1 and tool.calls == [{"shape": "circle"}]
    assert reply.text == "count(shape=circle) = 3. so 3"
    assert model.seen == ["", "count(shape=circle) = 3."]  # the model reads the tool's result
    assert reply.tokens == len("count ( shape = circle )".split()) + 2  # the result is read, not generated


def test_the_call_is_taken_from_the_end_of_a_longer_continuation():
    model = FakeModel("i will count ( colour = red )", "so 2")
    reply = R.answer_with_tools(model, bound_tools(OBJECTS))
    assert reply.answer == "2" and reply.calls == 1 and "count ( colour = red ) = 2." in reply.text


@pytest.mark.parametrize("call", ["count(colour)", "count(colour=red, colour=blue)", "count((shape=circle))",
                                  "so 2)"])
def test_a_malformed_call_ends_the_answer_at_once(call):
    model, tool = FakeModel(call), CountingTool()
    reply = R.answer_with_tools(model, {"count": tool}, max_calls=5)
    assert reply.answer.startswith("no answer:") and repr(call) in reply.answer  # names the call
    assert len(model.seen) == 1 and tool.calls == [] and reply.text == call and reply.calls <= 1


def test_an_unknown_tool_ends_the_answer_naming_it():
    model = FakeModel("measure(shape=circle)")
    reply = R.answer_with_tools(model, {"count": CountingTool()})
    assert reply.answer.startswith("no answer:") and "'measure'" in reply.answer and "count" in reply.answer
    assert len(model.seen) == 1


def test_a_failing_tool_ends_the_answer_with_its_message():
    model = FakeModel("count(colour=magenta)")
    reply = R.answer_with_tools(model, bound_tools(OBJECTS))
    assert reply.answer.startswith("no answer:") and "failed" in reply.answer and "magenta" in reply.answer
    assert len(model.seen) == 1


@pytest.mark.parametrize("max_calls", [0, 1, 2, 5])
def test_a_model_that_keeps_calling_stops_after_max_calls(max_calls):
    model, tool = FakeModel("count(shape=circle)"), CountingTool(1)
    reply = R.answer_with_tools(model, {"count": tool}, max_calls=max_calls)
    assert reply.calls == max_calls and len(tool.calls) == max_calls and len(model.seen) == max_calls + 1
    assert reply.answer.startswith("no answer:") and f"after {max_calls} calls" in reply.answer
    assert reply.text.count("count(shape=circle)") == max_calls + 1 and reply.text.count("= 1.") == max_calls


def test_the_default_limit_is_max_calls():
    model = FakeModel("count()")
    reply = R.answer_with_tools(model, bound_tools(OBJECTS))
    assert reply.calls == R.MAX_CALLS and len(model.seen) == R.MAX_CALLS + 1


def test_a_direct_answer_is_fine_with_no_calls_allowed():
    assert R.answer_with_tools(FakeModel("so 4"), {}, max_calls=0).answer == "4"


@pytest.mark.parametrize("max_calls, error", [(-1, ValueError), (1.5, TypeError), (2.0, TypeError),
                                              (True, TypeError), ("2", TypeError)])
def test_max_calls_must_be_a_non_negative_int(max_calls, error):
    model = FakeModel("3")
    with pytest.raises(error, match="max_calls"):
        R.answer_with_tools(model, {}, max_calls=max_calls)
    assert model.seen == []


# ----------------------------------------------------------------------------------------------- questions
def test_questions_are_answered_by_their_tool_call():
    forms, zeros = set(), 0
    for k in range(8):
        s, rng = R.scenes(50, k), random.Random(k)
        for i in range(len(s)):
            objects = s.objects(i)
            assert R.OBJECTS[0] <= len(objects) <= R.OBJECTS[1] and {o["size"] for o in objects} == {"small"}
            text, args, n = R.question(objects, rng)
            assert set(args) in (set(), {"colour"}, {"shape"})
            forms.add(tuple(args))
            truth = sum(all(o[k] == v for k, v in args.items()) for o in objects)
            assert n == truth and isinstance(n, int)
            zeros += n == 0
            if "colour" in args:
                assert args["colour"] in COLOUR_NAMES and args["colour"] in text
            if "shape" in args:
                assert args["shape"] in SHAPES and PLURALS[args["shape"]] in text
            assert R.execute(R.call_text(args), bound_tools(objects)) == str(n)
    assert forms == {(), ("colour",), ("shape",)} and zeros > 0


def test_question_is_deterministic_given_the_rng():
    objects = R.scenes(1, 3).objects(0)
    assert R.question(objects, random.Random(5)) == R.question(objects, random.Random(5))


@pytest.mark.parametrize("args, text", [({}, "count()"), ({"shape": "circle"}, "count(shape=circle)"),
                                        ({"colour": "red", "shape": "circle"}, "count(colour=red, shape=circle)")])
def test_call_text_round_trips_through_parse_call(args, text):
    assert R.call_text(args) == text and R.parse_call(text) == ("count", args)


def test_listing_goes_left_to_right():
    assert R.listing(OBJECTS) == "blue square, pink circle, red circle, red triangle"


@pytest.mark.parametrize("strategy, expected", [
    ("direct", "2"),
    ("cot", "blue square, pink circle, red circle, red triangle. so 2"),
    ("tool", "count(colour=red) = 2. so 2"),
])
def test_reply_in_each_strategy(strategy, expected):
    assert R.reply(strategy, OBJECTS, {"colour": "red"}, 2) == expected


def test_reply_unknown_strategy():
    with pytest.raises(ValueError, match="strategy"):
        R.reply("guess", OBJECTS, {}, 4)
    with pytest.raises(ValueError, match="strategy"):
        R.conversation(OBJECTS, random.Random(0), "guess")


# ----------------------------------------------------------------------------------------------- conversations
@pytest.mark.parametrize("strategy", R.STRATEGIES)
def test_conversation_labels_are_the_assistants_reply(strategy):
    tok = R.tokenizer()
    s = R.scenes(20, 7)
    for i in range(len(s)):
        objects = s.objects(i)
        t = R.conversation(objects, random.Random(i), strategy, tok)
        _, args, n = R.question(objects, random.Random(i))
        assert len(t.ids) == len(t.labels) and t.ids.count(IMAGE_TOKEN_INDEX) == 1
        assert tok.unk_id not in t.ids  # every word of the prompts and replies is in the vocabulary
        start = t.ids.index(tok.stoi["<assistant>"]) + 1
        assert t.ids[-1] == tok.eot_id and all(lab == IGNORE_INDEX for lab in t.labels[:start])
        reply_ids = t.ids[start:]
        assert tok.decode(reply_ids) == tok.decode(tok.encode(R.reply(strategy, objects, args, n)))
        assert reply_ids[:-1] == tok.encode(R.reply(strategy, objects, args, n))[1:-1]
        labelled = [(k, lab) for k, lab in enumerate(t.labels) if lab != IGNORE_INDEX]
        assert all(k >= start and lab == t.ids[k] for k, lab in labelled)
        system = tok.decode(t.ids[1:t.ids.index(tok.stoi["<user>"])])
        assert system == R.SYSTEMS[strategy]
        if strategy == "tool":
            text = tok.decode(reply_ids)
            assert R.parse_call(text[:text.index(")") + 1]) == ("count", args)  # the call, as decoded
            assert R.call_text(args) in R.reply(strategy, objects, args, n)
            close = t.ids.index(tok.stoi[")"])
            assert [tok.itos[x] for x in t.ids[close:close + 4]] == [")", "=", str(n), "."]
            assert t.labels[close] == tok.stoi[")"]
            assert t.labels[close + 1:close + 4] == [IGNORE_INDEX] * 3
            assert t.labels[close + 4:] == t.ids[close + 4:]  # "so", the count, <eot>
            assert [tok.itos[x] for x in t.labels[close + 4:]] == ["so", str(n), "<eot>"]
            assert len(labelled) == len(reply_ids) - 3
        else:
            assert len(labelled) == len(reply_ids)


def test_tool_reply_holds_the_call_and_cot_lists_left_to_right():
    rng = random.Random(0)
    objects = R.scenes(1, 11).objects(0)
    tok = R.tokenizer()
    for _ in range(6):
        state = rng.getstate()
        t = R.conversation(objects, rng, "tool", tok)
        rng.setstate(state)
        _, args, n = R.question(objects, rng)
        text = tok.decode(t.ids[t.ids.index(tok.stoi["<assistant>"]) + 1:])
        assert R.parse_call(text[:text.index(")") + 1]) == ("count", args)
        assert R.call_text(args) in R.reply("tool", objects, args, n)
    t = R.conversation(objects, random.Random(1), "cot", tok)
    text = tok.decode(t.ids[t.ids.index(tok.stoi["<assistant>"]) + 1:])
    names = [f"{o['colour']} {o['shape']}" for o in sorted(objects, key=lambda o: o["x"])]
    assert text.startswith(", ".join(names) + ". so ")


def test_conversation_makes_its_own_tokenizer():
    objects = R.scenes(1, 2).objects(0)
    assert R.conversation(objects, random.Random(3), "cot") == R.conversation(objects, random.Random(3), "cot",
                                                                              R.tokenizer())


# ----------------------------------------------------------------------------------------------- tokenizer
def test_tokenizer_adds_new_words_after_the_chat_vocabulary():
    old, new = chat_tokenizer(), R.tokenizer()
    assert len(new) == len(old) + len(R.NEW_WORDS)
    assert new.itos[:len(old)] == old.itos and all(new.stoi[w] == i for w, i in old.stoi.items())
    assert [new.stoi[w] for w in R.NEW_WORDS] == list(range(len(old), len(old) + len(R.NEW_WORDS)))
    assert not set(R.NEW_WORDS) & set(old.stoi)
    assert new.encode("count ( colour = red ) = 4. so 4")[1:-1] == \
        [new.stoi[w] for w in ["count", "(", "colour", "=", "red", ")", "=", "4", ".", "so", "4"]]


# ----------------------------------------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return llava_tiny.build(clip_tiny.build().visual, tiny_lm.build())


@pytest.fixture(scope="module")
def grown(base):
    return R.build(base)


def test_build_grows_a_copy_and_leaves_the_base_alone(base):
    lm = base.language_model
    vocab, weights = lm.vocab_size, lm.token_embedding.weight.detach().clone()
    state = {k: v.clone() for k, v in base.state_dict().items()}
    model = R.build(base)
    new = model.language_model
    assert new.vocab_size == len(R.tokenizer()) == vocab + len(R.NEW_WORDS)
    assert new.token_embedding.weight.shape == (new.vocab_size, new.width)
    assert lm.vocab_size == vocab and torch.equal(lm.token_embedding.weight, weights)
    assert all(torch.equal(v, state[k]) for k, v in base.state_dict().items())
    w = new.token_embedding.weight.detach()
    assert torch.equal(w[:vocab], weights)
    torch.testing.assert_close(w[vocab:], weights.mean(0, keepdim=True).expand(len(R.NEW_WORDS), -1))
    assert new.lm_head.weight is new.token_embedding.weight
    assert new.token_embedding is not lm.token_embedding and model.projector is not base.projector
    with pytest.raises(TypeError, match="LLaVA"):
        R.build(base.language_model)


def test_stream_batches(grown):
    batch = R.stream(grown, ["tool"], batch_size=4)(0)
    assert batch["ids"].shape == batch["labels"].shape and len(batch["ids"]) == 4
    assert batch["features"].shape[0] == 4 and batch["features"].shape[-1] == grown.vision_width
    assert (batch["ids"] == IMAGE_TOKEN_INDEX).sum(1).tolist() == [1] * 4
    tok = R.tokenizer()
    assert ((batch["ids"] == tok.stoi["count"]).sum(1) >= 1).all()  # every row is a tool conversation
    assert int(batch["ids"].max()) < grown.language_model.vocab_size
    again = R.stream(grown, ["tool"], batch_size=4)(0)
    assert all(torch.equal(batch[k], again[k]) for k in batch)
    other = R.stream(grown, ["tool"], batch_size=4)(1)
    assert not torch.equal(other["features"], batch["features"])
    mixed = R.stream(grown, batch_size=8)(0)
    assert len(mixed["ids"]) == 8


@pytest.mark.parametrize("strategies", [[], (), "cot", ["nope"], ["cot", "nope"]])
def test_stream_refuses_bad_strategies(grown, strategies):
    with pytest.raises(ValueError, match="strategies"):
        R.stream(grown, strategies)


def test_train_changes_the_projector_and_the_lm_not_the_tower(base):
    model = R.build(base)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = R.train(model, steps=2, batch_size=4, progress=False)
    assert history is not None
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("projector.") for k in changed)
    assert any(k.startswith("language_model.") for k in changed)
    assert not any(k.startswith("vision_tower.") for k in changed)


def test_train_refuses_the_ungrown_model(base):
    state = {k: v.clone() for k, v in base.state_dict().items()}
    with pytest.raises(ValueError, match="build"):
        R.train(base, steps=1, batch_size=2, progress=False)
    assert all(torch.equal(v, state[k]) for k, v in base.state_dict().items())


# ----------------------------------------------------------------------------------------------- evaluation
@pytest.fixture(scope="module")
def test_set(grown):
    return R.count_set(grown, n=6)


def test_count_set(grown, test_set):
    assert len(test_set) == 6 and test_set.images.shape == (6, 3, 32, 32)
    assert test_set.features.shape[:1] == (6,) and test_set.features.shape[-1] == grown.vision_width
    for objects, truth, call in zip(test_set.objects, test_set.truths, test_set.calls, strict=True):
        assert R.execute(call, bound_tools(objects)) == str(truth)


@pytest.mark.parametrize("strategy", R.STRATEGIES)
def test_answer_gives_a_reply_per_question(grown, test_set, strategy):
    replies = R.answer(grown, test_set, strategy)
    assert len(replies) == len(test_set) and all(isinstance(r, R.Reply) for r in replies)
    assert all(isinstance(r.answer, str) and isinstance(r.text, str) for r in replies)
    assert all(0 <= r.calls <= (R.MAX_CALLS if strategy == "tool" else 0) for r in replies)
    assert all(r.tokens <= R.MAX_NEW_TOKENS[strategy] * (R.MAX_CALLS + 1) for r in replies)
    acc = R.accuracy(replies, test_set)
    assert 0 <= acc["all"] <= 1 and acc["tokens"] >= 0
    assert set(acc["by objects"]) == {len(o) for o in test_set.objects} <= {3, 4, 5}
    assert all(0 <= v <= 1 for v in acc["by objects"].values())


def test_answer_refuses_an_unknown_strategy(grown, test_set):
    with pytest.raises(ValueError, match="strategies"):
        R.answer(grown, test_set, "guess")


def fake_answer(outs):
    """A stand-in for the model's greedy answers: what it writes depends on whether it has read a tool result."""

    def answer(model, questions, features=None, batch_size=250, max_new_tokens=8, *, replies=None, **kw):
        replies = replies or [""] * len(questions)
        return [outs[1] if " = " in begun else outs[0] for begun in replies]

    return answer


def test_tool_answers_run_each_scenes_own_tool(grown, test_set, monkeypatch):
    monkeypatch.setattr(R.llava_tiny, "answer", fake_answer(["count ( shape = circle ) junk after the call", "so 3"]))
    replies = R.answer(grown, test_set, "tool")
    for r, objects in zip(replies, test_set.objects, strict=True):
        n = sum(o["shape"] == "circle" for o in objects)
        assert r.calls == 1 and r.answer == "3" and "junk" not in r.text
        assert r.text == f"count ( shape = circle ) = {n}. so 3"


def test_tool_answers_stop_after_max_calls(grown, test_set, monkeypatch):
    monkeypatch.setattr(R.llava_tiny, "answer", fake_answer(["count ( ) count", "count ( )"]))
    replies = R.answer(grown, test_set, "tool")
    assert all(r.calls == R.MAX_CALLS and r.answer.startswith("no answer:") for r in replies)
    monkeypatch.setattr(R.llava_tiny, "answer", fake_answer(["count ( colour = red )", "so 1"]))
    def tools(objects):
        return {"count": lambda **args: len(objects)}

    replies = R.answer(grown, test_set, "tool", tools=tools)
    assert [r.text for r in replies] == [f"count ( colour = red ) = {len(o)}. so 1" for o in test_set.objects]


def test_accuracy_counts_right_answers(test_set):
    right = [R.Reply(str(t), str(t), 0, 1) for t in test_set.truths]
    acc = R.accuracy(right, test_set)
    assert acc["all"] == 1.0 and all(v == 1.0 for v in acc["by objects"].values()) and acc["tokens"] == 1
    wrong = [R.Reply(str(t + 1), "", 0, 3) for t in test_set.truths]
    acc = R.accuracy(wrong, test_set)
    assert acc["all"] == 0.0 and all(v == 0.0 for v in acc["by objects"].values()) and acc["tokens"] == 3
    half = right[:3] + wrong[3:]
    sizes = [len(o) for o in test_set.objects]
    expected = {k: sum(1 for i, z in enumerate(sizes) if z == k and i < 3) / sizes.count(k) for k in set(sizes)}
    acc = R.accuracy(half, test_set)
    assert acc["all"] == 0.5 and acc["by objects"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="one per question"):
        R.accuracy(right[:-1], test_set)
    with pytest.raises(ValueError, match="one per question"):
        R.accuracy(right + right[:1], test_set)


def test_accuracy_normalises_answers(test_set):
    data = dataclasses.replace(test_set, truths=[2] * len(test_set))
    for said in ("two", "2", "2.", " 2 ", "Two"):
        assert R.accuracy([R.Reply(said, said, 0, 1)] * len(data), data)["all"] == 1.0, said
    assert R.accuracy([R.Reply("no answer: still calling tools", "", 2, 5)] * len(data), data)["all"] == 0.0
