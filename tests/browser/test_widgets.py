"""The course's interactive widgets in a real JupyterLab + Chromium: each renders, each control (slider, dropdowns,
text box) redraws the picture, and the page logs no JavaScript error and shows no 'Error displaying widget'.

A small notebook builds an untrained tiny ViT on four images (a couple of seconds) for the helpers of mmcourse.viz; the
lectures' own widget cells run as written, after small stand-ins for what their earlier cells computed. The widgets'
outputs only have to change, not be right. Every wait is bounded, and fails at once, naming them, when the page logs
an error.
Screenshots of each step: .browser-shots/test_widgets/.
"""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mmcourse.dev import widget_cells
from mmcourse.dev.notebooks import ROOT

SETUP = """\
import torch
from mmcourse.data import ShapesDataset
from mmcourse.nn import VisionTransformer
from mmcourse.viz.attention import attention_explorer, cls_attention_grid, text_image_explorer

torch.manual_seed(0)
images = ShapesDataset(4, seed=0).images
vit = VisionTransformer(image_size=32, patch_size=8, width=32, layers=2, heads=2)
with torch.no_grad():
    last = vit.eval()(images, return_attn=True).attentions[-1].mean(1)  # (B, 1 + N, 1 + N)


def score(index, text):  # a stand-in for BLIP's ITM: each word looks from its own patch
    words = text.split()
    grids = torch.stack([cls_attention_grid(last[index], query=1 + sum(map(ord, w)) % (last.shape[-1] - 1))
                         for w in words])
    return torch.sigmoid(torch.tensor(len(words) - 3.0 + index)).item(), words, grids
"""
CELLS = [SETUP, "attention_explorer(vit, images)", 'text_image_explorer(images, score, text="a red circle")']
WAIT_MS = 60_000  # for the first pictures (the kernel starts and imports torch); a redraw gets WAIT_MS / 2: generous,
# since under `make test` the other worker trains models on the same cores
# Console errors known to be harmless, as (regex, why): none so far. Add one only with the reason it is not ours.
HARMLESS: list[tuple[str, str]] = []


