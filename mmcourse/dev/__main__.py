"""Course maintenance commands: `python -m mmcourse.dev {sync,execute,bench,results,readme,warm}`."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .. import results
from . import exercises, notebooks
from .notebooks import ROOT

README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"


def _lectures(names: list[str]) -> list[Path]:
    found = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if names:
        found = [p for p in found if any(p.name.startswith(n) or p.stem == n for n in names)]
        if not found:
            have = [p.stem for p in (ROOT / "notebooks").glob("*.ipynb")]
            sys.exit(f"no lecture notebook matches {names}; have: {have}")
    return found


def cmd_sync(args) -> None:
    written = exercises.generate_all()
    changed = notebooks.sync()
    print(f"exercises: {len(written) // 2} generated; notebooks re-synced from .py: {len(changed)}")
    for p in changed:
        print("  ", p.relative_to(ROOT))


def cmd_execute(args) -> None:
    cmd_sync(args)
    for path in _lectures(args.names):
        print(f"executing {path.relative_to(ROOT)} …", flush=True)
        seconds = notebooks.execute(path)
        print(f"  done in {seconds:.0f} s")


def cmd_bench(args) -> None:
    """Execute every lecture and solution notebook in a fresh kernel (outputs discarded) and print wall seconds."""
    import time

    from nbclient import NotebookClient

    total = 0.0
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")) + sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
    print(f"{'notebook':40s} {'seconds':>8s}")
    for py in paths:
        if args.names and not any(py.stem.startswith(n) for n in args.names):
            continue
        nb = notebooks.notebook_from_py(py)
        start = time.perf_counter()
        resources = {"metadata": {"path": str(py.parent)}}
        NotebookClient(nb, timeout=1800, kernel_name="python3", resources=resources).execute()
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{str(py.relative_to(ROOT).with_suffix('.ipynb')):40s} {seconds:8.1f}", flush=True)
    print(f"{'total':40s} {total:8.1f}")


def cmd_results(args) -> None:
    print(results.table(results.collect(ROOT / "notebooks")))


COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^/\s]+/[^/\s]+/blob/[^/\s]+/")


def readme_results_block() -> str:
    return f"{README_BEGIN}\n{results.table(results.collect(ROOT / 'notebooks'))}\n{README_END}"


def cmd_readme(args) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(README_BEGIN)
    _, found, tail = rest.partition(README_END)
    if not found:
        sys.exit(f"README.md has no {README_BEGIN} … {README_END} block")
    text = COLAB_LINK.sub(notebooks.COLAB, head + readme_results_block() + tail)  # a fork's own address
    notebooks.write_atomic(readme, text)
    print(f"README.md results table and Colab links ({notebooks.REPO}@{notebooks.REF}) updated")


def cmd_warm(args) -> None:
    """Train the named zoo entries into the cache now, on every core, unless they are there already."""
    import time

    from .. import zoo

    for name in args.names:
        start = time.perf_counter()
        zoo.load(name)
        print(f"zoo: {name} ready in {time.perf_counter() - start:.0f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mmcourse.dev", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("sync", help="generate exercises/ from solutions/ and re-sync every .ipynb from its .py")
    for name, helptext in [
        ("execute", "sync, then run lecture notebooks top to bottom and save them with outputs"),
        ("bench", "run lecture + solution notebooks and print wall seconds each (a benchmark, not a test)"),
    ]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("names", nargs="*", help="chapter prefixes, e.g. 00 01 (default: all)")
    sub.add_parser("results", help="print the results table read from the executed lecture notebooks")
    sub.add_parser("readme", help="write that table, and the Colab links of REPO @ REF, into README.md")
    warm = sub.add_parser("warm", help="train zoo entries into the cache before the tests need them")
    warm.add_argument("names", nargs="+", help="zoo entries, e.g. clip-tiny")
    args = parser.parse_args(argv)
    {"sync": cmd_sync, "execute": cmd_execute, "bench": cmd_bench, "results": cmd_results, "readme": cmd_readme,
     "warm": cmd_warm}[args.cmd](args)


if __name__ == "__main__":
    main()
