"""The zoo: train once, cache atomically, verify on read, rebuild when corrupt, one trainer under parallel loads."""

import json
import multiprocessing as mp
import os
import warnings

import pytest
import torch

from mmcourse import cache as model_cache
from mmcourse import zoo


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
    with pytest.raises(KeyError, match="unknown zoo entry 'no-such-model'; known: clip-tiny, test-toy, tiny-lm"):
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
