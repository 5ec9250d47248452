"""Opening and saving an unchanged notebook in JupyterLab leaves the checkout clean: each committed .ipynb, read
through the Jupyter contents API and saved back (jupytext's pairing active, as in a learner's JupyterLab), comes back
byte for byte, and its .py twin too; so does a save of what a kernel changes on opening (the Python version in
language_info, dropped by the pre-save hook of jupyter_lab_config.py). Needs no browser."""

import json
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix() for folder in ("notebooks", "solutions", "exercises")
                   for p in (ROOT / folder).glob("[0-9][0-9]_*.ipynb"))


def _call(lab, path: str, method: str = "GET", body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{lab.url}/api/contents/{path}?token={lab.token}&content=1", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_open_and_save_changes_nothing(course_lab, path):
    ipynb, py = course_lab.root / path, (course_lab.root / path).with_suffix(".py")
    before, py_before = ipynb.read_text(encoding="utf-8"), py.read_text(encoding="utf-8")
    model = _call(course_lab, path)
    _call(course_lab, path, "PUT", {"type": "notebook", "format": "json", "content": model["content"]})
    assert ipynb.read_text(encoding="utf-8") == before, f"{path}: saving it unchanged rewrites it (run `make sync`)"
    assert py.read_text(encoding="utf-8") == py_before, f"{path}: saving it rewrites its .py twin"
    # Opened with a kernel, the notebook gains the kernel's Python version; the course's pre-save hook drops it.
    model["content"]["metadata"]["language_info"]["version"] = "3.11.7"
    _call(course_lab, path, "PUT", {"type": "notebook", "format": "json", "content": model["content"]})
    assert ipynb.read_text(encoding="utf-8") == before, f"{path}: the kernel's Python version was saved into it"
