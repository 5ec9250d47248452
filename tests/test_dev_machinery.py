"""The notebook machinery on temporary copies: each guard goes red when it should."""

import ast
import shutil

import nbformat
import pytest

from mmcourse.dev import exercises, notebooks, widget_cells

SOLUTION = '''# %% [markdown]
# # 99 · Test chapter

# %%
{setup}

# %%
from mmcourse.grading import check


def double(x):
    """Twice x.

    Shape: any -> same.
    """
    # BEGIN SOLUTION
    y = x + x
    return y
    # END SOLUTION


class Box:
    def area(self, w, h):
        # BEGIN SOLUTION
        return w * h
        # END SOLUTION
'''.replace("{setup}", notebooks.SETUP_SOURCE)


@pytest.fixture
def course(tmp_path):
    for d in notebooks.PAIRED_DIRS:
        (tmp_path / d).mkdir()
    (tmp_path / "solutions" / "99_test.py").write_text(SOLUTION)
    exercises.generate_all(tmp_path)
    notebooks.sync(tmp_path)
    return tmp_path


def test_stub_keeps_signature_and_docstring_and_points_at_the_exercise():
    out = exercises.stub_solutions(SOLUTION)
    assert "y = x + x" not in out and "return w * h" not in out
    assert 'def double(x):\n    """Twice x.\n\n    Shape: any -> same.\n    """\n    raise NotImplementedError(' in out
    assert "write the body of `double`" in out and "write the body of `area`" in out
    assert '        raise NotImplementedError("exercise: write the body of `area`")' in out
    assert "BEGIN SOLUTION" not in out and "END SOLUTION" not in out


@pytest.mark.parametrize(
    "text, message",
    [
        ("def f():\n    # BEGIN SOLUTION\n    return 1\n", r"x.py:2: # BEGIN SOLUTION is never closed"),
        ("def f():\n    return 1\n    # END SOLUTION\n", r"x.py:3: # END SOLUTION without"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", r"x.py:2: # BEGIN SOLUTION inside the block"),
    ],
)
def test_bad_markers_are_clear_errors(text, message):
    with pytest.raises(exercises.MarkerError, match=message):
        exercises.stub_solutions(text, "x.py")


def test_unclosed_marker_leaves_nothing_half_written(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / "98_bad.py").write_text("def f():\n    # BEGIN SOLUTION\n    return 1\n")
    with pytest.raises(exercises.MarkerError, match="98_bad.py:2"):
        exercises.generate_all(tmp_path)
    assert not (tmp_path / "exercises").exists() or not list((tmp_path / "exercises").iterdir())


def test_generated_course_is_in_sync(course):
    assert all(not notebooks.pair_problems(py, nb) for py, nb in notebooks.pairs(course))
    assert len(notebooks.pairs(course)) == 2  # solutions/99 and exercises/99
    assert notebooks.setup_cell_problems(course / "exercises" / "99_test.py") == []


def test_edited_py_without_sync_is_out_of_sync(course):
    py = course / "solutions" / "99_test.py"
    py.write_text(py.read_text().replace("y = x + x", "y = 2 * x"))
    problems = notebooks.pair_problems(py, py.with_suffix(".ipynb"))
    assert problems and "cell 2 differs" in problems[0]
    notebooks.sync(course)
    assert notebooks.pair_problems(py, py.with_suffix(".ipynb")) == []


def test_missing_twin_is_reported(course):
    (course / "exercises" / "99_test.ipynb").unlink()
    py = course / "exercises" / "99_test.py"
    assert "no .ipynb twin" in notebooks.pair_problems(py, py.with_suffix(".ipynb"))[0]


def test_drifted_exercise_differs_from_regeneration(course, tmp_path_factory):
    ex = course / "exercises" / "99_test.py"
    hand_edit = "return 2 * x  # a hand edit\n    raise NotImplementedError"
    ex.write_text(ex.read_text().replace("raise NotImplementedError", hand_edit, 1))
    fresh = tmp_path_factory.mktemp("fresh")
    exercises.generate_all(course, fresh)
    assert (fresh / "99_test.py").read_text() != ex.read_text()


def test_setup_cell_must_be_verbatim(course):
    py = course / "solutions" / "99_test.py"
    py.write_text(py.read_text().replace("text=True", "text=False"))
    assert notebooks.setup_cell_problems(py)


def test_stale_outputs_detected(course):
    lecture = course / "notebooks" / "99_test.ipynb"
    shutil.copy(course / "solutions" / "99_test.py", lecture.with_suffix(".py"))
    notebooks.sync(course)
    assert "never executed" in notebooks.stale_outputs(lecture)[0]
    nb = nbformat.read(lecture, as_version=4)
    nb.metadata["mmcourse"] = {"source_hash": notebooks.source_hash(nb)}
    nbformat.write(nb, lecture)
    assert notebooks.stale_outputs(lecture) == []
    py = lecture.with_suffix(".py")
    py.write_text(py.read_text().replace("# # 99 · Test chapter", "# # 99 · Test chapter, reworded"))
    notebooks.sync(course)
    assert notebooks.stale_outputs(lecture) == []  # prose edits do not change what the code printed
    py.write_text(py.read_text().replace("Twice x", "Two times x"))
    notebooks.sync(course)
    assert "stale" in notebooks.stale_outputs(lecture)[0]


def test_sync_keeps_outputs_of_unchanged_cells(course):
    lecture = course / "notebooks" / "99_test.ipynb"
    shutil.copy(course / "solutions" / "99_test.py", lecture.with_suffix(".py"))
    notebooks.sync(course)
    nb = nbformat.read(lecture, as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="kept\n")]
    nbformat.write(nb, lecture)
    notebooks.sync(course)
    assert nbformat.read(lecture, as_version=4).cells[2].outputs[0].text == "kept\n"


