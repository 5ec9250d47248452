"""The autograder's core: the registry of exercises, the comparison helpers the checks use, the verdict.

An exercise is registered with a `test(obj)` function that calls the learner's code on random and edge-case inputs
and compares with the reference in `mmcourse`, using `expect_close` / `expect_equal` / `fail`. `grade` (which
`mmcourse.grading.check` calls) turns the first mismatch into a short message (what was expected, what came out, a
hint) raised as `CheckFailed`, which IPython shows as that message alone instead of a traceback.

Every exercise also lists at least two plausible wrong implementations (`mutants`): the test-suite proves that the
check rejects each of them, so no check can pass vacuously. A mutant's docstring names its mistake: when a learner's
function fails and gives the same outputs as a mutant on every input the check tried, the feedback names that
mistake ("this looks like the loss of one direction only").

On a machine without an accelerator the learner's function also runs under `DeviceTracer`, which plays the part of
a GPU: a tensor the function creates without `device=` and then combines with its inputs would sit on the wrong
device there, and the check says so.

A *quiz* (`register_quiz`) is a graded question: the learner assigns an answer (a choice letter or a number) and
`check` says whether it is right, explaining the answer once it is given (and why a known wrong answer is wrong).
"""

from __future__ import annotations

import functools
import inspect
import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from mmcourse.utils import check_number, describe, get_device

__all__ = [
    "Exercise",
    "CheckFailed",
    "NotImplementedYet",
    "Mismatch",
    "register",
    "register_quiz",
    "registered",
    "grade",
    "devices",
    "expect_close",
    "expect_equal",
    "fail",
]


class CheckFailed(Exception):
    """A check did not pass. Shown in a notebook as its message only (see `_render_traceback_`)."""

    def _render_traceback_(self):  # IPython calls this instead of printing the traceback
        return [f"\x1b[31m{line}\x1b[0m" for line in str(self).splitlines()]


class NotImplementedYet(CheckFailed):
    """The learner's function still raises NotImplementedError (the exercise stub)."""