class Page:
    """The notebook open in Chromium, with every console error and uncaught exception the page raised."""

    def __init__(self, page, shots):
        self.page, self.shots, self.errors, self.step = page, shots, [], 0
        page.on("console", lambda m: m.type == "error" and self._error(f"console: {m.text} ({m.location})"))
        page.on("pageerror", lambda e: self._error(f"uncaught: {e}"))

    def _error(self, text: str) -> None:
        if not any(re.search(pattern, text) for pattern, _ in HARMLESS):
            self.errors.append(text)

    def problems(self) -> list[str]:
        broken = self.page.get_by_text("Error displaying widget").count()
        return self.errors + ([f"{broken} x 'Error displaying widget' on the page"] if broken else [])

    def wait(self, condition, what: str, timeout_ms: int = WAIT_MS // 2):
        """Polls `condition()` until it is truthy; fails at once when the page has logged an error, and after
        `timeout_ms` with what it waited for, the errors and a screenshot."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            if problems := self.problems():
                self.shot(f"error-{what}")
                pytest.fail(f"while waiting for {what}: " + "\n".join(problems), pytrace=False)
            if value := condition():
                return value
            if time.monotonic() > deadline:
                self.shot(f"timeout-{what}")
                pytest.fail(f"no {what} within {timeout_ms / 1000:.0f} s (page errors: none)", pytrace=False)
            self.page.wait_for_timeout(100)

    def shot(self, name: str, target=None) -> None:
        self.step += 1
        name = re.sub(r"[^\w-]+", "-", name).strip("-")[:60]
        (target or self.page).screenshot(path=str(self.shots / f"{self.step:02d}-{name}.png"))

    def cell(self, i: int):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(i)


def _img_src(cell) -> str | None:
    """The src of the picture in the cell's output (a data: URL), None while there is none (mid-redraw). Read in one
    step in the page: a count, then a read, races the redraw and would wait for an image that has gone."""
    srcs = cell.locator(".jp-OutputArea-output img").evaluate_all("imgs => imgs.map(img => img.src)")
    return srcs[0] if len(srcs) == 1 else None


def _changes(nb: Page, cell, act, what: str) -> str:
    """Does `act()`, then waits until the cell's picture is a different one; returns its src."""
    before = nb.wait(lambda: _img_src(cell), f"picture before {what}")
    act()
    after = nb.wait(lambda: (src := _img_src(cell)) not in (None, before) and src, f"new picture after {what}")
    nb.shot(what, cell)
    return after


@contextlib.contextmanager
def page_of(lab, browser, shots, name: str):
    """The notebook `name` of the lab open in a new page (bounded waits); yields the Page, closes it after."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(WAIT_MS // 2)  # Playwright's own waits (a click, a fill) are bounded too
    try:
        page = Page(context.new_page(), shots)
        page.page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}", timeout=WAIT_MS)
        yield page
    finally:
        context.close()


@contextlib.contextmanager
def opened(lab, browser, shots, cells: list[str], name: str):
    """Writes a notebook of `cells` into the lab, opens it in a new page, runs all its cells; yields the Page."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab.root / name)
    with page_of(lab, browser, shots, name) as page:
        page.wait(lambda: page.page.evaluate("""n => {
            const panel = window.jupyterapp?.shell?.currentWidget;
            return panel?.sessionContext?.session?.kernel?.status === 'idle' && panel.content?.widgets?.length === n;
        }""", len(cells)), "notebook with an idle kernel", WAIT_MS)
        page.shot(f"{name} opened")
        page.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        yield page


@pytest.fixture(scope="module")
def notebook(lab, browser, shots):
    """The test notebook open with all cells run, once both widgets show their pictures."""
    with opened(lab, browser, shots, CELLS, "widgets.ipynb") as page:
        for i in (1, 2):
            page.wait(lambda i=i: _img_src(page.cell(i)), f"picture of the widget in cell {i}", WAIT_MS)
        page.shot("ran all cells")
        yield page


def _no_errors(nb: Page) -> None:
    assert not nb.problems(), "\n".join(nb.problems())


def test_attention_explorer_redraws_for_each_control(notebook):
    nb, cell = notebook, notebook.cell(1)
    nb.shot("attention explorer", cell)
    handle = cell.locator(".noUi-handle")

    def slide():
        handle.focus()
        nb.page.keyboard.press("ArrowRight")

    _changes(nb, cell, slide, "attention: image slider to 1")
    assert cell.locator(".widget-readout").first.inner_text().strip() == "1"
    head, layer = cell.locator("select").nth(1), cell.locator("select").nth(0)
    _changes(nb, cell, lambda: head.select_option(label="head 1"), "attention: head 1")
    _changes(nb, cell, lambda: layer.select_option(label="rollout"), "attention: rollout")
    _no_errors(nb)


def test_text_image_explorer_redraws_for_slider_and_caption(notebook):
    nb, cell = notebook, notebook.cell(2)
    nb.shot("text-image explorer", cell)

    def slide():
        cell.locator(".noUi-handle").focus()
        nb.page.keyboard.press("ArrowRight")

    _changes(nb, cell, slide, "text-image: image slider to 1")
    box = cell.locator(".widget-text input")
    _changes(nb, cell, lambda: box.fill("a big blue square left of a green triangle"), "text-image: new caption")
    box.fill("  ")
    nb.wait(lambda: _img_src(cell) is None and "type a caption" in cell.inner_text(), "'type a caption' prompt")
    nb.shot("text-image: empty caption", cell)
    _no_errors(nb)


# --- the lectures' own widget cells (built with `widgets.X(...)`, not a helper above), as the lecture has them, after
# its imports and small stand-ins for what its earlier cells computed (mmcourse.dev.widget_cells) ---------------------
OWN = [py for py in widget_cells.lectures() if any(widget_cells.OWN_WIDGET.search(c)
                                                    for c in widget_cells.widget_cells(py))]


def _shown(cell) -> tuple | None:
    """What the cell's output shows: its pictures' srcs and the text of its HTML widgets; None while it shows neither
    (mid-redraw). Read in one step in the page, as `_img_src`."""
    srcs, html = cell.locator(".jp-OutputArea-output").evaluate_all("""outs => [
        outs.flatMap(o => [...o.querySelectorAll('img')].map(img => img.src)),
        outs.flatMap(o => [...o.querySelectorAll('.widget-html-content')].map(h => h.innerText))]""")
    return (tuple(srcs), tuple(html)) if srcs or any(h.strip() for h in html) else None


def _changed(cell, before: tuple) -> tuple | None:
    """What the cell shows now if it shows something other than `before`, else None."""
    now = _shown(cell)
    return now if now not in (None, before) else None


def _controls(cell) -> list[tuple[str, object]]:
    """(what, action) for every control in the cell's output: a slider one step right, a dropdown to its second option,
    a text box to a new caption (typed, then Enter)."""
    sliders, texts = cell.locator(".noUi-handle"), cell.locator(".widget-text input")
    selects = cell.locator(".jp-OutputArea-output select")

    def slide(handle):
        handle.focus()
        handle.press("ArrowRight")

    found = [(f"slider {k} one step", functools.partial(slide, sliders.nth(k))) for k in range(sliders.count())]
    found += [(f"dropdown {k} second option", functools.partial(selects.nth(k).select_option, index=1))
              for k in range(selects.count())]
    def type_in(box):  # then Enter, as a reader does: a box with continuous_update=False sends its value on Enter
        box.fill("a big blue square left of a green triangle")
        box.press("Enter")

    found += [(f"text box {k} new caption", functools.partial(type_in, texts.nth(k))) for k in range(texts.count())]
    return found


def _settled(nb: Page, cell, quiet_ms: int = 1000) -> tuple:
    """What the cell shows once it has stopped changing for `quiet_ms` (a slider whose start is off its step grid
    redraws twice: snapped to the grid, then one step on)."""
    last, since = _shown(cell), time.monotonic()
    deadline = since + WAIT_MS / 2000
    while time.monotonic() - since < quiet_ms / 1000 and time.monotonic() < deadline:
        nb.page.wait_for_timeout(100)
        if (now := _shown(cell)) != last:
            last, since = now, time.monotonic()
    return last


@pytest.mark.parametrize("py", OWN, ids=lambda p: p.stem)
def test_lecture_widget_cells_redraw_for_each_control(lab, browser, shots, py):
    cells = widget_cells.widget_cells(py)
    with opened(lab, browser, shots, [widget_cells.setup_source(py), *cells], f"{py.stem}.ipynb") as nb:
        for i in range(1, len(cells) + 1):
            cell = nb.cell(i)
            shown = nb.wait(functools.partial(_shown, cell), f"{py.stem}: output of widget cell {i}", WAIT_MS)
            nb.shot(f"{py.stem} cell {i}", cell)
            controls = _controls(cell)
            assert controls, f"{py.stem}: widget cell {i} shows no slider, dropdown or text box"
            for what, act in controls:
                act()
                nb.wait(functools.partial(_changed, cell, shown), f"{py.stem} cell {i}: new output after {what}")
                shown = _settled(nb, cell)
                nb.shot(f"{py.stem} cell {i} {what}", cell)
        _no_errors(nb)


# --- the saved lectures' media, as a reader opens them (not run): audio players and animations ---------------------
def _media(ipynb: Path) -> tuple[int, int]:
    """(audio players, animations) among the notebook's saved outputs."""
    html = [o.get("data", {}).get("text/html", "") for c in nbformat.read(ipynb, as_version=4).cells
            for o in c.get("outputs", [])]
    html = ["".join(h) if isinstance(h, list) else h for h in html]
    return sum(h.count("<audio") for h in html), sum(h.count('class="animation"') for h in html)


MEDIA = [p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) if any(_media(p))]


