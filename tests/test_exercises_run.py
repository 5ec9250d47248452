"""The student notebooks run: every ordinary cell runs clean; every check cell reports 'not implemented yet', or,
after a fix exercise (its code still has the bug), that the check failed."""

import nbformat
import pytest
from nbclient import NotebookClient

from mmcourse.dev.exercises import FIX_NOTE
from mmcourse.dev.notebooks import ROOT

EXERCISES = sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", EXERCISES, ids=[p.stem for p in EXERCISES])
def test_exercise_notebook(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    checks, previous = 0, ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        if cell.source.startswith("check("):
            checks += 1
            expected = "CheckFailed" if FIX_NOTE in previous else "NotImplementedYet"
            assert [e.ename for e in errors] == [expected], f"cell {i} should fail with {expected}"
        else:
            assert not errors, f"cell {i} fails: {errors[0].ename}: {errors[0].evalue}"
        previous = cell.source
    assert checks >= 1
