"""Notebook plumbing: py:percent <-> ipynb pairs, the shared setup cell, execution with stamped outputs.

The `.py` twin is the source people edit. `sync` rewrites each `.ipynb`'s inputs from its `.py` (keeping outputs of
cells whose source did not change), `execute` runs a notebook top to bottom and stamps a hash of its cell sources
into its metadata, so `stale_outputs` can tell when committed outputs no longer match the sources.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat

from mmcourse import __version__

ROOT = Path(__file__).resolve().parents[2]
PAIRED_DIRS = ("notebooks", "solutions", "exercises")
REPO = "mmcourse/mmcourse"  # the GitHub repository (owner/name): the one place it is named
REF = f"v{__version__}"  # the release tag: a notebook opens from, and installs, the release it was executed with
COLAB = f"https://colab.research.google.com/github/{REPO}/blob/{REF}/"  # + a notebook's path

SETUP_SOURCE = f'''# Setup: on Colab, install the course's helper package only (Colab's torch, numpy, ipywidgets stay).
import sys

if "google.colab" in sys.modules:
    import subprocess

    url = "git+https://github.com/{REPO}@{REF}"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"mmcourse @ {{url}}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise SystemExit(f"Could not install the course package from {{url}}:\\n{{pip.stderr[-1500:]}}\\n"
                         "Check that the runtime is connected to the internet, then run this cell again.")'''

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
_JUPYTEXT_META = {"notebook_metadata_filter": "-all", "cell_metadata_filter": "-all"}
# What JupyterLab writes into a notebook it saves, so that opening and saving an unchanged lecture changes nothing:
# jupytext's pairing filters, the cell metadata jupytext derives from the .py (blank lines after a cell), and the
# kernel's language_info (all but the Python version, which is the learner's own).
_JUPYTEXT_CELL_KEYS = ("lines_to_next_cell",)
LANGUAGE_INFO = {"name": "python", "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "nbconvert_exporter": "python", "pygments_lexer": "ipython3"}
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_PROGRESS = ("FloatProgressModel", "IntProgressModel")


def colab_url(ipynb: str | Path) -> str:
    """The 'Open in Colab' address of a notebook of this repository (path relative to the repo root)."""
    return COLAB + Path(ipynb).as_posix()


def pairs(root: Path = ROOT) -> list[tuple[Path, Path]]:
    """Every (py, ipynb) pair of the course, by directory then name. A lone .py or .ipynb is a pair with a gap."""
    found = []
    for d in PAIRED_DIRS:
        stems = {p.stem for p in (root / d).glob("[0-9][0-9]_*.py")}
        stems |= {p.stem for p in (root / d).glob("[0-9][0-9]_*.ipynb")}
        found += [(root / d / f"{s}.py", root / d / f"{s}.ipynb") for s in sorted(stems)]
    return found


def cells(nb) -> list[tuple[str, str]]:
    """The (cell_type, source) list that a pair must agree on."""
    return [(c.cell_type, c.source.strip("\n")) for c in nb.cells]


def source_hash(nb) -> str:
    """A hash of the code cells: the outputs come from them alone, so editing the prose keeps them current. The
    setup cell is left out: it does nothing outside Colab, so a change to it cannot change an output."""
    code = [source for kind, source in cells(nb) if kind == "code" and not source.startswith("# Setup:")]
    return hashlib.sha256(json.dumps(code).encode()).hexdigest()[:16]


def read_py(py: Path):
    return jupytext.read(py, fmt="py:percent")


def pair_problems(py: Path, ipynb: Path) -> list[str]:
    """Why a pair is out of sync (empty list: in sync)."""
    if not py.exists():
        return [f"{ipynb}: has no .py twin (the .py is the source; create it with `make sync`)"]
    if not ipynb.exists():
        return [f"{py}: has no .ipynb twin (run `make sync`)"]
    a, b = cells(read_py(py)), cells(nbformat.read(ipynb, as_version=4))
    if a == b:
        return []
    if len(a) != len(b):
        return [f"{ipynb.name}: {len(b)} cells but {py.name} has {len(a)} (run `make sync`)"]
    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return [f"{ipynb.name}: cell {i} differs from {py.name} (run `make sync`): {b[i][1][:60]!r} vs {a[i][1][:60]!r}"]


def notebook_from_py(py: Path, old=None):
    """The .ipynb for `py`: its cells, with the outputs of `old`'s cells whose source is unchanged."""
    nb = read_py(py)
    nb.metadata = {"jupytext": dict(_JUPYTEXT_META), "kernelspec": dict(KERNELSPEC),
                   "language_info": copy.deepcopy(LANGUAGE_INFO)}
    if old is not None:
        outputs = {}
        for c in old.cells:
            if c.cell_type == "code":
                outputs.setdefault(c.source.strip("\n"), (c.get("outputs", []), c.get("execution_count")))
        for c in nb.cells:
            if c.cell_type == "code" and c.source.strip("\n") in outputs:
                c.outputs, c.execution_count = outputs[c.source.strip("\n")]
        stamp = old.metadata.get("mmcourse")
        if stamp:
            nb.metadata["mmcourse"] = stamp
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, c in enumerate(nb.cells):
        c.metadata = {k: v for k, v in c.metadata.items() if k in _JUPYTEXT_CELL_KEYS}
        c.id = f"cell-{i:03d}"  # stable ids: a re-sync changes nothing
        if c.cell_type == "code":
            c.setdefault("outputs", [])
            c.setdefault("execution_count", None)
    return nb


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and a rename: readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_notebook(nb, path: Path) -> None:
    write_atomic(path, nbformat.writes(nb) + "\n")