@pytest.mark.parametrize("ipynb", MEDIA, ids=lambda p: p.stem)
def test_saved_lecture_plays_its_audio_and_animations_offline(lab, browser, shots, ipynb):
    """Every audio player of the saved outputs is on the page, every animation advances when played, and nothing
    is fetched from the internet (a failed request is a console error: no test machine reaches a CDN)."""
    audio, animations = _media(ipynb)
    shutil.copy(ipynb, lab.root / ipynb.name)
    # Trusted, as `make lab` leaves the course's notebooks: JupyterLab runs no script of an untrusted notebook's
    # outputs, so its animations show a broken image (the audio players need no script).
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(lab.root / ipynb.name)], env=lab.env, check=True,
                   capture_output=True, timeout=60)
    with page_of(lab, browser, shots, ipynb.name) as nb:
        players = nb.page.locator(".jp-OutputArea-output .animation")
        nb.wait(lambda: players.count() == animations and nb.page.locator(".jp-OutputArea-output audio").count()
                == audio, f"{audio} audio players and {animations} animations", WAIT_MS)
        for k in range(animations):
            player = players.nth(k)
            player.scroll_into_view_if_needed()
            frame = player.locator("input[type=range]")
            start = frame.input_value()
            player.locator('button[title="Play"]').click()
            nb.wait(lambda f=frame, s=start: f.input_value() != s, f"animation {k + 1} to advance")
            nb.shot(f"{ipynb.stem} animation {k + 1} playing", player)
        _no_errors(nb)


# --- the self-quiz form (chapter 12): graded as soon as it is answered, in the browser ----------------------------
def test_quiz_form_grades_choices_and_numbers(lab, browser, shots):
    cells = ["from mmcourse.grading.form import quiz_form", 'quiz_form(["12.quiz_align", "12.quiz_tool_loss"])']
    with opened(lab, browser, shots, cells, "quiz.ipynb") as nb:
        cell = nb.cell(1)
        nb.wait(lambda: cell.locator("select").count() == 1 and cell.locator(".widget-text input").count() == 1,
                "the form's dropdown and text box", WAIT_MS)

        def says(text: str) -> bool:
            return any(text in h for h in _shown(cell)[1]) if _shown(cell) else False

        cell.locator("select").select_option(index=1)  # (a): wrong
        nb.wait(lambda: says("✗ (a) is not right"), "feedback on a wrong choice")
        cell.locator("select").select_option(index=2)  # (b): right
        nb.wait(lambda: says("✓ right.") and says("score: 1 / 2"), "explanation and score after the right choice")
        box = cell.locator(".widget-text input")
        box.fill("three")
        box.press("Enter")
        nb.wait(lambda: says("is not a number"), "feedback on a text that is not a number")
        box.fill("0")
        box.press("Enter")
        nb.wait(lambda: says("score: 2 / 2"), "the score after both right")
        nb.shot("quiz form answered", cell)
        _no_errors(nb)
