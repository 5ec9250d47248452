"""Load if cached, else train now: the trained models that chapters share.

Each shared model has a recipe module in `mmcourse.recipes` (its data, hyper-parameters, training, evaluation) that
defines `VERSION`, `build()` (the untrained model, deterministic) and `train(model)` (trains it in place,
deterministically, and may return its `History`); `RECIPES` below names them. A recipe that trains on top of another
entry names it in `NEEDS`, and its `train(model, *needed)` receives those trained models. `load(name)` returns the
trained model from the cache (`mmcourse.cache`) when a verified copy is there, otherwise trains it now and caches
the result. A chapter that trains a recipe's model in view (with its progress bar and curves) hands the result over
with `save(name, model, history)`, so that later chapters load it instead of training it again. The entry keeps
the training's `History` (loss curve, evaluations, seconds) when there is one: `history(name)` shows the curves of
a model trained elsewhere. Bump a recipe's VERSION whenever its model or its training changes: entries are stored
as `<name>-v<version>.safetensors`.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mmcourse import cache
from mmcourse.train import History
from mmcourse.utils import check_number

__all__ = ["RECIPES", "Recipe", "register", "recipe", "load", "save", "history", "cached_path"]

RECIPES = {  # entry name -> recipe module
    "clip-tiny": "mmcourse.recipes.clip_tiny",
    "tiny-lm": "mmcourse.recipes.tiny_lm",
    "video-tokenizer": "mmcourse.recipes.video_tokenizer",
    "videobert-tiny": "mmcourse.recipes.videobert_tiny",
    "unclip-tiny": "mmcourse.recipes.unclip_tiny",
    "judge-tiny": "mmcourse.recipes.judge_tiny",
    "avsr-tiny": "mmcourse.recipes.avsr_tiny",
    "llava-tiny": "mmcourse.recipes.assistant_tiny",
}


@dataclass(frozen=True)
class Recipe:
    name: str
    version: int
    build: Callable[[], torch.nn.Module]
    train: Callable[..., History | None]  # train(model, *the trained models of `needs`)
    needs: tuple[str, ...] = ()


_EXTRA: dict[str, Recipe] = {}
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*")  # a file name: no "/", no ".."


def register(name: str, version: int, build: Callable[[], torch.nn.Module],
             train: Callable[..., History | None], needs: tuple[str, ...] = ()) -> Recipe:
    """Add a recipe that is not one of the course's modules (your own model, a test's toy); `train(model, *needed)`
    receives the trained entries that `needs` names."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"zoo entry names are lower-case letters, digits, '-', '_' and '.', starting with a letter "
                         f"or digit (they become file names in the cache), got {name!r}")
    check_number(version, "version", integer=True, low=0)
    _EXTRA[name] = Recipe(name, version, build, train, tuple(needs))
    return _EXTRA[name]


def recipe(name: str) -> Recipe:
    """The entry `name`: its version, build, train and the entries it needs (KeyError listing the known ones)."""
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in RECIPES:
        known = sorted({*RECIPES, *_EXTRA})
        raise KeyError(f"unknown zoo entry {name!r}; known: {', '.join(known)}")
    module = importlib.import_module(RECIPES[name])
    return Recipe(name, module.VERSION, module.build, module.train, getattr(module, "NEEDS", ()))


def cached_path(name: str) -> Path:
    r = recipe(name)
    return cache.cache_dir() / f"{r.name}-v{r.version}.safetensors"


def load(name: str, device: str | torch.device = "cpu", verbose: bool = True) -> torch.nn.Module:
    """The trained model `name` in eval mode on `device`: from the cache if verified, else trained now and cached."""
    r = recipe(name)
    path = cached_path(name)
    model = r.build()
    state = cache.read_verified(path, repair=False)  # without the lock: a writer may be replacing it right now
    if state is None:
        with cache.lock(path.with_suffix(".lock")):
            state = cache.read_verified(path)  # another process may have finished it while we waited
            if state is None:
                if verbose:
                    print(f"zoo: training {name} (v{r.version}) now; later loads come from {path.parent}")
                needed = [load(n, device="cpu", verbose=verbose) for n in r.needs]
                cache.write(path, model.state_dict(), _meta(r.train(model, *needed)))
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


def save(name: str, model: torch.nn.Module, history: History | None = None) -> Path:
    """Cache `model` (and its training's `history`) as the entry `name`; returns its path. Only for a model trained
    by that recipe's own training (e.g. the chapter that owns the recipe, training it in view): later `load(name)`
    calls return these weights.

    ValueError when the weights do not fit the recipe's model (it names the difference), are still the recipe's
    initialisation (an untrained model) or hold NaN / inf."""
    r = recipe(name)
    fresh = r.build()
    initial = {k: v.clone() for k, v in fresh.state_dict().items()}
    try:
        fresh.load_state_dict(model.state_dict())
    except RuntimeError as e:
        raise ValueError(f"zoo.save: this model does not fit the {name!r} recipe: {e}") from None
    if all(torch.equal(v.detach().cpu(), initial[k]) for k, v in model.state_dict().items()):
        raise ValueError(f"zoo.save: this {name!r} model is untrained (its weights are the recipe's "
                         "initialisation); train it first")
    path = cached_path(name)
    with cache.lock(path.with_suffix(".lock")):
        cache.write(path, model.state_dict(), _meta(history))
    return path


def history(name: str) -> History | None:
    """The training record of the cached entry `name`, or None when the cache has no verified entry or the entry
    was saved without one. Trains nothing."""
    meta = cache.read_meta(cached_path(name))
    if not meta or "history" not in meta:
        return None
    return History(**meta["history"])


def _meta(history: History | None) -> dict | None:
    if history is None:
        return None
    if not isinstance(history, History):
        raise TypeError(f"history: expected the History that fit returned, got {type(history).__name__}")
    evals = [{k: float(v) if k != "step" else int(v) for k, v in e.items()} for e in history.evals]  # tensors too
    return {"history": {"loss": history.loss, "evals": evals, "seconds": history.seconds}}
