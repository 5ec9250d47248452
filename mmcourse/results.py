"""Headline results: a chapter records its numbers against its bar; the course collects them into one table.

A number that misses its bar fails the run (`record` raises BarNotMet) under the test suite and CI, which set
MMCOURSE_STRICT=1; in a learner's own session it prints a clear warning and the notebook goes on. The result is
displayed either way; in a notebook
the result also travels in the cell's output under its own MIME type, so the course's results table is read straight
from the committed, executed lecture notebooks (`python -m mmcourse.dev results`): no side files, never out of date.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

MIME = "application/vnd.mmcourse.result+json"


STRICT_ENV = "MMCOURSE_STRICT"


class BarNotMet(AssertionError):
    """A headline number is below (or, for lower-is-better metrics, above) the chapter's bar."""


class BarMissedWarning(UserWarning):
    """A headline number missed its bar in a learner's session (not strict): the notebook goes on."""


def strict() -> bool:
    """True under the test suite and CI (MMCOURSE_STRICT=1): a missed bar raises instead of warning."""
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")


@dataclass
class Result:
    chapter: str
    metric: str
    value: float
    bar: float
    higher_is_better: bool = True
    seconds: float | None = None
    device: str = "cpu"

    @property
    def passed(self) -> bool:
        return self.value >= self.bar if self.higher_is_better else self.value <= self.bar

    def __str__(self) -> str:
        op = "≥" if self.higher_is_better else "≤"
        secs = f" in {self.seconds:.0f} s on {self.device}" if self.seconds is not None else ""
        mark = "✓" if self.passed else "✗"
        return f"{mark} {self.chapter} · {self.metric} = {self.value:.4g} (bar {op} {self.bar:g}){secs}"

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": str(self), MIME: asdict(self)}


def record(
    chapter: str,
    metric: str,
    value: float,
    bar: float,
    *,
    higher_is_better: bool = True,
    seconds: float | None = None,
    device: str | None = None,
) -> Result:
    """Record a headline number against `bar`. A miss raises BarNotMet in strict mode (tests, CI) and warns
    otherwise. Display the returned Result in a notebook."""
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"higher_is_better: expected True or False, got {higher_is_better!r}")
    from .utils import check_number, get_device

    for name, text in (("chapter", chapter), ("metric", metric)):
        if not isinstance(text, str) or not text:
            raise TypeError(f"{name}: expected a non-empty str, got {text!r}")
    if seconds is not None:
        check_number(seconds, "seconds", low=0)
    if device is not None and not isinstance(device, str):
        raise TypeError(f"device: expected a str such as 'cpu', got {device!r}")

    value = value.item() if hasattr(value, "item") else value  # a one-element tensor or numpy number
    check_number(bar, "bar")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"value: expected a number, got {type(value).__name__} {value!r}")
    value = float(value)

    dev = device or str(get_device())
    result = Result(chapter, metric, value, float(bar), higher_is_better, seconds, dev)
    if not math.isfinite(value) or not result.passed:
        what = "is not a finite number" if not math.isfinite(value) else "misses the chapter's bar"
        message = f"{result} — the value {what}"
        if strict():
            raise BarNotMet(message)
        warnings.warn(f"{message}. The course measured this on a 2-core CPU with the same seed; another device's "
                      "arithmetic (or a changed cell above) can land elsewhere. The notebook goes on.",
                      BarMissedWarning, stacklevel=2)
    return result


def collect(notebooks_dir: Path) -> list[Result]:
    """Every Result recorded in the outputs of the executed notebooks in `notebooks_dir`, in chapter order."""
    if not isinstance(notebooks_dir, (str, os.PathLike)) or not Path(notebooks_dir).is_dir():
        raise ValueError(f"notebooks_dir: expected a directory of executed notebooks, got {notebooks_dir!r}")
    found = []
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))  # nbformat 4: plain JSON, no Jupyter package needed
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                data = out.get("data", {}).get(MIME)
                if data is not None:
                    found.append(Result(**(json.loads(data) if isinstance(data, str) else data)))
    return found


def table(results: list[Result]) -> str:
    """The results as a Markdown table (the README's results section)."""
    if not isinstance(results, (list, tuple)) or not all(isinstance(r, Result) for r in results):
        raise TypeError(f"results: expected a list of Result (from record or collect), got {results!r}"[:200])
    rows = ["| chapter | metric | value | bar | seconds | device |", "|---|---|---|---|---|---|"]
    for r in results:
        op = "≥" if r.higher_is_better else "≤"
        secs = f"{r.seconds:.0f}" if r.seconds is not None else "–"
        rows.append(f"| {r.chapter} | {r.metric} | {r.value:.4g} | {op} {r.bar:g} | {secs} | {r.device} |")
    return "\n".join(rows)
