"""The package's layers (shared/COURSE.md, "mmcourse: the shape we want"), stated once and enforced.

A module imports only from lower layers or from its own package; `INDEPENDENT` lists lower layers that a package
must not import all the same (a model is told its special token ids, it does not look them up in the data); and
no import loop exists anywhere. A new module must be placed in a layer here before the tests pass.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mmcourse

LAYERS = [  # lowest first
    ["mmcourse", "mmcourse.utils"],  # the root package imports nothing
    ["mmcourse.cache"],
    ["mmcourse.data"],
    ["mmcourse.nn"],
    ["mmcourse.losses", "mmcourse.metrics"],
    ["mmcourse.models"],
    ["mmcourse.train", "mmcourse.distributed", "mmcourse.strategies"],
    ["mmcourse.recipes"],
    ["mmcourse.zoo"],
    ["mmcourse.viz", "mmcourse.results"],
    ["mmcourse.grading"],
    ["mmcourse.dev", "mmcourse.doctor"],
]
INDEPENDENT = {  # package -> lower packages it must never import
    "mmcourse.nn": ["mmcourse.data"],
    "mmcourse.losses": ["mmcourse.data"],
    "mmcourse.models": ["mmcourse.data"],
}

PACKAGE_DIR = Path(mmcourse.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _unit(module: str) -> str:
    """The layer entry a module belongs to: the longest prefix of LAYERS that names it or a package above it."""
    entries = [e for layer in LAYERS for e in layer
               if module == e or (e != "mmcourse" and module.startswith(e + "."))]
    if not entries:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")
    return max(entries, key=len)


def _layer(module: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if _unit(module) in layer)


def _imports(module: str) -> set[str]:
    """Every mmcourse module that `module` imports, at the top or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from ..x import y` in package a.b.c means a.b.x
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found |= {n for n in names if n in MODULES and n != module}
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        _unit(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_only(module):
    for target in sorted(GRAPH[module]):
        own_package = _unit(target) == _unit(module)
        assert own_package or _layer(target) < _layer(module), (
            f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)}): a module may import only "
            "from lower layers or its own package")
        for forbidden in INDEPENDENT.get(_unit(module), []):
            assert _unit(target) != forbidden, f"{module} imports {target}: {_unit(module)} never imports {forbidden}"


def test_no_import_loops():
    state = {}  # module -> "open" while on the current path, "done" afterwards

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                loop = path[path.index(target):] + [target]
                raise AssertionError("import loop: " + " -> ".join(loop))
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])


def test_the_rules_reject_what_they_should():
    """The checks above can fail: an upward import, a forbidden one and a loop are each caught."""
    assert _layer("mmcourse.models.clip") > _layer("mmcourse.nn.attention") > _layer("mmcourse.utils")
    assert _layer("mmcourse.zoo") > _layer("mmcourse.recipes.clip_tiny") > _layer("mmcourse.models")
    assert "mmcourse.data" in INDEPENDENT[_unit("mmcourse.nn.decoder")]
    with pytest.raises(AssertionError, match="in no layer"):
        _unit("mmcourse_extra.thing")
    saved = dict(GRAPH)
    try:
        GRAPH["mmcourse.utils"] = GRAPH["mmcourse.utils"] | {"mmcourse.nn.attention"}  # which imports utils
        with pytest.raises(AssertionError, match="imports mmcourse.nn.attention"):
            test_imports_go_down_only("mmcourse.utils")
        with pytest.raises(AssertionError, match="import loop: .*mmcourse.nn.attention -> mmcourse.utils"):
            test_no_import_loops()
        GRAPH["mmcourse.nn.decoder"] = GRAPH["mmcourse.nn.decoder"] | {"mmcourse.data.text"}
        with pytest.raises(AssertionError, match="never imports mmcourse.data"):
            test_imports_go_down_only("mmcourse.nn.decoder")
    finally:
        GRAPH.clear()
        GRAPH.update(saved)


_PROBE = """
import os, sys
import torch, numpy, matplotlib  # third-party imports are shared; only mmcourse modules are measured
for name in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        import importlib
        importlib.import_module(name)
        loaded = sorted(m for m in sys.modules if m == "mmcourse" or m.startswith("mmcourse."))
        os.write(write, (name + ":" + ",".join(loaded) + "\\n").encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        sys.stdout.write(f.read())
    os.wait()
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_importing_a_module_in_a_fresh_interpreter_loads_nothing_above_it():
    out = subprocess.run([sys.executable, "-c", _PROBE, *sorted(MODULES)], capture_output=True, text=True,
                         check=True, cwd=PACKAGE_DIR.parent, env={**__import__("os").environ, "MPLBACKEND": "Agg"})
    results = dict(line.split(":", 1) for line in out.stdout.splitlines())
    assert sorted(results) == sorted(MODULES)
    for module, loaded in results.items():
        above = [m for m in loaded.split(",") if m in MODULES and _layer(m) > _layer(module)]
        assert not above, f"importing {module} (layer {_layer(module)}) loads higher layers: {above}"
