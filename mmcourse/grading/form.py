"""A self-quiz form: registered quiz questions as core widgets (ipywidgets 7 and 8), each graded by its check as
soon as it is answered, its explanation shown once right, the score kept up to date.

    quiz_form(["12.quiz_align", "12.quiz_fusion"])   # display it as a notebook cell's last line
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from mmcourse.grading.core import Exercise, Mismatch, registered

__all__ = ["verdict", "quiz_form"]


def verdict(ex: Exercise, given) -> tuple[bool, str]:
    """Grade one answer to the quiz `ex`: (right, what to show): the explanation when right, why not when wrong."""
    if ex.kind != "quiz":
        raise ValueError(f"{ex.name} is not a quiz (it is a {ex.kind} exercise): check it with check()")
    try:
        ex.test(given)
    except Mismatch as m:
        return False, "✗ " + m.report()
    return True, "✓ right. " + ex.explanation


def quiz_form(names: Sequence[str]):
    """A VBox: per quiz a question, a control (a dropdown of its choices, or a text box for a number, graded on
    Enter) and its feedback; the score at the end."""
    import ipywidgets as widgets

    known = registered()
    unknown = [n for n in names if n not in known or known[n].kind != "quiz"]
    if isinstance(names, str) or not names or unknown:
        raise ValueError(f"names: expected a list of registered quizzes, got {names!r}"
                         + (f" ({', '.join(map(repr, unknown))} is not one)" if unknown else ""))
    right: dict[str, bool] = {}
    score = widgets.HTML(f"<b>score: 0 / {len(names)}</b>")
    rows = []
    for k, name in enumerate(names, 1):
        ex = known[name]
        if ex.choices:
            control = widgets.Dropdown(options=[("choose an answer", None)]
                                       + [(f"({c}) {text}", c) for c, text in ex.choices.items()],
                                       value=None, layout=widgets.Layout(width="95%"))
        else:
            control = widgets.Text(placeholder="a number, then Enter", continuous_update=False)
        feedback = widgets.HTML()

        def grade(change, ex=ex, feedback=feedback):
            given = change["new"]
            if given is None or given == "":
                return
            if not ex.choices:
                try:
                    given = float(given)
                except ValueError:
                    feedback.value = html.escape(f"✗ {given!r} is not a number")
                    return
            right[ex.name], message = verdict(ex, given)
            feedback.value = "<span style='white-space: pre-wrap'>" + html.escape(message) + "</span>"
            score.value = f"<b>score: {sum(right.values())} / {len(names)}</b>"

        control.observe(grade, names="value")
        rows.append(widgets.VBox([widgets.HTML(f"<b>{k}.</b> {html.escape(ex.summary)}"), control, feedback]))
    return widgets.VBox([*rows, score])
