"""Small utilities every chapter uses: seeding, device choice, input validation.

Seeding, one scheme for the whole course: every random draw comes from `make_generator(seed, stream)`, a CPU
generator derived from a seed and a stream name ("scenes", "render", "batches/3", ...), so that two uses of one seed
never share numbers and adding a new stream never shifts an old one. `python_rng` is the same for `random.Random`
(choices among strings); `seed_everything` seeds the global generators that module initialisation draws from.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import random

import numpy as np
import torch

__all__ = ["make_generator", "python_rng", "seed_everything", "get_device", "check_device", "check_tensor",
           "check_number", "check_sizes", "check_token_id", "describe"]


def make_generator(seed: int | torch.Generator, stream: str = "") -> torch.Generator:
    """A CPU generator for `seed`; each named `stream` gets independent numbers from the same seed.

    A generator passed in is returned unchanged (the caller owns its state).
    """
    if isinstance(seed, torch.Generator):
        return seed
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def python_rng(seed: int | torch.Generator, stream: str = "") -> random.Random:
    """A `random.Random` seeded from `make_generator(seed, stream)`, for choices among strings."""
    return random.Random(int(torch.randint(2**62, (1,), generator=make_generator(seed, stream))))


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: cuda, then mps, then cpu.

    `prefer` (or the MMCOURSE_DEVICE environment variable) forces one, e.g. "cpu".
    """
    choice = prefer or os.environ.get("MMCOURSE_DEVICE")
    if choice:
        device = check_device(choice, "prefer")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {choice!r} was asked for but CUDA is not available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"device {choice!r} was asked for but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(device, name: str) -> torch.device:
    """`device` (a name such as "cpu" or "cuda:0", or a torch.device) as a torch.device, or an error naming `name`."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name}: expected a device name such as 'cpu' or 'cuda', got {describe(device)}")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(f"{name}: unknown device {device!r}; expected e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'") from None


def describe(x) -> str:
    """A short human description of a value: tensors as `Tensor(shape=(2, 3), dtype=float32)`."""
    if isinstance(x, torch.Tensor):
        return f"Tensor(shape={tuple(x.shape)}, dtype={str(x.dtype).removeprefix('torch.')})"
    if isinstance(x, np.ndarray):
        return f"ndarray(shape={x.shape}, dtype={x.dtype})"
    return f"{type(x).__name__} {x!r}"[:120]


def check_tensor(x, name: str, shape: tuple | None = None, dtype=None, ndim: int | None = None) -> None:
    """Raise a clear error unless `x` is a tensor of the expected rank, shape and dtype kind.

    `shape` may contain None (any size) or strings (a named size, e.g. "B"); only ints are checked.
    `dtype` may be a torch dtype or "float" / "int" for any floating / integer type.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {describe(x)}")
    want_ndim = len(shape) if shape is not None else ndim
    if want_ndim is not None and x.ndim != want_ndim:
        spec = _shape_str(shape) if shape is not None else f"{want_ndim} dims"
        raise ValueError(f"{name}: expected shape {spec}, got {tuple(x.shape)}")
    if shape is not None:
        for want, got in zip(shape, x.shape):
            if isinstance(want, int) and want != got:
                raise ValueError(f"{name}: expected shape {_shape_str(shape)}, got {tuple(x.shape)}")
    if dtype == "float" and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if dtype == "int" and (x.is_floating_point() or x.is_complex() or x.dtype == torch.bool):
        raise TypeError(f"{name}: expected an integer tensor, got dtype {x.dtype}")
    if isinstance(dtype, torch.dtype) and x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {x.dtype}")


def check_number(x, name: str, *, integer: bool = False, low: float | None = None, high: float | None = None,
                 low_open: bool = False):
    """Return x if it is a finite real number (an int when `integer`; bools refused) in [low, high] (low itself
    excluded when low_open); else raise a TypeError / ValueError naming the argument, what it must be and what came."""
    kind = "an int" if integer else "a number"
    ok_type = isinstance(x, numbers.Integral) if integer else isinstance(x, numbers.Real)
    if isinstance(x, bool) or not ok_type:
        raise TypeError(f"{name}: expected {kind}, got {describe(x)}")
    if not math.isfinite(x):
        raise ValueError(f"{name}: expected a finite number, got {x}")
    if (low is not None and (x < low or (low_open and x == low))) or (high is not None and x > high):
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"<= {high:g}"
        raise ValueError(f"{name}: expected {kind} {' and '.join(b for b in (lo, hi) if b)}, got {x}")
    return x


def check_sizes(**sizes) -> None:
    """Raise a clear error unless every size given as name=value is an int >= 1."""
    for name, value in sizes.items():
        check_number(value, name, integer=True, low=1)


def check_token_id(token, name: str, vocab_size: int) -> None:
    """Raise a clear error unless `token` is an int id of a vocabulary of `vocab_size` tokens."""
    if isinstance(token, bool) or not isinstance(token, numbers.Integral) or not 0 <= token < vocab_size:
        raise ValueError(f"{name} must be a token id in [0, {vocab_size}), got {token!r}")


def _shape_str(shape) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
