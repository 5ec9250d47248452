"""The zoo: train once, cache atomically, verify on read, rebuild when corrupt, one trainer under parallel loads."""

import json
import multiprocessing as mp
import os
import warnings

import pytest
import torch

from mmcourse import cache as model_cache
from mmcourse import zoo
from mmcourse.train import History


def _build():
    torch.manual_seed(0)
    return torch.nn.Linear(3, 2)


def _train(m):
    with open(os.environ["ZOO_TEST_LOG"], "a") as f:
        f.write("trained\n")
    with torch.no_grad():
        m.weight.add_(1.0)


zoo.register("test-toy", 3, _build, _train)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZOO_TEST_LOG", str(tmp_path / "log"))
    return tmp_path


def _trained_count(tmp_path):
    log = tmp_path / "log"
    return log.read_text().count("trained") if log.exists() else 0


def test_trains_once_then_loads_same_weights(cache):
    a = zoo.load("test-toy", verbose=False)
    b = zoo.load("test-toy", verbose=False)
    assert _trained_count(cache) == 1
    assert torch.equal(a.weight, b.weight)
    torch.manual_seed(0)
    assert torch.allclose(a.weight, torch.nn.Linear(3, 2).weight + 1.0)
    assert not a.training
    path = zoo.cached_path("test-toy")
    assert path.name == "test-toy-v3.safetensors"
    assert json.loads(path.with_suffix(".json").read_text())["sha256"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_entry_is_detected_and_rebuilt(cache):
    zoo.load("test-toy", verbose=False)
    path = zoo.cached_path("test-toy")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="corrupt"):
        model = zoo.load("test-toy", verbose=False)
    assert _trained_count(cache) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = zoo.load("test-toy", verbose=False)  # the rebuilt entry verifies cleanly
    assert torch.equal(model.weight, again.weight)


def test_half_written_entry_without_manifest_is_rebuilt(cache):
    path = zoo.cached_path("test-toy")
    path.write_bytes(b"half a file")  # a crash before the manifest was written
    zoo.load("test-toy", verbose=False)
    assert _trained_count(cache) == 1


def test_entry_that_no_longer_fits_the_recipe_is_rebuilt(cache):
    path = zoo.cached_path("test-toy")
    model_cache.write(path, torch.nn.Linear(4, 2).state_dict())  # a valid file from an older model of the same name
    with pytest.warns(UserWarning, match="does not fit the test-toy recipe"):
        model = zoo.load("test-toy", verbose=False)
    assert model.weight.shape == (2, 3) and _trained_count(cache) == 1


def test_unknown_entry_names_the_known_ones(cache):
    known = "avsr-tiny, clip-tiny, judge-tiny, llava-tiny, test-toy, tiny-lm, unclip-tiny"
    with pytest.raises(KeyError, match=f"unknown zoo entry 'no-such-model'; known: {known}"):
        zoo.load("no-such-model")


def _load_in_child(_):
    from mmcourse import zoo as child_zoo

    child_zoo.register("test-toy", 3, _build, _train)
    return child_zoo.load("test-toy", verbose=False).weight.sum().item()


def test_parallel_loads_train_once(cache):
    ctx = mp.get_context("spawn")
    with ctx.Pool(3) as pool:
        sums = pool.map(_load_in_child, range(3))
    assert len(set(sums)) == 1
    assert _trained_count(cache) == 1


def test_saved_model_is_loaded_without_training(cache):
    model = _build()
    with torch.no_grad():
        model.weight.fill_(7.0)  # trained elsewhere, e.g. in view in its chapter
    path = zoo.save("test-toy", model)
    assert path == zoo.cached_path("test-toy")
    loaded = zoo.load("test-toy", verbose=False)
    assert _trained_count(cache) == 0
    assert torch.equal(loaded.weight, model.weight) and torch.equal(loaded.bias, model.bias)


def test_save_refuses_a_model_that_does_not_fit_the_recipe(cache):
    with pytest.raises(ValueError, match=r"(?s)does not fit the .test-toy. recipe: .*size mismatch for weight"):
        zoo.save("test-toy", torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"(?s)does not fit the .test-toy. recipe: .*Missing key\(s\) .*\"bias\""):
        zoo.save("test-toy", torch.nn.Linear(3, 2, bias=False))
    assert not zoo.cached_path("test-toy").exists()


def test_save_refuses_an_untrained_model_and_nan_weights(cache):
    with pytest.raises(ValueError, match="untrained"):
        zoo.save("test-toy", _build())
    broken = _build()
    with torch.no_grad():
        broken.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite weights .*weight"):
        zoo.save("test-toy", broken)
    assert not zoo.cached_path("test-toy").exists()


def test_an_entry_with_nan_weights_is_rebuilt(cache):
    zoo.load("test-toy", verbose=False)
    path = zoo.cached_path("test-toy")
    state = {"weight": torch.full((2, 3), float("nan")), "bias": torch.zeros(2)}
    from safetensors.torch import save_file

    save_file(state, path)  # a damaged entry whose manifest matches: only the values are wrong
    path.with_suffix(".json").write_text(json.dumps({"sha256": model_cache._sha256(path)}))
    with pytest.warns(UserWarning, match="non-finite weights"):
        loaded = zoo.load("test-toy", verbose=False)
    assert torch.isfinite(loaded.weight).all() and _trained_count(cache) == 2


