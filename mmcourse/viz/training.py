"""Training curves: the loss and the periodic evaluations that `mmcourse.train.fit` records in its History."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from mmcourse.train import History
from mmcourse.utils import check_sizes, describe

__all__ = ["plot_history"]


def plot_history(history, smooth: int = 20, metrics: Sequence[str] | None = None) -> Figure:
    """A `History`'s loss (mean over a sliding window of `smooth` steps) and its eval `metrics` (default: all of
    them), against the step."""
    if not isinstance(history, History):
        raise TypeError(f"history: expected a History (from fit), got {describe(history)}")
    check_sizes(smooth=smooth)
    if not history.loss:
        raise ValueError("plot_history: the history has no steps (was it returned by fit?)")
    fig, ax = plt.subplots(figsize=(6, 3))
    loss = torch.tensor(history.loss)
    if len(loss) >= smooth:
        loss = loss.unfold(0, smooth, 1).mean(1)
    steps = torch.arange(len(loss)) + (len(history.loss) - len(loss)) + 1
    lines = ax.plot(steps, loss, color="0.3", label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if history.evals:
        ax2 = ax.twinx()
        keys = [k for k in history.evals[0] if k != "step"] if metrics is None else list(metrics)
        if missing := [k for k in keys if k not in history.evals[0]]:
            raise ValueError(f"plot_history: no eval metric {', '.join(map(repr, missing))}; the history has "
                             f"{', '.join(repr(k) for k in history.evals[0] if k != 'step')}")
        for i, key in enumerate(keys):
            lines += ax2.plot([e["step"] for e in history.evals], [e[key] for e in history.evals], "o-", ms=3,
                              color=f"C{i + 1}", label=key)
        ax2.set_ylabel("evaluation")
    ax.legend(lines, [line.get_label() for line in lines], loc="center right", fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