def drop_python_version(model: dict, **kwargs) -> None:
    """JupyterLab's pre-save hook for the course (`make lab` passes jupyter_lab_config.py): the notebook is saved
    without the Python version that its kernel wrote into language_info. That version differs from one learner's
    Python to the next, so no committed notebook can carry it; with it, a lecture opened and saved unchanged would
    show as modified in `git status`."""
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        model["content"].get("metadata", {}).get("language_info", {}).pop("version", None)


def write_py(nb, path: Path) -> None:
    nb = nbformat.from_dict(dict(nb))
    nb.metadata = {"jupytext": dict(_JUPYTEXT_META)}
    write_atomic(path, jupytext.writes(nb, fmt="py:percent"))


def sync(root: Path = ROOT) -> list[Path]:
    """Rewrite every .ipynb from its .py (outputs kept where the cell is unchanged). Returns the files changed."""
    changed = []
    for py, ipynb in pairs(root):
        if not py.exists():
            raise FileNotFoundError(f"{ipynb} has no .py twin: the .py is the source of a notebook")
        if update_setup_cell(py):
            changed.append(py)
        old = nbformat.read(ipynb, as_version=4) if ipynb.exists() else None
        nb = notebook_from_py(py, old)
        if py.parent.name != "notebooks":  # solutions and exercises are committed without outputs
            strip_outputs(nb)
        text = nbformat.writes(nb) + "\n"
        if not ipynb.exists() or ipynb.read_text(encoding="utf-8") != text:
            write_atomic(ipynb, text)
            changed.append(ipynb)
    return changed


def update_setup_cell(py: Path) -> bool:
    """Rewrite the setup cell of `py` (its first code cell, starting "# Setup:") to SETUP_SOURCE; True if changed."""
    nb = read_py(py)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or not code[0].source.startswith("# Setup:") or code[0].source.strip("\n") == SETUP_SOURCE:
        return False
    code[0].source = SETUP_SOURCE
    write_py(nb, py)
    return True


def strip_outputs(nb) -> None:
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.metadata.pop("mmcourse", None)


def setup_cell_problems(py: Path) -> list[str]:
    """A notebook must start with a title (markdown) and then the shared setup cell, verbatim."""
    nb = read_py(py)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or code[0].source.strip("\n") != SETUP_SOURCE:
        return [f"{py}: the first code cell must be the shared setup cell (mmcourse.dev.notebooks.SETUP_SOURCE)"]
    return []


def stale_outputs(ipynb: Path) -> list[str]:
    """Why a lecture notebook's committed outputs do not come from a run of its current sources."""
    nb = nbformat.read(ipynb, as_version=4)
    stamp = nb.metadata.get("mmcourse", {}).get("source_hash")
    if stamp is None:
        return [f"{ipynb.name}: never executed (run `make execute`)"]
    if stamp != source_hash(nb):
        return [f"{ipynb.name}: outputs are stale, the sources changed since the last run (run `make execute`)"]
    errors = [
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs)
    ]
    if errors:
        return [f"{ipynb.name}: committed outputs contain errors in cells {errors}"]
    return []


def _widget_picture(state: dict, model_id: str) -> list | None:
    """What a widget shows in its first state, from the widget state the run saved: the outputs of its Output
    widgets and the values of its HTML widgets, in the order of its children. None for a progress bar (tqdm):
    its text is timings, different on every run."""
    model = state.get(model_id)
    if model is None:
        return []
    name, s = model.get("model_name"), model.get("state", {})
    if name in _PROGRESS:
        return None
    if name == "OutputModel":
        return [nbformat.from_dict(o) for o in s.get("outputs", [])]
    if name in ("HTMLModel", "HTMLMathModel"):
        return [nbformat.v4.new_output("display_data", data={"text/html": s["value"]})] if s.get("value") else []
    out = []
    for child in s.get("children", []):
        picture = _widget_picture(state, child.removeprefix("IPY_MODEL_"))
        if picture is None:
            return None
        out += picture
    return out


def clean_outputs(nb) -> None:
    """Drop volatile metadata and the widget state. A widget view cannot render without its state, so each one is
    replaced by a picture of its first state (`_widget_picture`): a reader who does not run the cell sees what the
    widget shows. Progress bars are dropped."""
    state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
    for c in nb.cells:
        c.metadata = {k: v for k, v in c.metadata.items() if k in _JUPYTEXT_CELL_KEYS}
        if c.cell_type != "code":
            continue
        kept = []
        for o in c.outputs:
            if o.output_type in ("display_data", "execute_result"):
                if _WIDGET_MIME in o.data:
                    kept += _widget_picture(state, o.data[_WIDGET_MIME].get("model_id", "")) or []
                    continue
                o.metadata = {k: v for k, v in o.get("metadata", {}).items() if k != "execution"}
            kept.append(o)
        c.outputs = kept
    nb.metadata.pop("widgets", None)
    nb.metadata["jupytext"] = dict(_JUPYTEXT_META)
    nb.metadata["language_info"] = copy.deepcopy(LANGUAGE_INFO)


def execute(ipynb: Path, timeout: int = 600, kernel: str = "python3") -> float:
    """Run a lecture notebook top to bottom in a fresh kernel (cwd = its folder), clean and stamp it, save it.

    Returns the wall seconds. Raises nbclient's CellExecutionError (and leaves the file untouched) on an error.
    """
    from nbclient import NotebookClient

    nb = notebook_from_py(ipynb.with_suffix(".py"))
    env_before = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    try:
        start = time.perf_counter()
        resources = {"metadata": {"path": str(ipynb.parent)}}
        NotebookClient(nb, timeout=timeout, kernel_name=kernel, resources=resources).execute()
        seconds = time.perf_counter() - start
    finally:
        if env_before is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_before
    clean_outputs(nb)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["mmcourse"] = {"source_hash": source_hash(nb)}
    write_notebook(nb, ipynb)
    return seconds
