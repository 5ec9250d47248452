"""Remembered measurements: measured once per answer and code, read back exactly, anything else measured anew."""

from pathlib import Path

import pytest
import torch

from mmcourse.grading import memo
from mmcourse.grading.memo import remembered


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path))
    return tmp_path


def _counting(result):
    calls = []

    @remembered
    def measure(rate, steps=10):
        calls.append((rate, steps))
        return result(rate, steps)

    return measure, calls


def test_the_same_answer_is_measured_once_and_read_back_exactly(cache):
    measure, calls = _counting(lambda rate, steps: 1 / 3 + rate)
    first = measure(0.25)
    assert measure(0.25) == first == 1 / 3 + 0.25
    assert calls == [(0.25, 10)]
    assert measure(0.5) == 1 / 3 + 0.5 and measure(0.25, steps=20) == 1 / 3 + 0.25
    assert calls == [(0.25, 10), (0.5, 10), (0.25, 20)]
    assert len(list(cache.glob("measured-measure-*.safetensors"))) == 3


def test_dicts_and_tuples_of_tensors_come_back_as_they_went(cache):
    measure, calls = _counting(lambda rate, steps: {"both": 0.97, "no image": rate})
    assert measure(0.1) == measure(0.1) == {"both": 0.97, "no image": 0.1} and len(calls) == 1
    scores, keep = torch.rand(50, dtype=torch.float32), torch.rand(50) > 0.5
    measure, calls = _counting(lambda rate, steps: (scores, keep))
    measure(0.0)
    got = measure(0.0)
    assert len(calls) == 1 and isinstance(got, tuple)
    assert torch.equal(got[0], scores) and got[0].dtype == torch.float32
    assert torch.equal(got[1], keep) and got[1].dtype == torch.bool


def test_a_change_to_the_code_measures_anew(cache, monkeypatch):
    measure, calls = _counting(lambda rate, steps: rate)
    measure(0.5)
    monkeypatch.setattr(memo, "code_fingerprint", lambda: "an edited package")
    measure(0.5)
    assert len(calls) == 2


def test_a_replaced_model_in_the_cache_measures_anew(cache):
    """A measurement may build on a zoo model: another clip-tiny in the cache is another measurement."""
    measure, calls = _counting(lambda rate, steps: rate)
    (cache / "clip-tiny-v4.json").write_text('{"sha256": "aaaa"}')
    measure(0.5)
    measure(0.5)
    (cache / "clip-tiny-v4.json").write_text('{"sha256": "bbbb"}')  # retrained and saved under the same version
    measure(0.5)
    assert len(calls) == 2


def test_a_cache_it_cannot_lock_still_measures_and_keeps_nothing(cache, monkeypatch):
    from mmcourse import cache as model_cache

    def refuse(path):
        raise model_cache.CacheError(f"cannot lock {path}")

    monkeypatch.setattr(model_cache, "lock", refuse)
    measure, calls = _counting(lambda rate, steps: rate + 1)
    assert measure(0.5) == measure(0.5) == 1.5
    assert len(calls) == 2 and not list(cache.glob("measured-*"))


def test_a_damaged_entry_is_measured_again(cache):
    measure, calls = _counting(lambda rate, steps: rate * 2)
    measure(0.5)
    (entry,) = cache.glob("measured-measure-*.safetensors")
    entry.write_bytes(entry.read_bytes()[:-8] + b"garbage!")
    with pytest.warns(UserWarning, match="corrupt"):
        assert measure(0.5) == 1.0
    assert len(calls) == 2


def test_arguments_and_results_it_cannot_keep_are_clear_errors(cache):
    measure, calls = _counting(lambda rate, steps: rate)
    with pytest.raises(TypeError, match="takes bools, numbers and strings, got list"):
        measure([0.5])
    measure, calls = _counting(lambda rate, steps: "a model")
    with pytest.raises(TypeError, match="returns a number, a dict of numbers or a tuple of tensors, got str"):
        measure(0.5)
    assert not list(cache.glob("measured-*.safetensors"))


def test_the_fingerprint_follows_every_source_file(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "clip.py").write_text("SCALE = 10\n")
    (tmp_path / "train.py").write_text("STEPS = 300\n")
    before = memo.source_fingerprint(tmp_path)
    assert memo.source_fingerprint(tmp_path) == before
    (tmp_path / "models" / "clip.py").write_text("SCALE = 100\n")
    edited = memo.source_fingerprint(tmp_path)
    (tmp_path / "models" / "clip.py").rename(tmp_path / "models" / "siglip.py")
    renamed = memo.source_fingerprint(tmp_path)
    assert len({before, edited, renamed}) == 3
    assert memo.code_fingerprint() == memo.source_fingerprint(Path(memo.__file__).resolve().parents[1])
