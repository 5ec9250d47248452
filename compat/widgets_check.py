"""The kernel side of the course's widgets, under whatever ipywidgets / torch this interpreter has.

Run by compat/run.sh in each compatibility environment (ipywidgets 7.7.1 in `colab`): without a browser, it

1. builds each interactive helper of `mmcourse.viz` (every `*_explorer`) with tiny inputs, and
2. executes the widget cells of the lecture notebooks (notebooks/NN_*.py: a cell that calls `widgets.X(...)` or an
   `*_explorer(...)`) as they are, after the notebook's own imports, with small stand-ins for what earlier cells
   computed (trained models, data sets): mmcourse.dev.widget_cells,

then sets a new value on every control of each widget (slider, dropdown, text box) and asserts that the output was
redrawn, that it changed, and that nothing raised. It runs inside an IPython shell (as a notebook kernel does), so an
exception inside a callback, which ipywidgets reports through the shell rather than raising, still counts.
Prints one line per widget and exits 1 if any failed.
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
import traceback
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("TQDM_DISABLE", "1")

import IPython.display  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# --- what the widgets show: every display() call, and every exception the shell is asked to show -----------------
shown: list = []
errors: list = []


def _display(*objs, **kwargs):
    shown.extend(objs)


def _showtraceback(exc_tuple=None, *args, **kwargs):
    exc = exc_tuple if exc_tuple is not None else sys.exc_info()
    errors.append(exc)
    traceback.print_exception(*exc)


shell = InteractiveShell.instance()  # get_ipython() is now a shell, as in a kernel
shell.showtraceback = _showtraceback
IPython.display.display = _display  # the helpers import it when called, the notebooks' imports below get this one
IPython.display.clear_output = lambda wait=False: None  # outside a kernel it would print terminal escape codes

import ipywidgets as widgets  # noqa: E402

from mmcourse.dev.widget_cells import lectures, setup_source, tiny_vit, widget_cells  # noqa: E402

CONTROLS = (widgets.IntSlider, widgets.FloatSlider, widgets.Dropdown, widgets.Text)


def _fingerprint(obj) -> tuple:
    """What a displayed object shows: a figure's titles and image data; anything else, its repr."""
    if isinstance(obj, Figure):
        parts = [obj._suptitle.get_text() if obj._suptitle is not None else ""]
        for ax in obj.axes:
            parts.append(ax.get_title())
            for im in ax.images:
                parts.append(hashlib.md5(np.ascontiguousarray(np.asarray(im.get_array())).tobytes()).hexdigest())
        return tuple(parts)
    return (repr(obj),)


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def _state(root) -> tuple:
    """(number of displays so far, what the last one showed, the values of the HTML widgets in the tree)."""
    html = tuple(w.value for w in _walk(root) if isinstance(w, widgets.HTML))
    return len(shown), (_fingerprint(shown[-1]) if shown else None), html


def _new_value(control):
    if isinstance(control, widgets.IntSlider):
        return ("value", control.max if control.value != control.max else control.min)
    if isinstance(control, widgets.FloatSlider):
        return ("value", control.min if control.value > (control.min + control.max) / 2 else control.max)
    if isinstance(control, widgets.Dropdown):  # another option (not the first when we can: it is often the default)
        n = len(control.options)
        return ("index", 1 if control.index != 1 and n > 1 else 0)
    if isinstance(control, widgets.Text):
        return ("value", "a green triangle above a red square" if control.value != "a green triangle above a red "
                "square" else "a blue circle")
    raise TypeError(type(control))


def drive(name: str, build) -> bool:
    """Build the widget, then change each control in turn; True if every change redrew a different output."""
    del errors[:]
    try:
        root = build()
    except Exception:
        traceback.print_exc()
        print(f"  FAIL {name}: building the widget raised")
        return False
    problems = []
    if not isinstance(root, widgets.Widget):
        problems.append(f"returned {type(root).__name__}, not a widget")
    elif errors:
        problems.append(f"first draw raised {errors[0][0].__name__}: {errors[0][1]}")
    controls = [w for w in _walk(root) if isinstance(w, CONTROLS)] if isinstance(root, widgets.Widget) else []
    if isinstance(root, widgets.Widget) and not controls:
        problems.append("no controls found")
    done = []
    for control in controls:
        del errors[:]
        before = _state(root)
        attr, value = _new_value(control)
        label = f"{type(control).__name__}({control.description!r}).{attr}={value!r}"
        try:
            setattr(control, attr, value)
        except Exception as error:
            traceback.print_exc()
            problems.append(f"{label} raised {type(error).__name__}: {error}")
            continue
        after = _state(root)
        if errors:
            problems.append(f"{label}: the callback raised {errors[0][0].__name__}: {errors[0][1]}")
        elif after == before or (after[0] == before[0] and after[2] == before[2]):
            problems.append(f"{label}: nothing was redrawn")
        elif after[1:] == before[1:]:
            problems.append(f"{label}: redrawn, but the output did not change")
        else:
            done.append(label)
    if problems:
        print(f"  FAIL {name}: " + "; ".join(problems))
        return False
    print(f"  OK   {name}: {len(done)} controls changed, output redrawn each time ({', '.join(done)})")
    return True


# --- 1. the helpers of mmcourse.viz --------------------------------------------------------------------------------
def helper_attention_explorer():
    from mmcourse.viz import attention_explorer

    return attention_explorer(tiny_vit(), torch.rand(3, 3, 16, 16))


def helper_text_image_explorer():
    from mmcourse.viz import text_image_explorer

    def score(index, text):
        words = text.split()
        torch.manual_seed(index * 1000 + len(text))
        return float(torch.rand(())), words, torch.rand(len(words), 4, 4)

    return text_image_explorer(torch.rand(3, 3, 16, 16), score, "a red circle")


HELPERS = {"attention_explorer": helper_attention_explorer, "text_image_explorer": helper_text_image_explorer}


# --- 2. the lectures' widget cells, after their imports and stand-ins (mmcourse.dev.widget_cells) -----------------
def notebook_cell(path: Path, cell: str):
    def build():
        namespace = {"__name__": "__main__"}
        exec(compile(setup_source(path), f"{path.name}:imports and stand-ins", "exec"), namespace)
        tree = ast.parse(cell)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, f"{path.name}:widget cell", "exec"), namespace)
        if last is None:
            raise ValueError("the widget cell does not end with an expression (the widget it shows)")
        return eval(compile(ast.Expression(last.value), f"{path.name}:widget cell", "eval"), namespace)

    return build


def main() -> int:
    import mmcourse.viz

    print(f"widgets check: ipywidgets {widgets.__version__}, torch {torch.__version__}, "
          f"python {sys.version.split()[0]}")
    results = {}
    explorers = sorted(n for n in dir(mmcourse.viz) if n.endswith("_explorer"))
    for name in explorers:
        if name not in HELPERS:
            print(f"  FAIL mmcourse.viz.{name}: no driver for this helper (add one to compat/widgets_check.py)")
            results[name] = False
            continue
        results[name] = drive(f"mmcourse.viz.{name}", HELPERS[name])
    for path in lectures():
        for i, cell in enumerate(widget_cells(path)):
            name = f"notebooks/{path.name} widget cell {i + 1}"
            results[name] = drive(name, notebook_cell(path, cell))
    ok = sum(results.values())
    print(f"widgets: {ok}/{len(results)} OK")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
