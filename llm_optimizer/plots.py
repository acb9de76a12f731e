"""Pictures of the data, the loss landscape and a run."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap

from .data import Dataset
from .regression import closed_form, mse


def line_label(w: float, b: float) -> str:
    """``y = 3.05x − 0.385``: the line's equation with its sign written properly."""
    sign = "+" if b >= 0 else "\u2212"
    return f"y = {w:.3g}x {sign} {abs(b):.3g}"


def plot_data(ax, dataset: Dataset, lines: dict[str, tuple[float, float]] | None = None):
    """Scatter the points and draw each named line ``{label: (w, b)}``."""
    ax.scatter(dataset.x, dataset.y, color="black", s=18, zorder=3, label="data")
    xs = np.linspace(dataset.x.min(), dataset.x.max(), 100)
    for label, (w, b) in (lines or {}).items():
        ax.plot(xs, w * xs + b, label=f"{label}: {line_label(w, b)}")
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


def plot_landscape(ax, dataset: Dataset, *, extent=None, loss=mse, levels: int = 20,
                   cmap: str = "viridis", colorbar: bool = True, star: str = "red"):
    """Contours of the (log) loss over (w, b), with the least-squares answer marked."""
    W, B, L = landscape(dataset, extent=extent, loss=loss)
    contour = ax.contourf(W, B, np.log10(L), levels=levels, cmap=cmap)
    if colorbar:
        ax.figure.colorbar(contour, ax=ax, label="log10 loss")
    w, b = closed_form(dataset.x, dataset.y)
    ax.plot(w, b, marker="*", markerfacecolor=star, markeredgecolor="black", markersize=16,
            linestyle="none", label="least squares", zorder=5)
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    return ax


def plot_path(ax, frame: pd.DataFrame, *, label: str = "path", **style):
    """Draw a sequence of ``(w, b)`` points (a gradient-descent trajectory, say).

    On axes that already show something (a landscape), the view stays as it was: a path
    that leaves it is cut at the edge, and the title says how many points lie outside.
    """
    keep = ax.has_data()
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    ax.plot(frame["w"], frame["b"], marker=".", label=label, **style)
    if keep:
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        inside = frame["w"].between(x0, x1) & frame["b"].between(y0, y1)
        if not inside.all():
            ax.set_title(f"{int((~inside).sum())} of {len(frame)} points outside this view")
    ax.legend(fontsize="small")
    return ax


# Dark purple to orange: no colour of this map is close to the light greys of a
# landscape drawn with ``LANDSCAPE_GREYS``, so every proposal stays visible.
STEP_COLOURS = ListedColormap(plt.get_cmap("plasma")(np.linspace(0.0, 0.8, 256)), "steps")
LANDSCAPE_GREYS = ListedColormap(plt.get_cmap("Greys")(np.linspace(0.0, 0.55, 256)), "greys")


