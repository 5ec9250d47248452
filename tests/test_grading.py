"""Every check passes the reference and rejects the stub and at least two plausible wrong answers."""

import functools
import inspect

import pytest
import torch

from mmcourse.grading import CheckFailed, NotImplementedYet, check, exercises

EXERCISES = exercises()


def _stub_of(ex):
    if ex.kind == "quiz":
        return ...  # what the generated exercise assigns until the learner answers
    if ex.kind == "class":
        class Stub(ex.reference):
            def __init__(self, *args, **kwargs):
                raise NotImplementedError("exercise: write the body of `__init__`")

        return Stub

    @functools.wraps(ex.reference)
    def stub(*args, **kwargs):
        raise NotImplementedError("exercise: write the body of the function")

    return stub


@pytest.mark.parametrize("name", EXERCISES)
def test_reference_passes(name, capsys):
    check(name, EXERCISES[name].reference)
    assert capsys.readouterr().out.startswith(f"✓ {name}")


@pytest.mark.parametrize("name", EXERCISES)
def test_stub_is_not_implemented_yet(name):
    with pytest.raises(NotImplementedYet, match="not (implemented|answered) yet"):
        check(name, _stub_of(EXERCISES[name]))


@pytest.mark.parametrize("name", EXERCISES)
def test_every_mutant_is_rejected(name):
    mutants = EXERCISES[name].mutants
    assert len(mutants) >= 2, f"{name}: a check needs at least two known-wrong implementations, has {len(mutants)}"
    for mutant in mutants:
        with pytest.raises(CheckFailed) as err:
            check(name, mutant)
        assert not isinstance(err.value, NotImplementedYet)
        assert str(err.value).startswith(f"✗ {name}")


@pytest.mark.parametrize("name", EXERCISES)
def test_mutants_keep_the_reference_signature(name):
    ex = EXERCISES[name]
    if ex.kind == "function":
        params = list(inspect.signature(ex.reference).parameters)
        for mutant in ex.mutants:
            assert list(inspect.signature(mutant).parameters) == params, mutant


def test_unknown_name_lists_known_exercises():
    with pytest.raises(KeyError, match="known exercises: .*" + next(iter(EXERCISES)).replace(".", r"\.")):
        check("99.nope", print)


def test_wrong_kind_of_object_is_a_clear_failure():
    name = next(n for n, e in EXERCISES.items() if e.kind == "function")
    with pytest.raises(CheckFailed, match="expected a function, got int 3"):
        check(name, 3)
    with pytest.raises(CheckFailed, match="expected a function"):
        check(name, int)


def test_feedback_renders_as_short_message_not_traceback():
    name = next(iter(EXERCISES))
    with pytest.raises(CheckFailed) as err:
        check(name, EXERCISES[name].mutants[0])
    lines = err.value._render_traceback_()
    assert 1 <= len(lines) <= 8 and name in lines[0]


@pytest.fixture
def scratch_registry():
    from mmcourse.grading import core

    before = dict(core._REGISTRY)
    yield core
    core._REGISTRY.clear()
    core._REGISTRY.update(before)


def test_a_quiz_grades_letters_and_numbers_and_explains(scratch_registry, capsys):
    scratch_registry.register_quiz("99.q", "Which?", "b", "because b.", choices={"a": "x", "b": "y", "c": "z"},
                                   wrong={"a": "a forgets the scale."})
    scratch_registry.register_quiz("99.n", "How many?", 3.9, "log 128 - 1.", tolerance=0.05, wrong={1.0: "not 1."})
    check("99.q", " (B) ")
    assert "right. because b." in capsys.readouterr().out
    with pytest.raises(CheckFailed, match=r"\(a\) is not right. a forgets the scale"):
        check("99.q", "a")
    with pytest.raises(CheckFailed, match="answer with one letter of a, b, c"):
        check("99.q", "d")
    with pytest.raises(NotImplementedYet, match="not answered yet"):
        check("99.q", ...)
    check("99.n", 3.93)
    with pytest.raises(CheckFailed, match="1 is not right. not 1."):
        check("99.n", 1)
    with pytest.raises(CheckFailed, match="answer with a number"):
        check("99.n", "3.9")
    with pytest.raises(ValueError, match="not one of the choices"):
        scratch_registry.register_quiz("99.bad", "?", "e", "", choices={"a": "x"})


