"""The model cache: a directory of safetensors files, each written atomically and verified when read.

`$MMCOURSE_CACHE` (default `~/.cache/mmcourse`) holds `<entry>.safetensors` (the weights, and optionally a small
JSON-able `meta` dict in its header, e.g. the training record) plus a `.json` manifest with the file's SHA-256.
Files are written to temporary names and renamed (never half-written), the manifest last, so an entry without one
is incomplete. `lock` keeps two processes (two notebooks, pytest-xdist workers) from building the same entry at
once. A reader without the lock treats a mismatch as "not there yet" (a writer may be between its two renames);
only a holder of the lock calls an entry corrupt, removes it and rebuilds it.
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
from safetensors import safe_open
from safetensors.torch import load_file, save_file

__all__ = ["CacheError", "cache_dir", "read_verified", "read_meta", "write", "lock"]


class CacheError(RuntimeError):
    """The cache directory cannot be used."""


def cache_dir() -> Path:
    """The cache directory: $MMCOURSE_CACHE, else ~/.cache/mmcourse, created if missing. It may be read-only:
    verified entries load from it, and only building a missing one (`lock`, `write`) needs write access."""
    path = Path(os.environ.get("MMCOURSE_CACHE") or Path.home() / ".cache" / "mmcourse").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(f"the model cache {path} cannot be created ({e.strerror}); set MMCOURSE_CACHE to a "
                         "writable directory") from None
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_sum(path: Path) -> None:
    """ValueError unless the entry's manifest holds the SHA-256 of its weights file."""
    if _sha256(path) != json.loads(path.with_suffix(".json").read_text())["sha256"]:
        raise ValueError("checksum mismatch")


def read_verified(path: Path, repair: bool = True) -> dict[str, torch.Tensor] | None:
    """The cached state dict, or None if absent or damaged (a wrong checksum, unreadable or non-finite weights).

    repair=True (the caller holds `lock(path)`): a damaged entry is reported and removed, so the caller rebuilds
    it. repair=False (no lock held): it is only reported as None, since a writer may be replacing it right now.
    A permission error is not damage: it raises CacheError and leaves the entry alone.
    """
    manifest = path.with_suffix(".json")
    if not path.exists() or not manifest.exists():
        return None
    try:
        _check_sum(path)
        state = load_file(path)
        if bad := _non_finite(state):
            raise ValueError(f"non-finite weights in {bad}")
        return state
    except PermissionError as e:
        raise _unreadable(path, e) from None
    except Exception as e:  # any damage: rebuild rather than load garbage
        if repair:
            warnings.warn(f"cache entry {path} is corrupt ({e}); rebuilding it", stacklevel=3)
            for p in (path, manifest):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        return None


def read_meta(path: Path) -> dict | None:
    """The `meta` dict written with the entry ({} if none), or None if the entry is absent or fails its checksum
    (it is left alone: `read_verified` under the lock decides about damage)."""
    if not path.exists() or not path.with_suffix(".json").exists():
        return None
    try:
        _check_sum(path)
        with safe_open(path, "pt") as f:
            return json.loads((f.metadata() or {}).get("meta", "{}"))
    except PermissionError as e:
        raise _unreadable(path, e) from None
    except Exception:
        return None


def _unreadable(path: Path, e: OSError) -> CacheError:
    return CacheError(f"cannot read the cache entry {path} ({e.strerror}); fix its permissions or set "
                      "MMCOURSE_CACHE to another directory")


def _non_finite(state: dict[str, torch.Tensor]) -> str:
    """The names (up to three) of the floating-point tensors that hold NaN or inf; "" when there are none."""
    return ", ".join([k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()][:3])


def write(path: Path, state: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Write weights (with `meta`, JSON-able, in the file's header) and manifest, each to a temporary file first,
    then rename weights, then manifest: a reader never sees a half-written file, and a failure (a full disk) before
    the renames leaves the old entry whole.

    Call it holding `lock(path)`: it then also removes temporary files that killed writers left behind.
    Non-finite weights are refused (ValueError) rather than cached."""
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if bad := _non_finite(state):
        raise ValueError(f"refusing to cache non-finite weights (NaN or inf in {bad})")
    seen = set()  # safetensors refuses tensors that share memory (tied weights): store each copy on its own
    for k, v in state.items():
        if v.data_ptr() in seen:
            state[k] = v.clone()
        seen.add(v.data_ptr())
    for stale in path.parent.glob(f".{path.stem}.*.tmp"):  # under the lock, only a dead writer's
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    temps = []
    try:
        for suffix in (".safetensors.tmp", ".json.tmp"):
            try:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
            except PermissionError as e:
                raise CacheError(f"the model cache {path.parent} is not writable ({e.strerror}); set MMCOURSE_CACHE "
                                 "to a writable directory") from None
            os.close(fd)
            temps.append(tmp)
        save_file(state, temps[0], metadata={"meta": json.dumps(meta)} if meta else None)
        with open(temps[1], "w") as f:
            json.dump({"sha256": _sha256(Path(temps[0]))}, f)
        os.replace(temps[0], path)
        os.replace(temps[1], path.with_suffix(".json"))
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


@contextlib.contextmanager
def lock(path: Path):
    """An exclusive inter-process lock on the file `path` (flock on POSIX; elsewhere atomic writes alone keep
    files whole)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    try:  # never follow a symlink (opening one for writing would touch its target), never truncate
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as e:
        raise CacheError(f"cannot lock {path} ({e.strerror}): the model cache must be a writable directory of "
                         "plain files; set MMCOURSE_CACHE to another directory") from None
    with os.fdopen(fd, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
