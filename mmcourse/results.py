"""Headline results: a chapter records its numbers against its bar; the course collects them into one table.

`record` fails loudly (raises BarNotMet) when a number misses its bar. Otherwise it displays the result; in a notebook
the result also travels in the cell's output under its own MIME type, so the course's results table is read straight
from the committed, executed lecture notebooks (`python -m mmcourse.dev results`): no side files, never out of date.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

MIME = "application/vnd.mmcourse.result+json"


class BarNotMet(AssertionError):
    """A headline number is below (or, for lower-is-better metrics, above) the chapter's bar."""


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
    """Record a headline number; raise BarNotMet if it misses `bar`. Display the returned Result in a notebook."""
    value = float(value)
    if not math.isfinite(value):
        raise BarNotMet(f"{chapter} · {metric}: the value is {value}, not a finite number")
    from .utils import get_device

    dev = device or str(get_device())
    result = Result(chapter, metric, value, float(bar), higher_is_better, seconds, dev)
    if not result.passed:
        raise BarNotMet(f"{result} — below the chapter's bar")
    return result


def collect(notebooks_dir: Path) -> list[Result]:
    """Every Result recorded in the outputs of the executed notebooks in `notebooks_dir`, in chapter order."""
    found = []
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                data = out.get("data", {}).get(MIME)
                if data is not None:
                    found.append(Result(**(json.loads(data) if isinstance(data, str) else data)))
    return found


def table(results: list[Result]) -> str:
    """The results as a Markdown table (the README's results section)."""
    rows = ["| chapter | metric | value | bar | seconds | device |", "|---|---|---|---|---|---|"]
    for r in results:
        op = "≥" if r.higher_is_better else "≤"
        secs = f"{r.seconds:.0f}" if r.seconds is not None else "–"
        rows.append(f"| {r.chapter} | {r.metric} | {r.value:.4g} | {op} {r.bar:g} | {secs} | {r.device} |")
    return "\n".join(rows)
