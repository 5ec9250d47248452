"""The model cache: atomic writes, verified reads, a clear error when the directory cannot be used.

(Rebuilding corrupt, half-written and mismatched entries is tested through the zoo, in test_zoo.py.)"""

import os
import stat
import warnings

import pytest
import torch

from mmcourse import cache


def test_write_then_read_verified_round_trips(tmp_path):
    path = tmp_path / "entry.safetensors"
    state = {"w": torch.arange(6.0).view(2, 3), "b": torch.zeros(2)}
    cache.write(path, state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = cache.read_verified(path)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json", "entry.safetensors"]  # no temporary left


def test_absent_entry_reads_as_none_and_a_damaged_one_is_removed(tmp_path):
    path = tmp_path / "entry.safetensors"
    assert cache.read_verified(path) is None
    cache.write(path, {"w": torch.ones(3)})
    path.with_suffix(".json").write_text('{"sha256": "0"}')
    with pytest.warns(UserWarning, match="corrupt.*checksum mismatch"):
        assert cache.read_verified(path) is None
    assert not path.exists() and not path.with_suffix(".json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_a_read_only_cache_serves_its_entries_and_refuses_writes_clearly(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    cache.write(ro / "entry.safetensors", {"w": torch.ones(2)})
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    monkeypatch.setenv("MMCOURSE_CACHE", str(ro))
    assert cache.cache_dir() == ro
    assert torch.equal(cache.read_verified(ro / "entry.safetensors")["w"], torch.ones(2))
    with pytest.raises(cache.CacheError, match="not writable.*MMCOURSE_CACHE"):
        cache.write(ro / "other.safetensors", {"w": torch.ones(2)})
    with pytest.raises(cache.CacheError, match="cannot lock"):
        with cache.lock(ro / "other.lock"):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
def test_an_unreadable_entry_is_an_error_not_corruption(tmp_path):
    path = tmp_path / "entry.safetensors"
    cache.write(path, {"w": torch.ones(2)})
    path.chmod(0)
    with pytest.raises(cache.CacheError, match="cannot read the cache entry"):
        cache.read_verified(path)
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert path.exists()


def test_a_failed_manifest_write_leaves_the_old_entry_whole(tmp_path, monkeypatch):
    path = tmp_path / "entry.safetensors"
    cache.write(path, {"w": torch.ones(2)})
    real_dump = cache.json.dump

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.json, "dump", disk_full)
    with pytest.raises(OSError, match="No space left"):
        cache.write(path, {"w": torch.zeros(2)})
    monkeypatch.setattr(cache.json, "dump", real_dump)
    assert torch.equal(cache.read_verified(path)["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry.json", "entry.safetensors"]


def test_a_lock_free_read_of_a_mismatched_entry_removes_nothing(tmp_path):
    path = tmp_path / "entry.safetensors"
    cache.write(path, {"w": torch.ones(3)})
    path.with_suffix(".json").write_text('{"sha256": "0"}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.read_verified(path, repair=False) is None
    assert path.exists()


def test_cache_path_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MMCOURSE_CACHE", str(blocker / "cache"))
    with pytest.raises(cache.CacheError, match="cannot be created.*MMCOURSE_CACHE"):
        cache.cache_dir()


def test_tied_weights_are_written_and_load_back_tied(tmp_path):
    """safetensors refuses tensors that share memory; a decoder whose LM head is its token embedding still caches."""
    from mmcourse.nn import TextDecoder

    make = lambda: TextDecoder(12, 6, 8, 1, 2, eot_id=2, pad_id=0)  # noqa: E731
    torch.manual_seed(0)
    model = make()
    assert model.lm_head.weight is model.token_embedding.weight
    cache.write(tmp_path / "lm.safetensors", model.state_dict())
    loaded = make()
    loaded.load_state_dict(cache.read_verified(tmp_path / "lm.safetensors"))
    assert loaded.lm_head.weight is loaded.token_embedding.weight
    torch.testing.assert_close(loaded.token_embedding.weight, model.token_embedding.weight, rtol=0, atol=0)