def test_clean_outputs_drops_widget_views_and_volatile_metadata():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("w")
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "interactive(children=(…))"}
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=widget),
        nbformat.v4.new_output("display_data", data={"text/plain": "a figure"}),
    ]
    cell.metadata = {"execution": {"iopub.status.busy": "2026-01-01"}, "lines_to_next_cell": 1}
    nb.cells = [cell]
    nb.metadata["widgets"] = {"state": {}}
    notebooks.clean_outputs(nb)
    assert [o.data for o in nb.cells[0].outputs] == [{"text/plain": "a figure"}]
    assert nb.cells[0].metadata == {"lines_to_next_cell": 1} and "widgets" not in nb.metadata


def test_a_widget_becomes_a_picture_of_its_first_state_and_a_progress_bar_goes():
    def model(name, **state):
        return {"model_name": name, "state": state}

    figure = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    state = {"box": model("VBoxModel", children=["IPY_MODEL_slider", "IPY_MODEL_out", "IPY_MODEL_table"]),
             "slider": model("IntSliderModel", value=2), "out": model("OutputModel", outputs=[figure]),
             "table": model("HTMLModel", value="<b>R@1</b>"),
             "bar": model("HBoxModel", children=["IPY_MODEL_label", "IPY_MODEL_progress"]),
             "label": model("HTMLModel", value="stage 1: 100%"), "progress": model("FloatProgressModel", value=1.0)}
    nb = nbformat.v4.new_notebook()
    view = "application/vnd.jupyter.widget-view+json"
    nb.cells = [nbformat.v4.new_code_cell("explorer"), nbformat.v4.new_code_cell("train")]
    result = nbformat.v4.new_output("execute_result", data={view: {"model_id": "box"}}, execution_count=1)
    nb.cells[0].outputs = [result]
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data={view: {"model_id": "bar"}}),
                           nbformat.v4.new_output("stream", name="stdout", text="done\n")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
    notebooks.clean_outputs(nb)
    assert [dict(o.data) for o in nb.cells[0].outputs] == [figure["data"], {"text/html": "<b>R@1</b>"}]
    assert [o.output_type for o in nb.cells[1].outputs] == ["stream"]
    assert "widgets" not in nb.metadata