def test_a_reader_racing_a_writer_never_deletes_the_fresh_entry(cache, monkeypatch):
    """A load that reads weights and manifest while a save replaces them sees a mismatch: it must wait for the
    lock and read again, not call the fresh entry corrupt, delete it and retrain."""
    zoo.load("test-toy", verbose=False)
    model = _build()
    with torch.no_grad():
        model.weight.fill_(5.0)
    real_read = model_cache.read_verified
    calls = []

    def read_mid_write(p, repair=True):
        calls.append(repair)
        if len(calls) == 1:  # the writer has renamed the new weights but not yet the new manifest
            model_cache.write(p, model.state_dict())
            p.with_suffix(".json").write_text('{"sha256": "an older manifest"}')
            result = real_read(p, repair)
            model_cache.write(p, model.state_dict())  # ... and now it has finished
            return result
        return real_read(p, repair)

    monkeypatch.setattr(model_cache, "read_verified", read_mid_write)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "corrupt" warning
        loaded = zoo.load("test-toy", verbose=False)
    assert calls == [False, True]  # the lock-free read repairs nothing; the second read holds the lock
    assert torch.equal(loaded.weight, model.weight) and _trained_count(cache) == 1


def test_stale_temporary_files_of_a_killed_writer_are_removed(cache):
    zoo.load("test-toy", verbose=False)
    path = zoo.cached_path("test-toy")
    stale = path.parent / f".{path.stem}.abc123.safetensors.tmp"
    stale.write_bytes(b"half a file")
    model = _build()
    with torch.no_grad():
        model.weight.fill_(2.0)
    zoo.save("test-toy", model)
    assert not stale.exists()
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("name", ["../outside", "a/b", "..", "", "Name"])
def test_entry_names_that_are_not_plain_file_names_are_refused(name):
    with pytest.raises(ValueError, match="zoo entry names are"):
        zoo.register(name, 1, _build, _train)


def test_the_lock_never_follows_a_symlink(cache, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    path = zoo.cached_path("test-toy")
    path.with_suffix(".lock").symlink_to(target)
    with pytest.raises(model_cache.CacheError, match="cannot lock"):
        zoo.load("test-toy", verbose=False)
    assert target.read_text() == "keep me"


def test_warm_trains_into_the_cache_once(cache, capsys):
    from mmcourse.dev.__main__ import main

    main(["warm", "test-toy"])
    main(["warm", "test-toy"])
    assert _trained_count(cache) == 1 and zoo.cached_path("test-toy").exists()
    assert capsys.readouterr().out.count("zoo: test-toy ready") == 2


def _train_with_history(m):
    _train(m)
    return History(loss=[0.9, 0.5], evals=[{"step": 2, "accuracy": torch.tensor(0.75)}], seconds=1.5)


def test_the_training_record_is_kept_with_the_weights(cache, monkeypatch):
    """`load` keeps what the recipe's training returned, `save` what it is given: a later session sees the curves
    of a model it did not train. No record, a damaged entry or no entry: None."""
    assert zoo.history("test-toy") is None  # no entry
    zoo.load("test-toy", verbose=False)
    assert zoo.history("test-toy") is None  # the recipe returned no History
    monkeypatch.setattr(zoo, "_EXTRA", {**zoo._EXTRA})  # "test-record" exists for this test only
    zoo.register("test-record", 1, _build, _train_with_history)
    zoo.load("test-record", verbose=False)
    assert zoo.history("test-record") == History([0.9, 0.5], [{"step": 2, "accuracy": 0.75}], 1.5)
    model = _build()
    with torch.no_grad():
        model.weight.fill_(3.0)
    zoo.save("test-toy", model, History([2.0, 1.0, 0.5], [], 9.0))
    assert zoo.history("test-toy") == History([2.0, 1.0, 0.5], [], 9.0)
    assert torch.equal(zoo.load("test-toy", verbose=False).weight, model.weight) and _trained_count(cache) == 2
    path = zoo.cached_path("test-toy")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert zoo.history("test-toy") is None  # fails its checksum: no record, and the entry is left to load's repair
    assert path.exists()
    with pytest.raises(TypeError, match="history: expected the History that fit returned, got dict"):
        zoo.save("test-toy", model, {"loss": [1.0]})


def test_a_recipe_trains_on_the_trained_entries_it_needs(cache, monkeypatch):
    """`needs` entries are loaded (trained first if the cache lacks them) and handed to the recipe's train."""
    monkeypatch.setattr(zoo, "_EXTRA", {**zoo._EXTRA})
    seen = []

    def train_on_top(model, base):
        seen.append(base)
        with torch.no_grad():
            model.weight.copy_(base.weight * 2)

    zoo.register("test-on-top", 1, _build, train_on_top, needs=("test-toy",))
    top = zoo.load("test-on-top", verbose=False)
    assert _trained_count(cache) == 1 and len(seen) == 1  # the needed entry was trained once, for it
    base = zoo.load("test-toy", verbose=False)
    assert torch.equal(seen[0].weight, base.weight) and not seen[0].training
    assert torch.equal(top.weight, 2 * base.weight)
    zoo.load("test-on-top", verbose=False)
    assert len(seen) == 1  # cached: trains nothing


def test_the_course_recipes_that_need_others_name_known_entries():
    for name in zoo.RECIPES:
        recipe = zoo.recipe(name)
        assert set(recipe.needs) <= set(zoo.RECIPES) - {name}, name
    assert zoo.recipe("videobert-tiny").needs == ("video-tokenizer",)
