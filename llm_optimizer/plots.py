"""Pictures of the data, the loss landscape and a run."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data import Dataset
from .regression import closed_form, mse


def plot_data(ax, dataset: Dataset, lines: dict[str, tuple[float, float]] | None = None):
    """Scatter the points and draw each named line ``{label: (w, b)}``."""
    ax.scatter(dataset.x, dataset.y, color="black", s=18, zorder=3, label="data")
    xs = np.linspace(dataset.x.min(), dataset.x.max(), 100)
    for label, (w, b) in (lines or {}).items():
        ax.plot(xs, w * xs + b, label=f"{label}: y = {w:.3g}x + {b:.3g}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(fontsize="small")
    return ax


def landscape(dataset: Dataset, *, extent: tuple[float, float, float, float] | None = None,
              size: int = 121, loss=mse):
    """Grid ``(W, B, L)`` of the loss around the best line; ``extent`` is (w0, w1, b0, b1)."""
    if extent is None:
        w, b = closed_form(dataset.x, dataset.y)
        span = max(3.0, abs(w), abs(b))
        extent = (w - span, w + span, b - span, b + span)
    W, B = np.meshgrid(np.linspace(*extent[:2], size), np.linspace(*extent[2:], size))
    return W, B, loss(W, B, dataset.x, dataset.y)


def plot_landscape(ax, dataset: Dataset, *, extent=None, loss=mse, levels: int = 20):
    """Contours of the (log) loss over (w, b), with the least-squares answer marked."""
    W, B, L = landscape(dataset, extent=extent, loss=loss)
    contour = ax.contourf(W, B, np.log10(L), levels=levels, cmap="viridis")
    ax.figure.colorbar(contour, ax=ax, label="log10 loss")
    w, b = closed_form(dataset.x, dataset.y)
    ax.plot(w, b, marker="*", color="red", markersize=14, linestyle="none", label="least squares")
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    return ax


def plot_path(ax, frame: pd.DataFrame, *, label: str = "path", **style):
    """Draw a sequence of ``(w, b)`` points (a gradient-descent trajectory, say)."""
    ax.plot(frame["w"], frame["b"], marker=".", label=label, **style)
    ax.legend(fontsize="small")
    return ax


def plot_proposals(ax, history: pd.DataFrame):
    """Scatter every scored proposal on the (w, b) plane, coloured by step.

    Points outside the axes' current limits are left out of view, not dropped:
    the count is written in the title.
    """
    ok = history[history["parsed"] & np.isfinite(history["loss"].astype(float))]
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    inside = ok["w"].between(x0, x1) & ok["b"].between(y0, y1)
    points = ax.scatter(ok["w"], ok["b"], c=ok["step"], cmap="autumn", s=16,
                        edgecolors="black", linewidths=0.3, zorder=3)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.figure.colorbar(points, ax=ax, label="step")
    outside = int((~inside).sum())
    ax.set_title(f"proposals ({outside} outside this view)" if outside else "proposals")
    return ax


def plot_loss(ax, history: pd.DataFrame, *, label: str = "proposals"):
    """Loss of every proposal (log scale, outliers included) and the best so far."""
    ok = history[history["parsed"] & np.isfinite(history["loss"].astype(float))]
    evaluation = np.arange(1, len(ok) + 1)
    loss = ok["loss"].astype(float).clip(lower=1e-12)
    ax.scatter(evaluation, loss, s=10, alpha=0.5, label=label)
    ax.plot(evaluation, np.minimum.accumulate(loss), color="black", label="best so far")
    ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    return ax


def view_of(points: pd.DataFrame, dataset: Dataset, *, share: float = 0.9):
    """An extent (w0, w1, b0, b1) holding the least-squares answer and the central
    ``share`` of ``points``, so that a few far outliers do not shrink the picture."""
    w, b = closed_form(dataset.x, dataset.y)
    tail = (1 - share) / 2
    ws = np.append(points["w"].quantile([tail, 1 - tail]).to_numpy(), w)
    bs = np.append(points["b"].quantile([tail, 1 - tail]).to_numpy(), b)
    pad_w = max(1.0, 0.15 * np.ptp(ws))
    pad_b = max(1.0, 0.15 * np.ptp(bs))
    return (ws.min() - pad_w, ws.max() + pad_w, bs.min() - pad_b, bs.max() + pad_b)


def plot_run(run, dataset: Dataset, *, figure=None):
    """Three panels: data with the best line, loss per evaluation, proposals on the landscape.

    Draws on ``figure`` if given (a ``matplotlib.figure.Figure`` is safe to draw
    from a background thread), else on a new pyplot figure.
    """
    fig = figure if figure is not None else plt.figure(figsize=(16, 4.5))
    axes = fig.subplots(1, 3)
    best = run.best
    plot_data(axes[0], dataset, {"best found": (best.w, best.b),
                                 "least squares": closed_form(dataset.x, dataset.y)})
    axes[0].set_title(f"{run.settings['model']}: best loss {best.loss:.3g}")
    plot_loss(axes[1], run.history)
    replies = int((run.history["step"] > 0).sum())
    axes[1].set_title(f"{run.n_failed} of {replies} replies had no pair")
    plot_landscape(axes[2], dataset, extent=view_of(run.scored, dataset))
    plot_proposals(axes[2], run.history)
    fig.tight_layout()
    return fig
