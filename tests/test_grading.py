"""Every check passes the reference and rejects the stub and at least two plausible wrong answers."""

import functools
import inspect

import pytest

from mmcourse.grading import CheckFailed, NotImplementedYet, check, exercises

EXERCISES = exercises()


def _stub_of(ex):
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
    with pytest.raises(NotImplementedYet, match="not implemented yet"):
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
