"""Environment check: `python -m mmcourse.doctor` (and the first cell of chapter 00).

Prints what the course runs on -- Python, torch, torchvision, ipywidgets, JupyterLab and their supported ranges,
the device found with a one-second matmul speed, the model cache, the widgets frontend -- each OK, WARN or FAIL.
Paste its output into a bug report.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import sys
import tempfile
import time

import torch

from mmcourse.cache import cache_dir
from mmcourse.utils import get_device

__all__ = ["RANGES", "Check", "checks", "report", "main"]

RANGES = {  # package -> (lowest supported, lowest unsupported or None): what pyproject.toml declares
    "python": ((3, 10), None),
    "torch": ((2, 4), None),
    "torchvision": ((0, 19), None),
    "ipywidgets": ((7, 6), None),
    "jupyterlab": ((4, 0), None),
}


class Check:
    """One line of the report: a name, a value, and OK / WARN / FAIL with a reason."""

    def __init__(self, name: str, value: str, status: str = "OK", why: str = ""):
        self.name, self.value, self.status, self.why = name, value, status, why

    def __str__(self) -> str:
        return f"{self.status:>4}  {self.name:<22} {self.value}" + (f"  ({self.why})" if self.why else "")


def _version(text: str) -> tuple[int, ...]:
    """"2.14.1+cpu" -> (2, 14, 1); "2.9.0rc1" -> (2, 9, 0): the leading number of each of the first three parts."""
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def _range_check(name: str, version: str | None, required: bool) -> Check:
    low, high = RANGES[name]
    wanted = f">= {'.'.join(map(str, low))}" + (f", < {'.'.join(map(str, high))}" if high else "")
    if version is None:
        return Check(name, "not installed", "FAIL" if required else "WARN",
                     f"needed {wanted}" if required else f"only for the lab: pip install 'mmcourse[lab]' ({wanted})")
    ok = _version(version) >= low and (high is None or _version(version) < high)
    return Check(name, version, "OK" if ok else "FAIL", "" if ok else f"supported: {wanted}")


def _installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _speed(device: torch.device, seconds: float = 1.0) -> float:
    """GFLOP/s of 512 x 512 float32 matmuls on `device` for about `seconds`."""
    a = torch.randn(512, 512, device=device)
    b = torch.randn(512, 512, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    (a @ b).sum().item()  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
        if n % 16 == 0:
            sync()
    sync()
    return n * 2 * 512**3 / (time.perf_counter() - start) / 1e9


def checks(speed_seconds: float = 1.0) -> list[Check]:
    """Every check, in report order."""
    out = [_range_check("python", platform.python_version(), True)]
    for name, required in [("torch", True), ("torchvision", True), ("ipywidgets", True), ("jupyterlab", False)]:
        out.append(_range_check(name, _installed(name), required))
    device = get_device()
    gflops = _speed(device, speed_seconds) if speed_seconds > 0 else float("nan")
    speed = f", matmul {gflops:.0f} GFLOP/s" if speed_seconds > 0 else ""
    out.append(Check("device", f"{device} ({torch.get_num_threads()} CPU threads){speed}"))
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache):
            pass
        out.append(Check("model cache", str(cache)))
    except OSError as error:
        out.append(Check("model cache", str(cache), "FAIL", f"not writable: {error.strerror}; set MMCOURSE_CACHE"))
    if "google.colab" in sys.modules:
        out.append(Check("widgets frontend", "Colab (built in)"))
    elif _installed("jupyterlab_widgets"):
        out.append(Check("widgets frontend", f"jupyterlab_widgets {_installed('jupyterlab_widgets')}"))
    else:
        out.append(Check("widgets frontend", "jupyterlab_widgets not installed", "WARN",
                         "sliders will not draw in JupyterLab: pip install 'ipywidgets>=7.6'"))
    return out


def report(speed_seconds: float = 1.0) -> tuple[str, bool]:
    """The report's text, and whether every required part is fine (no FAIL)."""
    found = checks(speed_seconds)
    ok = all(c.status != "FAIL" for c in found)
    lines = [f"mmcourse environment check ({platform.platform()}, {os.cpu_count()} CPUs)", *map(str, found),
             "all required parts are fine" if ok else "a line above says FAIL: fix it before running the course"]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmcourse.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="skip the speed measurement")
    args = parser.parse_args(argv)
    text, ok = report(0.0 if args.short else 1.0)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
