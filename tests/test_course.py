"""Repository invariants: pairs in sync, exercises generated from solutions, fresh outputs, README up to date."""

import re

import nbformat
import pytest

from mmcourse.dev import exercises, notebooks
from mmcourse.dev.__main__ import readme_results_block
from mmcourse.grading import exercises as registered

ROOT = notebooks.ROOT
PAIRS = notebooks.pairs()
LECTURES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))


def test_course_has_chapters():
    assert LECTURES and SOLUTIONS


@pytest.mark.parametrize("py, ipynb", PAIRS, ids=[f"{p.parent.name}/{p.stem}" for p, _ in PAIRS])
def test_pair_in_sync_and_starts_with_setup_cell(py, ipynb):
    assert notebooks.pair_problems(py, ipynb) == []
    assert notebooks.setup_cell_problems(py) == []
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a notebook opens with a title"
    assert "widgets" not in nb.metadata


@pytest.mark.parametrize("ipynb", LECTURES, ids=[p.stem for p in LECTURES])
def test_lecture_outputs_come_from_a_run_of_the_current_sources(ipynb):
    assert notebooks.stale_outputs(ipynb) == []


@pytest.mark.parametrize("py, ipynb", [p for p in PAIRS if p[0].parent.name != "notebooks"],
                         ids=[f"{p.parent.name}/{p.stem}" for p, _ in PAIRS if p.parent.name != "notebooks"])
def test_solutions_and_exercises_have_no_outputs(py, ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_exercises_are_generated_from_solutions(tmp_path):
    exercises.generate_all(ROOT, tmp_path)
    committed = sorted(p.name for p in (ROOT / "exercises").iterdir() if p.suffix in (".py", ".ipynb"))
    assert committed == sorted(p.name for p in tmp_path.iterdir()), "run `make sync`"
    for fresh in tmp_path.iterdir():
        assert (ROOT / "exercises" / fresh.name).read_text() == fresh.read_text(), f"{fresh.name}: run `make sync`"


def test_every_exercise_is_checked_once_in_the_solutions():
    used = []
    for py in SOLUTIONS:
        used += re.findall(r'^check\("(\d\d\.\w+)"', py.read_text(), flags=re.M)
    assert sorted(used) == sorted(registered()), "each registered check is called exactly once in solutions/"
    for py in SOLUTIONS:
        names = re.findall(r'^check\("(\d\d)\.', py.read_text(), flags=re.M)
        assert set(names) == {py.name[:2]}, f"{py.name} checks another chapter's exercises"


def test_readme_lists_every_chapter_with_its_colab_link_and_current_results():
    readme = (ROOT / "README.md").read_text()
    for ipynb in LECTURES:
        assert notebooks.colab_url(ipynb.relative_to(ROOT)) in readme, f"README lacks the Colab link of {ipynb.name}"
    assert readme_results_block() in readme, "README's results table is out of date: run `make readme`"
