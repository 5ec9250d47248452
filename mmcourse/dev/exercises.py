"""Generate the student exercises from the solutions.

In `solutions/NN_topic.py` each answer sits between `# BEGIN SOLUTION` and `# END SOLUTION` (inside a function or
method). The generator replaces each such block by a stub that raises NotImplementedError pointing at the exercise,
keeping the signature, the docstring and everything else, and writes `exercises/NN_topic.py` + `.ipynb`.
A quiz answer is one line, `name = answer  # SOLUTION`, which becomes `name = ...  # your answer`.
A *fix* exercise ends its answer block with a `# BUGGY` line followed by the buggy code, commented out: the
exercise gets that code (uncommented, under the line `FIX_NOTE`) instead of a stub, for the learner to repair.
"""

from __future__ import annotations

import re
from pathlib import Path

from .notebooks import ROOT, notebook_from_py, read_py, strip_outputs, write_atomic, write_notebook

BEGIN, END, LINE, BUGGY = "# BEGIN SOLUTION", "# END SOLUTION", "# SOLUTION", "# BUGGY"
FIX_NOTE = "# this code has a bug: find it and fix it"
_ANSWER = re.compile(r"^(\s*\w+\s*=\s*).+?\s*# SOLUTION\s*$")
_DEF = re.compile(r"^(\s*)(?:async\s+)?(def|class)\s+(\w+)")


class MarkerError(ValueError):
    """A solution file whose BEGIN/END SOLUTION markers do not pair up."""


def stub_solutions(text: str, source: str = "<solution>") -> str:
    """`text` with every marked answer replaced by `raise NotImplementedError(...)` at the marker's indentation."""
    out: list[str] = []
    open_at: int | None = None
    buggy: list[str] | None = None  # inside a fix block, after its BUGGY line: the code the exercise shows
    for n, line in enumerate(text.splitlines(keepends=True), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if open_at is not None:
                raise MarkerError(f"{source}:{n}: {BEGIN} inside the block opened at line {open_at}")
            open_at, buggy = n, None
            indent = line[: len(line) - len(line.lstrip())]
        elif stripped == END:
            if open_at is None:
                raise MarkerError(f"{source}:{n}: {END} without a {BEGIN} before it")
            if buggy is None:
                where = _enclosing_name(out, indent)
                out.append(f'{indent}raise NotImplementedError("exercise: write the body of {where}")\n')
            elif not buggy:
                raise MarkerError(f"{source}:{n}: the {BUGGY} block that ends here holds no code")
            else:
                out += [f"{indent}{FIX_NOTE}\n", *buggy]
            open_at, buggy = None, None
        elif open_at is not None and stripped == BUGGY:
            buggy = []
        elif buggy is not None:
            if stripped and not line.startswith(indent + "#"):
                raise MarkerError(f"{source}:{n}: after {BUGGY}, the buggy code must be commented out")
            body = line[len(indent) + 1:]
            buggy.append(indent + (body[1:] if body.startswith(" ") else body) if stripped else "\n")
        elif open_at is None and stripped.endswith(LINE):
            m = _ANSWER.match(line.rstrip("\n"))
            if m is None:
                raise MarkerError(f"{source}:{n}: a '{LINE}' line must read `name = answer  {LINE}`")
            out.append(f"{m.group(1)}...  # your answer\n")
        elif open_at is None:
            out.append(line)
    if open_at is not None:
        raise MarkerError(f"{source}:{open_at}: {BEGIN} is never closed by {END}")
    return "".join(out)


def _enclosing_name(lines: list[str], indent: str) -> str:
    for line in reversed(lines):
        m = _DEF.match(line)
        if m and len(m.group(1)) < len(indent):
            return f"`{m.group(3)}`"
    return "this cell"


def generate(solution: Path, out_dir: Path) -> tuple[Path, Path]:
    """Write the exercise twin (.py and output-free .ipynb) of one solution file into `out_dir`."""
    text = solution.read_text(encoding="utf-8")
    if BEGIN not in text and LINE not in text:
        raise MarkerError(f"{solution}: no {BEGIN} marker: a solutions file must contain at least one exercise")
    py = out_dir / solution.name
    write_atomic(py, stub_solutions(text, str(solution)))
    read_py(py)  # the stubbed file must still be a readable notebook
    nb = notebook_from_py(py)
    strip_outputs(nb)
    ipynb = py.with_suffix(".ipynb")
    write_notebook(nb, ipynb)
    return py, ipynb


def generate_all(root: Path = ROOT, out_dir: Path | None = None) -> list[Path]:
    out_dir = out_dir or root / "exercises"
    written = []
    for solution in sorted((root / "solutions").glob("[0-9][0-9]_*.py")):
        written += generate(solution, out_dir)
    return written