def test_wrong_solution_turns_execution_red_with_a_short_message(tmp_path):
    """A notebook whose exercise answer is wrong fails when executed (as nbval runs it), with clean feedback."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "from mmcourse.grading import check\n"
        "def add_noise(signal, noise, snr_db):\n    return signal + noise\n"
        "check('00.add_noise', add_noise)"
    )]
    with pytest.raises(CellExecutionError):
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    out = nb.cells[0].outputs[-1]
    assert out.output_type == "error" and out.ename == "CheckFailed"
    assert len(out.traceback) <= 8 and "✗ 00.add_noise" in out.traceback[0]
    assert "Traceback" not in "".join(out.traceback)


def test_a_quiz_answer_line_becomes_an_ellipsis():
    from mmcourse.dev.exercises import MarkerError, stub_solutions

    out = stub_solutions('# %%\nanswer_floor = "b"  # SOLUTION\n')
    assert out == "# %%\nanswer_floor = ...  # your answer\n"
    with pytest.raises(MarkerError, match="must read `name = answer"):
        stub_solutions('print("b")  # SOLUTION\n')


def test_a_fix_exercise_shows_the_buggy_code():
    from mmcourse.dev.exercises import FIX_NOTE, MarkerError, stub_solutions

    text = ("def f(x):\n    # BEGIN SOLUTION\n    return x + 1\n    # BUGGY\n    # y = x\n\n    # return y - 1\n"
            "    # END SOLUTION\n")
    assert stub_solutions(text) == f"def f(x):\n    {FIX_NOTE}\n    y = x\n\n    return y - 1\n"
    with pytest.raises(MarkerError, match="must be commented out"):
        stub_solutions(text.replace("    # y = x", "    y = x"))
    with pytest.raises(MarkerError, match="holds no code"):
        stub_solutions("def f(x):\n    # BEGIN SOLUTION\n    return x\n    # BUGGY\n    # END SOLUTION\n")


def test_setup_cell_on_colab_installs_the_package_and_fails_with_a_clear_message(monkeypatch):
    import subprocess
    import sys
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    calls = []

    def fake_run(args, **kw):
        calls.append(args)
        return subprocess.CompletedProcess(args, returncode, "", "ERROR: could not resolve github.com")

    monkeypatch.setattr(subprocess, "run", fake_run)
    returncode = 0
    exec(notebooks.SETUP_SOURCE, {})
    assert calls[-1][-1] == f"mmcourse @ git+https://github.com/{notebooks.REPO}@{notebooks.REF}"
    assert not any(name in " ".join(calls[-1]) for name in ("torch", "numpy", "ipywidgets"))
    returncode = 1
    with pytest.raises(SystemExit, match="(?s)Could not install.*could not resolve github.com.*internet"):
        exec(notebooks.SETUP_SOURCE, {})


def test_readme_colab_links_follow_the_repository_setting():
    from mmcourse.dev.__main__ import COLAB_LINK

    fork = "[![Open In Colab](b.svg)](https://colab.research.google.com/github/someone/fork/blob/dev/notebooks/02_clip.ipynb)"
    assert COLAB_LINK.sub(notebooks.COLAB, fork).endswith(f"({notebooks.colab_url('notebooks/02_clip.ipynb')})")


def test_every_lecture_widget_cell_has_stand_ins_and_ends_with_its_widget():
    """The browser tests and `make compat` run each lecture's widget cells after its imports and stand-ins: a new
    widget cell without stand-ins is named, not skipped."""
    found = widget_cells.lectures()
    assert {py.name[:2] for py in found} >= {"01", "02", "03", "04"}
    for py in found:
        namespace: dict = {}
        exec(compile(widget_cells.setup_source(py), py.name, "exec"), namespace)
        for cell in widget_cells.widget_cells(py):
            assert isinstance(ast.parse(cell).body[-1], ast.Expr), f"{py.name}: a widget cell must end with its widget"
    with pytest.raises(KeyError, match="no stand-ins for chapter '99'.*widget_cells.py"):
        widget_cells.stand_ins("99")
