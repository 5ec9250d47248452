"""The student notebooks run: every ordinary cell runs clean, every check cell reports 'not implemented yet'."""

import nbformat
import pytest
from nbclient import NotebookClient

from mmcourse.dev.notebooks import ROOT

EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_exercise_notebook(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    checks = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if cell.source.startswith("check("):
            checks += 1
            assert [e.ename for e in errors] == ["NotImplementedYet"], f"cell {i} should say 'not implemented yet'"
        else:
            assert not errors, f"cell {i} fails: {errors[0].ename}: {errors[0].evalue}"
    assert checks >= 1
