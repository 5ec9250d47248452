import nbformat
import pytest

from mmcourse import results


def test_a_learners_session_warns_and_goes_on(monkeypatch):
    monkeypatch.delenv(results.STRICT_ENV, raising=False)
    with pytest.warns(results.BarMissedWarning, match="misses the chapter's bar.*goes on"):
        r = results.record("02", "zero-shot accuracy", 0.90, 0.95)
    assert not r.passed and str(r).startswith("✗")
    for off in ("0", "false", ""):
        monkeypatch.setenv(results.STRICT_ENV, off)
        assert not results.strict()
    monkeypatch.setenv(results.STRICT_ENV, "1")
    assert results.strict()


def test_record_passes_and_fails_loudly(monkeypatch):
    monkeypatch.setenv(results.STRICT_ENV, "1")
    r = results.record("02", "zero-shot accuracy", 0.97, 0.95, seconds=100, device="cpu")
    assert r.passed and "✓" in str(r) and "≥ 0.95" in str(r)
    with pytest.raises(results.BarNotMet, match="misses the chapter's bar"):
        results.record("02", "zero-shot accuracy", 0.90, 0.95)
    assert results.record("07", "WER", 0.2, 0.5, higher_is_better=False).passed
    with pytest.raises(results.BarNotMet):
        results.record("07", "WER", 0.6, 0.5, higher_is_better=False)
    with pytest.raises(results.BarNotMet, match="not a finite number"):
        results.record("01", "acc", float("nan"), 0.9)


def test_collect_reads_results_from_notebook_outputs(tmp_path):
    r = results.record("01", "shape accuracy", 0.98, 0.95, seconds=42.0, device="cpu")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("record(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=r._repr_mimebundle_())]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), cell]
    nbformat.write(nb, tmp_path / "01_vit.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "02_empty.ipynb")
    found = results.collect(tmp_path)
    assert found == [r]
    table = results.table(found)
    assert "| 01 | shape accuracy | 0.98 | ≥ 0.95 | 42 | cpu |" in table.splitlines()


def test_higher_is_better_must_be_a_bool():
    with pytest.raises(TypeError, match="higher_is_better: expected True or False, got 'no'"):
        results.record("00", "x", 1.0, 0.5, higher_is_better="no")