def test_a_wrong_answer_that_behaves_like_a_known_mistake_is_named(scratch_registry):
    def double(x):
        return 2 * x

    def plus_two(x):
        """adds 2 instead of doubling"""
        return x + 2

    def times_three(x):  # no docstring: never named
        return 3 * x

    @scratch_registry.register("99.double", double, [plus_two, times_three])
    def _test(fn):
        for v in (torch.tensor([1.0, 5.0]), torch.tensor([[0.0]])):
            scratch_registry.expect_close(fn(v), double(v), f"x={v.tolist()}")
        return 2

    with pytest.raises(CheckFailed, match="this looks like a known mistake: adds 2 instead of doubling"):
        check("99.double", lambda x: x + 2)
    with pytest.raises(CheckFailed) as err:
        check("99.double", lambda x: 3 * x)
    assert "known mistake" not in str(err.value)
    with pytest.raises(CheckFailed) as err:  # wrong in another way: not named after a mutant
        check("99.double", lambda x: x - 1)
    assert "known mistake" not in str(err.value)


def test_expect_equal_on_tensors_shows_where_they_differ():
    from mmcourse.grading.core import Mismatch, expect_equal

    with pytest.raises(Mismatch) as err:
        expect_equal(torch.tensor([[1, 2], [3, 5]]), torch.tensor([[1, 2], [3, 4]]), "mask")
    report = err.value.report()
    assert "1 of 4 values differ, the first at index (1, 1)" in report
    assert "expected: 4" in report and "got:      5" in report


def test_a_tensor_made_on_the_cpu_and_used_with_the_inputs_is_caught_without_a_gpu():
    import torch.nn.functional as F

    from mmcourse.grading.core import DeviceTracer

    x = torch.randn(4, 5)
    cases = {
        "cross_entropy": lambda: F.cross_entropy(x, torch.arange(4)),  # the study guide's index tensor
        "mul": lambda: x * (2 * torch.eye(4, 5) - 1),
        None: lambda: F.cross_entropy(x, torch.arange(4, device=x.device)),
    }
    for mixed, fn in cases.items():
        with DeviceTracer([x]) as tracer:
            fn()
        assert tracer.mixed[:1] == ([mixed] if mixed else [])
    for fine in (lambda: x[torch.arange(4), torch.tensor([0, 1, 2, 0])],  # CPU indices are allowed
                 lambda: x * torch.tensor(2.0), lambda: x + torch.ones(5).to(x.device)):
        with DeviceTracer([x]) as tracer:
            fine()
        assert tracer.mixed == []

    def clip_loss(image_features, text_features, logit_scale):  # right values, targets made on the CPU
        logits = logit_scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
        targets = torch.arange(len(logits))
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2

    with pytest.raises(CheckFailed, match=r"creates a tensor without device= .*\(in `cross_entropy`\)"):
        check("02.clip_loss", clip_loss)


def test_an_answer_that_edits_its_input_in_place_fails(scratch_registry):
    def reference(x):
        return x.sum()

    def cheat(x):
        x.zero_()  # the expected answer, computed afterwards from the same x, would be 0 too
        return x.sum()

    @scratch_registry.register("99.in_place", reference, [])
    def _test(fn):
        x = torch.arange(4.0)
        got = fn(x)
        scratch_registry.expect_close(got, reference(x), "sum")
        return 1

    check("99.in_place", reference)
    with pytest.raises(CheckFailed, match="changed an input tensor in place"):
        check("99.in_place", cheat)


def test_a_string_or_a_nan_is_not_a_number_that_passes():
    from mmcourse.grading.core import Mismatch, expect_close

    with pytest.raises(Mismatch, match="expected a number"):
        expect_close("0.5", 0.5, "recall")
    with pytest.raises(Mismatch, match="wrong value"):
        expect_close(float("nan"), 0.5, "recall")
    with pytest.raises(Mismatch, match="1 of 3 values are NaN or infinite, the first at index \\(1,\\)"):
        expect_close(torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1.0, 2.0, 3.0]), "loss")
    expect_close(torch.tensor(0.5), 0.5, "a one-element tensor is a number")