class Mismatch(Exception):
    """Raised inside a test: the learner's output differs from the reference."""

    def __init__(self, what: str, expected: Any = None, got: Any = None, hint: str = ""):
        self.what, self.expected, self.got, self.hint = what, expected, got, hint
        super().__init__(what)

    def report(self) -> str:
        lines = [self.what]
        if self.expected is not None or self.got is not None:
            lines.append(f"  expected: {_show(self.expected)}")
            lines.append(f"  got:      {_show(self.got)}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


@dataclass
class Exercise:
    """One exercise: `test(obj)` raises Mismatch on the first wrong answer; `mutants` are known-wrong answers."""

    name: str
    test: Callable[[Any], int | None]
    reference: Any
    mutants: list = field(default_factory=list)
    kind: str = "function"  # "function", "class" or "quiz"
    summary: str = ""
    explanation: str = ""  # a quiz's answer, explained once given
    choices: dict[str, str] | None = None  # a multiple-choice quiz's choices, letter -> text


_REGISTRY: dict[str, Exercise] = {}


def register(name: str, reference: Any, mutants: list, kind: str = "function", summary: str = "",
             explanation: str = "", choices: dict[str, str] | None = None):
    """Decorator registering `test(obj)` as the check for exercise `name` (e.g. "01.patchify"); a quiz's
    `explanation` is shown once it is answered right, its `choices` (letter -> text) offered by a form."""
    if kind not in ("function", "class", "quiz"):
        raise ValueError(f"register({name!r}): kind must be 'function', 'class' or 'quiz', got {kind!r}")
    if not isinstance(name, str) or not re.fullmatch(r"\d\d\.\w+", name):
        raise ValueError(f"name: expected 'NN.name' (chapter, then the exercise), got {name!r}")
    if not isinstance(mutants, (list, tuple)) or (kind != "quiz" and not all(callable(m) for m in mutants)):
        raise TypeError(f"mutants: expected a list of known-wrong implementations, got {describe(mutants)}")

    def deco(test):
        if name in _REGISTRY:
            raise ValueError(f"exercise {name!r} is registered twice")
        _REGISTRY[name] = Exercise(name, test, reference, list(mutants), kind, summary or (test.__doc__ or ""),
                                   explanation, dict(choices) if choices else None)
        return test

    return deco


def register_quiz(name: str, question: str, answer: str | float, explanation: str, *,
                  choices: dict[str, str] | None = None, wrong: dict | None = None, tolerance: float = 0.0) -> None:
    """Register a graded question. With `choices` ({"a": "text", ...}) the answer is a letter; without, a number
    right within `tolerance` (absolute). `explanation` is shown once the answer is right; `wrong` maps known
    wrong answers to why they are wrong. The mutants are every other choice, or the keys of `wrong`."""
    check_number(tolerance, "tolerance", low=0)
    if choices is not None and answer not in choices:
        raise ValueError(f"quiz {name!r}: the answer {answer!r} is not one of the choices {sorted(choices)}")
    wrong = dict(wrong or {})
    mutants = [c for c in choices if c != answer] if choices else list(wrong)

    def test(given):
        if choices is not None:
            letter = given.strip().lower().strip("()") if isinstance(given, str) else given
            if letter not in choices:
                fail(f"{question}\n  answer with one letter of {', '.join(sorted(choices))}", None, None)
            if letter != answer:
                fail(f"({letter}) is not right. {wrong.get(letter, 'Read the question again.')}")
            return 1
        if isinstance(given, bool) or not isinstance(given, (int, float)):
            fail(f"{question}\n  answer with a number", None, None)
        if abs(given - answer) > tolerance:
            why = next((why for w, why in wrong.items() if abs(given - w) <= tolerance), "")
            fail(f"{given:g} is not right. {why}".rstrip())
        return 1

    register(name, answer, mutants, kind="quiz", summary=question, explanation=explanation, choices=choices)(test)


def registered() -> dict[str, Exercise]:
    """The exercises registered so far, by name (`mmcourse.grading.exercises()` registers every chapter's)."""
    return dict(sorted(_REGISTRY.items()))


def devices() -> list[torch.device]:
    """The devices a check runs the learner's code on: the CPU, and the accelerator when there is one."""
    return [torch.device("cpu")] + ([get_device()] if get_device().type != "cpu" else [])


def fail(what: str, expected: Any = None, got: Any = None, hint: str = "") -> None:
    raise Mismatch(what, expected, got, hint)


def expect_equal(got: Any, expected: Any, what: str, hint: str = "") -> None:
    """Exact equality (tensors: same shape and values)."""
    if isinstance(expected, torch.Tensor):
        _expect_tensor_like(got, expected, what, hint, check_dtype=False)
        g, e = got.detach().cpu(), expected.detach().cpu().to(got.dtype)
        if not torch.equal(g, e):
            where = torch.nonzero(g != e)
            first = tuple(int(i) for i in where[0])
            fail(f"{what}: {len(where)} of {g.numel()} values differ, the first at index {first}",
                 _item(e[first]), _item(g[first]), hint)
    elif got != expected:
        fail(f"{what}: wrong value", expected, got, hint)


def expect_close(got: Any, expected: Any, what: str, hint: str = "", atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Tensors or numbers equal to float tolerance (shape and floating dtype checked first)."""
    if isinstance(expected, torch.Tensor):
        _expect_tensor_like(got, expected, what, hint, check_dtype=True)
        g, e = got.detach().cpu().double(), expected.detach().cpu().double()
        broken = ~torch.isfinite(g) & torch.isfinite(e)
        if broken.any():
            where = tuple(int(i) for i in torch.nonzero(broken)[0])
            fail(f"{what}: {int(broken.sum())} of {g.numel()} values are NaN or infinite, the first at index {where}",
                 _item(e[where]), _item(g[where]), hint or "look for a division by zero, a log of 0 or an overflow")
        if not torch.allclose(g, e, atol=atol, rtol=rtol, equal_nan=False):
            err = (g - e).abs()
            where = tuple(int(i) for i in torch.nonzero(err == err.max())[0])
            fail(f"{what}: values differ (max abs error {err.max().item():.3g} at index {where})",
                 _item(e[where]), _item(g[where]), hint)
        return
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        fail(f"{what}: expected a number (a float, or a one-element tensor)", expected, describe(got), hint)
    g = float(got)
    if not abs(g - float(expected)) <= atol + rtol * abs(float(expected)):  # False for NaN
        fail(f"{what}: wrong value", expected, g, hint)


def _expect_tensor_like(got, expected: torch.Tensor, what: str, hint: str, check_dtype: bool) -> None:
    if not isinstance(got, torch.Tensor):
        fail(f"{what}: expected a torch.Tensor", describe(expected), describe(got), hint)
    if got.shape != expected.shape:
        fail(f"{what}: wrong shape", tuple(expected.shape), tuple(got.shape), hint)
    if check_dtype and expected.is_floating_point() and not got.is_floating_point():
        fail(f"{what}: expected a floating-point tensor", expected.dtype, got.dtype, hint)
    if got.device != expected.device:
        fail(f"{what}: result is on the wrong device", expected.device, got.device, "create new tensors on x.device")


def _item(x: torch.Tensor) -> Any:
    return x.item() if x.numel() == 1 else x.tolist()


def _show(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.6g}"
    if isinstance(x, list) and x and isinstance(x[0], float):
        return "[" + ", ".join(f"{v:.4g}" for v in x) + (", …]" if len(x) >= 6 else "]")
    if isinstance(x, torch.Tensor):
        return describe(x)
    return str(x)


def grade(ex: Exercise, obj: Any) -> None:
    """Run exercise `ex`'s test on `obj`; print a one-line verdict or raise CheckFailed."""
    name = ex.name
    if ex.kind == "quiz":
        return _grade_quiz(ex, obj)
    if ex.kind == "class" and not inspect.isclass(obj):
        raise CheckFailed(f"✗ {name}: expected a class, got {describe(obj)}")
    if ex.kind == "function" and (inspect.isclass(obj) or not callable(obj)):
        raise CheckFailed(f"✗ {name}: expected a function, got {describe(obj)}")
    calls: list = []
    try:
        n = ex.test(_recording(obj, calls) if ex.kind == "function" else obj)
    except NotImplementedError:
        raise NotImplementedYet(
            f"… {name}: not implemented yet — replace the `raise NotImplementedError` in the cell above with your code"
        ) from None
    except Mismatch as m:
        raise CheckFailed(f"✗ {name}: {m.report()}{_known_mistake(ex, calls)}") from None
    except Exception as e:  # the learner's code crashed: show the error, not a traceback wall
        raise CheckFailed(f"✗ {name}: your code raised {type(e).__name__}: {e}") from None
    print(f"✓ {name}: all {n or 'the'} tests passed")


def _grade_quiz(ex: Exercise, answer: Any) -> None:
    if answer is None or answer is Ellipsis:
        raise NotImplementedYet(f"… {ex.name}: not answered yet — replace the `...` in the cell above with your answer")
    try:
        ex.test(answer)
    except Mismatch as m:
        raise CheckFailed(f"✗ {ex.name}: {m.report()}") from None
    print(f"✓ {ex.name}: right. {ex.explanation}")


def _recording(fn: Callable, calls: list) -> Callable:
    """`fn`, keeping a copy of the inputs and the output of every call (to compare with the known mistakes); on a
    CPU-only machine each call runs under `DeviceTracer`."""

    @functools.wraps(fn)
    def spy(*args, **kwargs):
        inputs = _copy((args, kwargs))
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        tracer = None
        if tensors and get_device().type == "cpu":
            with DeviceTracer(tensors) as tracer:
                out = fn(*args, **kwargs)
        else:
            out = fn(*args, **kwargs)
        calls.append((inputs, _copy(out)))
        if not _same(inputs, (args, kwargs)):  # the expected answer is computed from these same inputs
            fail("your code changed an input tensor in place", "the inputs unchanged", "a changed input",
                 "work on a copy (x = x.clone()) or use out-of-place operations (x = x + 1, not x += 1)")
        if tracer is not None and tracer.mixed:
            fail(f"your code creates a tensor without device= and uses it with the inputs (in "
                 f"`{tracer.mixed[0]}`): on a GPU that tensor would sit on the CPU and the call would fail",
                 hint="create new tensors on the inputs' device: torch.arange(n, device=x.device)")
        return out

    return spy


class DeviceTracer(TorchFunctionMode):
    """A GPU simulated on the CPU: tensors derived from `inputs` count as on the accelerator, tensors made from
    nothing without `device=` as on the CPU; `mixed` lists the operations that combine the two (0-dim tensors and
    indexing with CPU index tensors aside, as torch allows both). `.to(...)` and `device=` count as moving to the
    accelerator."""

    def __init__(self, inputs: list[torch.Tensor]):
        super().__init__()
        self.accelerator, self.cpu, self.mixed = {id(t) for t in inputs}, set(), []
        self._alive = list(inputs)  # ids stay unique while the tensors they name are alive

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        on_acc = any(id(t) in self.accelerator for t in tensors)
        indexing = func is torch.Tensor.__getitem__  # CPU index tensors into an accelerator tensor are allowed
        if on_acc and not indexing and any(id(t) in self.cpu for t in tensors if t.ndim > 0):
            self.mixed.append(getattr(func, "__name__", str(func)))
        moved = getattr(func, "__name__", "") in ("to", "cuda") or kwargs.get("device") is not None
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                if on_acc or moved:
                    self.cpu.discard(id(t))
                    self.accelerator.add(id(t))
                elif id(t) not in self.accelerator:
                    self.cpu.add(id(t))
                self._alive.append(t)
        return out


def _copy(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(v) for v in x) if not hasattr(x, "_fields") else type(x)(*(_copy(v) for v in x))
    if isinstance(x, dict):
        return {k: _copy(v) for k, v in x.items()}
    return x


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
            return False
        a, b = a.detach().cpu().double(), b.detach().cpu().double()
        return bool(torch.allclose(a, b, atol=1e-5, rtol=1e-4, equal_nan=True))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-5 + 1e-4 * abs(b)
    return a == b


def _known_mistake(ex: Exercise, calls: list) -> str:
    """'  this looks like: <mistake>' when a documented mutant gives the learner's outputs on every recorded call.
    Only outputs that are values (tensors, numbers) compare; a trained model is judged by its check alone, and its
    mutants are not re-run (an experiment's would train again)."""
    comparable = (torch.Tensor, int, float, list, tuple, dict)
    if not calls or not all(isinstance(out, comparable) for _, out in calls):
        return ""
    for mutant in ex.mutants:
        doc = inspect.getdoc(mutant)
        if not doc:
            continue
        try:
            same = all(_same(mutant(*_copy(args), **_copy(kwargs)), out) for (args, kwargs), out in calls)
        except Exception:  # the mistake crashes where the learner's code did not: not this one
            continue
        if same:
            return f"\n  this looks like a known mistake: {doc.splitlines()[0]}"
    return ""
