"""The model cache: a directory of safetensors files, each written atomically and verified when read.

`$MMCOURSE_CACHE` (default `~/.cache/mmcourse`) holds `<entry>.safetensors` plus a `.json` manifest with the
file's SHA-256. Files are written to a temporary name and renamed (never half-written), the manifest last, so an
entry without one is incomplete; a file whose checksum does not match is reported and removed (the caller rebuilds
it); `lock` keeps two processes (two notebooks, pytest-xdist workers) from building the same entry at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

__all__ = ["CacheError", "cache_dir", "read_verified", "write", "lock"]


class CacheError(RuntimeError):
    """The cache directory cannot be used."""


def cache_dir() -> Path:
    """The cache directory: $MMCOURSE_CACHE, else ~/.cache/mmcourse. Created if missing; must be writable."""
    path = Path(os.environ.get("MMCOURSE_CACHE") or Path.home() / ".cache" / "mmcourse").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".probe-")
        probe.close()
    except OSError as e:
        raise CacheError(
            f"the model cache {path} is not writable ({e.strerror}); set MMCOURSE_CACHE to a writable directory"
        ) from None
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_verified(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached state dict, or None if absent; a corrupt or unverifiable entry is reported and removed."""
    manifest = path.with_suffix(".json")
    if not path.exists() or not manifest.exists():
        return None
    try:
        expected = json.loads(manifest.read_text())["sha256"]
        if _sha256(path) != expected:
            raise ValueError("checksum mismatch")
        return load_file(path)
    except Exception as e:  # any damage: rebuild rather than load garbage
        warnings.warn(f"cache entry {path} is corrupt ({e}); rebuilding it", stacklevel=3)
        for p in (path, manifest):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return None


def write(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Write weights then manifest, each atomically; the manifest (written last) marks the entry complete."""
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    seen = set()  # safetensors refuses tensors that share memory (tied weights): store each copy on its own
    for k, v in state.items():
        if v.data_ptr() in seen:
            state[k] = v.clone()
        seen.add(v.data_ptr())
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        digest = _sha256(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump({"sha256": digest}, f)
    os.replace(tmp, path.with_suffix(".json"))


@contextlib.contextmanager
def lock(path: Path):
    """An exclusive inter-process lock on the file `path` (flock on POSIX; elsewhere atomic writes alone keep
    files whole)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
