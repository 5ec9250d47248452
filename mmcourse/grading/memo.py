"""Experiment measurements kept in the cache: an answer is trained for once.

An experiment's check trains a model with the learner's choice and measures it (minutes on a CPU). `remembered`
keeps each measurement in the model cache (`mmcourse.cache`) under the function, its arguments, a fingerprint of
the package's code and torch's version, and the checksums of the zoo's models in the cache (a measurement may build
on them). Checking the same answer again — after a kernel restart, from the exercise notebook and then the
solutions, or by the tests — reads it back; a change to the code or to a cached model measures anew. A cache that
cannot be written only means measuring every time.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path

import torch

from mmcourse import cache

__all__ = ["remembered", "code_fingerprint", "source_fingerprint"]

_ARG_TYPES = (bool, int, float, str)


@functools.cache
def code_fingerprint() -> str:
    """The fingerprint of this package's source (`source_fingerprint`)."""
    return source_fingerprint(Path(__file__).resolve().parents[1])


def source_fingerprint(root: Path) -> str:
    """SHA-256 of torch's version and of every .py file under root (its path and content)."""
    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _models_fingerprint() -> str:
    """The manifests (checksums) of the models now in the cache, measurements aside."""
    manifests = sorted(p for p in cache.cache_dir().glob("*.json") if not p.name.startswith("measured-"))
    return "".join(p.name + p.read_text() for p in manifests)


def remembered(fn: Callable) -> Callable:
    """Decorator for a measurement fn(*args, **kwargs) -> a number, a dict of numbers, or a tuple of tensors, whose
    arguments are bools, ints, floats or strings: the first call measures and caches, later calls read the cache.
    Two processes asking at once measure once (the second waits for the first)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for a in (*args, *kwargs.values()):
            if not isinstance(a, _ARG_TYPES):
                raise TypeError(f"{fn.__qualname__}: a remembered measurement takes bools, numbers and strings, "
                                f"got {type(a).__name__}")
        call = f"{fn.__module__}.{fn.__qualname__}{args!r}{sorted(kwargs.items())!r}"
        key = hashlib.sha256((call + code_fingerprint() + _models_fingerprint()).encode())
        path = cache.cache_dir() / f"measured-{fn.__name__.strip('_')}-{key.hexdigest()[:20]}.safetensors"
        state = cache.read_verified(path, repair=False)  # without the lock: a writer may be replacing it
        if state is not None:
            return _unpack(state, cache.read_meta(path) or {})
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(cache.lock(path.with_suffix(".lock")))
            except cache.CacheError:  # a read-only cache: measure, keep nothing
                return fn(*args, **kwargs)
            state = cache.read_verified(path)  # another process may have measured it while we waited
            if state is not None:
                return _unpack(state, cache.read_meta(path) or {})
            value = fn(*args, **kwargs)
            cache.write(path, *_pack(value, fn.__qualname__))
            return value

    return wrapper


def _pack(value, name: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, meta) that `_unpack` turns back into value."""
    if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
        return {str(i): v for i, v in enumerate(value)}, {"kind": "tuple"}
    if isinstance(value, dict) and all(isinstance(v, (int, float)) for v in value.values()):
        return {k: torch.tensor(float(v), dtype=torch.float64) for k, v in value.items()}, {"kind": "dict"}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"value": torch.tensor(float(value), dtype=torch.float64)}, {"kind": "number"}
    raise TypeError(f"{name}: a remembered measurement returns a number, a dict of numbers or a tuple of tensors, "
                    f"got {type(value).__name__}")


def _unpack(state: dict[str, torch.Tensor], meta: dict):
    kind = meta.get("kind")
    if kind == "tuple":
        return tuple(state[str(i)] for i in range(len(state)))
    if kind == "dict":
        return {k: v.item() for k, v in state.items()}
    return state["value"].item()