def finite_proposals(history: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``history`` that parsed and got a finite loss."""
    return history[history["parsed"] & np.isfinite(history["loss"].astype(float))]


def plot_proposals(ax, history: pd.DataFrame, *, colorbar: bool = True,
                   title: str = "proposals"):
    """Scatter every scored proposal on the (w, b) plane, coloured by step.

    Points outside the axes' current limits are left out of view, not dropped:
    the count is written in the title.
    """
    ok = finite_proposals(history)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    inside = ok["w"].between(x0, x1) & ok["b"].between(y0, y1)
    points = ax.scatter(ok["w"], ok["b"], c=ok["step"], cmap=STEP_COLOURS, s=18,
                        edgecolors="black", linewidths=0.3, zorder=3, label="proposals")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if colorbar:
        ax.figure.colorbar(points, ax=ax, label="step of the proposal")
    outside = int((~inside).sum())
    ax.set_title(f"{title} ({outside} outside this view)" if outside else title)
    return ax


def plot_loss(ax, history: pd.DataFrame, *, label: str = "proposals"):
    """Loss of every proposal (log scale, outliers included) and the best so far."""
    ok = finite_proposals(history)
    evaluation = np.arange(1, len(ok) + 1)
    loss = ok["loss"].astype(float).clip(lower=1e-12)
    ax.scatter(evaluation, loss, s=10, alpha=0.5, label=label)
    ax.plot(evaluation, np.minimum.accumulate(loss), color="black", label="best so far")
    ax.set_yscale("log")
    ax.set_xlabel("evaluation")
    ax.set_ylabel("loss")
    ax.legend(fontsize="small")
    return ax


def view_of(points: pd.DataFrame, dataset: Dataset, *, share: float = 0.9,
            include: pd.DataFrame | None = None):
    """An extent (w0, w1, b0, b1) holding the least-squares answer, every row of
    ``include`` (the starts and the best pair, say) and the central ``share`` of
    ``points``, so that a few far outliers do not shrink the picture."""
    w, b = closed_form(dataset.x, dataset.y)
    tail = (1 - share) / 2
    ws = [w, *points["w"].quantile([tail, 1 - tail]).dropna()]
    bs = [b, *points["b"].quantile([tail, 1 - tail]).dropna()]
    if include is not None:
        ws += list(include["w"])
        bs += list(include["b"])
    pad_w = max(1.0, 0.15 * np.ptp(ws))
    pad_b = max(1.0, 0.15 * np.ptp(bs))
    return (min(ws) - pad_w, max(ws) + pad_w, min(bs) - pad_b, max(bs) + pad_b)


def plot_run(run, dataset: Dataset, *, figure=None):
    """Three panels: data with the best line, loss per evaluation, proposals on the landscape.

    Draws on ``figure`` if given (a ``matplotlib.figure.Figure`` is safe to draw
    from a background thread), else on a new pyplot figure.
    """
    fig = figure if figure is not None else plt.figure(figsize=(16, 4.5))
    axes = fig.subplots(1, 3)
    history = run.history
    scored = finite_proposals(history)
    least_squares = closed_form(dataset.x, dataset.y)
    lines = {"least squares": least_squares}
    if len(scored):
        best = scored.loc[scored["loss"].astype(float).idxmin()]
        lines = {"best found": (best.w, best.b), **lines}
        axes[0].set_title(f"{run.settings['model']}: best loss {best.loss:.3g}")
    else:
        axes[0].set_title(f"{run.settings['model']}: no proposal had a finite loss")
    plot_data(axes[0], dataset, lines)
    plot_loss(axes[1], history)
    replies = int((history["step"] > 0).sum())
    axes[1].set_title(f"{run.n_failed} of {replies} replies had no pair")
    starts = scored[scored["step"] == 0]
    marked = pd.concat([starts, scored.nsmallest(1, "loss")])
    plot_landscape(axes[2], dataset, extent=view_of(scored, dataset, include=marked),
                   cmap=LANDSCAPE_GREYS, colorbar=False, star="white")
    plot_proposals(axes[2], history[history["step"] > 0], title="proposals on the loss landscape")
    ax = axes[2]
    ax.plot(starts["w"], starts["b"], marker="X", markersize=11, markerfacecolor="limegreen",
            markeredgecolor="black", linestyle="none", label="start", zorder=6)
    if len(scored):
        ax.plot(best.w, best.b, marker="*", markersize=18, markerfacecolor="cyan",
                markeredgecolor="black", linestyle="none", label="best found", zorder=7)
    ax.legend(fontsize="small", loc="best", framealpha=0.9)
    ax.set_xlabel("w (darker grey: higher loss)")
    fig.tight_layout()
    return fig


def plot_best_so_far(ax, traces: dict[str, list], *, loss_name: str = "MSE"):
    """The best loss so far against the loss evaluations spent, one line per run;
    ``traces`` maps a method's name to its runs' losses in the order evaluated (NaN for
    a reply without a pair). The first method is drawn on top, in black."""
    for i, (name, runs) in enumerate(traces.items()):
        style = {"color": "black", "lw": 2.2, "zorder": 3} if i == 0 else {
            "color": f"C{i}", "lw": 1, "alpha": 0.7, "ls": "--" if i % 2 == 0 else "-"}
        for j, losses in enumerate(runs):
            best = pd.Series(np.asarray(losses, dtype=float)).cummin().ffill()
            ax.plot(np.arange(1, len(best) + 1), best, label=name if j == 0 else None, **style)
    ax.set(xlabel="loss evaluations", ylabel=f"best {loss_name} so far", yscale="log")
    ax.legend()
    return ax


def plot_steps_to_optimum(ax, published: pd.DataFrame, here: dict[str, list], *, budget: int):
    """Published steps to the optimum (mean ± std: a :func:`llm_optimizer.reference.published`
    table) above the runs made here: ``here`` maps a name to each run's step at the
    optimum, NaN for a run that did not reach it within ``budget`` steps. A name no run
    of which reached it gets a hatched bar to the budget marked "not reached", not a number."""
    rows = [(f"{r.model} (published)", r.steps, r.std, None) for r in published.itertuples()]
    for name, steps in here.items():
        reached = [float(s) for s in steps if np.isfinite(s)]
        missed = len(steps) - len(reached)
        note = (f"{missed} of {len(steps)} runs: not reached in {budget} steps" if missed
                else None)
        if reached:
            rows.append((f"{name} (here)", np.mean(reached), np.std(reached), note))
        else:
            rows.append((f"{name} (here)", None, None, note))
    for y, (label, mean, std, note) in enumerate(reversed(rows)):
        if mean is None:
            ax.barh(y, budget, fill=False, hatch="//", edgecolor="gray")
        else:
            ax.barh(y, mean, xerr=std, color="C1" if label.endswith("(here)") else "C0")
        if note:
            at = budget if mean is None else mean + std  # right of the bar and its error
            ax.annotate(note, (at, y), xytext=(6, -4), textcoords="offset points")
    ax.set_yticks(range(len(rows)), [label for label, *_ in reversed(rows)])
    ax.set(xlabel="steps of 8 proposals to propose the true (w, b) exactly")
    return ax
