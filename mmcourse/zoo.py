"""Load if cached, else train now: trained models shared between chapters.

A recipe is registered with `@recipe(name, version)`: a function returning `(model, train)`, where `model` is the
freshly built module and `train(model)` trains it in place, deterministically. `load(name)` returns the trained model,
from the cache when a verified copy is there, otherwise by training it now and caching the result. A chapter that
trains a recipe's model in view (with its progress bar and curves) hands the result over with `save(name, model)`,
so that later chapters load it instead of training it again.

The cache (`$MMCOURSE_CACHE`, default `~/.cache/mmcourse`) holds `<name>-v<version>.safetensors` plus a `.json`
manifest with the file's SHA-256. Files are written to a temporary name and renamed (never half-written); a file
whose checksum does not match is reported and rebuilt; a lock file keeps two processes (two notebooks, pytest-xdist
workers) from training the same entry at once: the second waits and then loads what the first wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

__all__ = ["recipe", "load", "save", "cache_dir", "cached_path", "CacheError"]


class CacheError(RuntimeError):
    """The cache directory cannot be used."""


@dataclass
class _Recipe:
    name: str
    version: int
    make: Callable[[], tuple[torch.nn.Module, Callable[[torch.nn.Module], None]]]


_RECIPES: dict[str, _Recipe] = {}


def recipe(name: str, version: int = 1):
    """Register `make() -> (model, train)` under `name`. Bump `version` whenever the model or its training changes."""

    def deco(make):
        _RECIPES[name] = _Recipe(name, version, make)
        return make

    return deco


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


def cached_path(name: str) -> Path:
    r = _get(name)
    return cache_dir() / f"{r.name}-v{r.version}.safetensors"


def load(name: str, device: str | torch.device = "cpu", verbose: bool = True) -> torch.nn.Module:
    """The trained model `name` in eval mode on `device`: from the cache if verified, else trained now and cached."""
    r = _get(name)
    path = cached_path(name)
    model, train = r.make()
    state = _read_verified(path)
    if state is None:
        with _lock(path.with_suffix(".lock")):
            state = _read_verified(path)  # another process may have finished it while we waited
            if state is None:
                if verbose:
                    print(f"zoo: training {name} (v{r.version}) now; later loads come from {path.parent}")
                train(model)
                _write(path, model.state_dict())
                return model.to(device).eval()
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # the recipe changed its model but not its version: never load mismatched weights
        warnings.warn(f"zoo: cache entry {path} does not fit the {name} recipe ({str(e).splitlines()[0]}); "
                      f"rebuilding it — bump the recipe's version when you change its model", stacklevel=2)
        path.unlink(missing_ok=True)
        return load(name, device, verbose)
    if verbose:
        print(f"zoo: loaded {name} (v{r.version}) from {path}")
    return model.to(device).eval()


def save(name: str, model: torch.nn.Module) -> Path:
    """Cache `model` as the entry `name`; returns its path. Only for a model trained by that recipe's own training
    (e.g. the chapter that owns the recipe, training it in view): later `load(name)` calls return these weights.

    The weights must fit the recipe's model (same keys and shapes), else ValueError names the difference."""
    r = _get(name)
    try:
        r.make()[0].load_state_dict(model.state_dict())
    except RuntimeError as e:
        raise ValueError(f"zoo.save: this model does not fit the {name!r} recipe: {e}") from None
    path = cached_path(name)
    with _lock(path.with_suffix(".lock")):
        _write(path, model.state_dict())
    return path


def _get(name: str) -> _Recipe:
    from . import models  # noqa: F401  (models register their recipes on import)

    if name not in _RECIPES:
        raise KeyError(f"unknown zoo entry {name!r}; known: {', '.join(sorted(_RECIPES)) or 'none'}")
    return _RECIPES[name]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_verified(path: Path) -> dict[str, torch.Tensor] | None:
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
        warnings.warn(f"zoo: cache entry {path} is corrupt ({e}); rebuilding it", stacklevel=3)
        for p in (path, manifest):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return None


def _write(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Write weights then manifest, each atomically; the manifest (written last) marks the entry complete."""
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
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
def _lock(path: Path):
    """An exclusive inter-process lock (flock on POSIX; on other systems, atomic writes alone keep files whole)."""
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
