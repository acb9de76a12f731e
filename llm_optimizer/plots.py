"""Pictures of the data, the loss landscape and a run, sized to be read on a projector."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.ticker import MaxNLocator

from .data import Dataset
from .regression import closed_form, loss_function, mse

# Type large enough to read from the back of a room: a figure about 13 inches wide fills
# a notebook's page (72 pixels an inch) without being shrunk, and its 13-point text
# stays as large there as the page's own.
STYLE = {"font.size": 13, "axes.titlesize": 13, "axes.labelsize": 13,
         "legend.fontsize": 11, "xtick.labelsize": 11, "ytick.labelsize": 11,
         "figure.titlesize": 14}
RUN_SIZE = (14, 6)
# A median or mean of fewer runs than this is not drawn: every run is shown instead.
MIN_RUNS = 3


@contextmanager
def legible() -> Iterator[None]:
    """Draw inside this block with :data:`STYLE`'s type sizes."""
    with plt.rc_context(STYLE):
        yield


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
    """Contours of the (log) loss over (w, b), with the least-squares answer marked and
    a colour scale labelled with the loss's name."""
    W, B, L = landscape(dataset, extent=extent, loss=loss)
    positive = L[L > 0]  # a perfect fit has loss 0: drawn at the smallest loss above it
    L = np.maximum(L, positive.min() if positive.size else 1.0)
    contour = ax.contourf(W, B, np.log10(L), levels=levels, cmap=cmap)
    if colorbar:
        ax.figure.colorbar(contour, ax=ax, label=f"log10 {loss.__name__.upper()}")
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
    Set the axes' title first: the count is added under it.
    """
    keep = ax.has_data()
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    ax.plot(frame["w"], frame["b"], marker=".", label=label, **style)
    if keep:
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        inside = frame["w"].between(x0, x1) & frame["b"].between(y0, y1)
        if not inside.all():  # added under the title the axes have, if any
            note = f"{int((~inside).sum())} of {len(frame)} points outside this view"
            ax.set_title(f"{ax.get_title()}\n({note})" if ax.get_title() else note)
    ax.legend(fontsize="small")
    return ax


# Dark purple to orange: no colour of this map is close to the light greys of a
# landscape drawn with ``LANDSCAPE_GREYS``, so every proposal stays visible.
STEP_COLOURS = ListedColormap(plt.get_cmap("plasma")(np.linspace(0.0, 0.8, 256)), "steps")
LANDSCAPE_GREYS = ListedColormap(plt.get_cmap("Greys")(np.linspace(0.0, 0.55, 256)), "greys")


def finite_proposals(history: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``history`` that parsed and got a finite loss."""
    return history[history["parsed"] & np.isfinite(history["loss"].astype(float))]


def outside(points: pd.DataFrame, ax) -> int:
    """How many of ``points`` (columns w, b) lie outside the axes' current view."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    return int((~(points["w"].between(x0, x1) & points["b"].between(y0, y1))).sum())


def plot_proposals(ax, history: pd.DataFrame, *, colorbar: bool = True,
                   title: str = "proposals", steps: int | None = None):
    """Scatter every scored proposal on the (w, b) plane, coloured by step.

    Points outside the axes' current limits are left out of view, not dropped:
    the count is written in the title. The colour scale runs from step 0 to ``steps``
    (default: the last step in ``history``), so one step alone still gets a sensible one.
    """
    ok = finite_proposals(history)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    last = steps if steps is not None else int(history["step"].max() if len(history) else 1)
    points = ax.scatter(ok["w"], ok["b"], c=ok["step"], cmap=STEP_COLOURS, s=22,
                        norm=Normalize(0, max(last, 1)), edgecolors="black", linewidths=0.3,
                        zorder=3, label="proposals")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if colorbar:
        bar = ax.figure.colorbar(points, ax=ax, label="step of the proposal")
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    missing = outside(ok, ax)
    ax.set_title(f"{title}\n({missing} outside this view)" if missing else title)
    return ax


def plot_loss(ax, history: pd.DataFrame, *, label: str = "proposals",
              floor: float | None = None, loss_name: str = "loss"):
    """Loss of every reply with a pair (log scale, outliers included), the best so far,
    the replies with no pair as ticks along the bottom, and ``floor`` (the least-squares
    loss, the best possible) as a dashed line.

    The x axis counts every reply, so the view does not collapse when few replies parsed.
    """
    evaluation = np.arange(1, len(history) + 1)
    scored = history["parsed"].to_numpy(bool) & np.isfinite(history["loss"].astype(float))
    loss = history["loss"].astype(float)[scored].clip(lower=1e-12)
    ax.scatter(evaluation[scored], loss, s=14, alpha=0.6, label=label)
    if scored.any():
        ax.step(evaluation[scored], np.minimum.accumulate(loss), where="post", color="black",
                label="best so far")
    failed = evaluation[~history["parsed"].to_numpy(bool)]
    if len(failed):
        ax.plot(failed, np.full(len(failed), 0.03), "|", color="crimson", markersize=9,
                transform=ax.get_xaxis_transform(), label="no pair")
    if floor is not None:
        ax.axhline(floor, color="seagreen", linestyle="--",
                   label=f"best possible: {floor:.3g}")
    ax.set_yscale("log")
    ax.set_xlim(0, max(len(history), 1) + 1)
    ax.set_xlabel("evaluation (every reply counts)")
    ax.set_ylabel(f"{loss_name} (log scale)")
    ax.legend(fontsize="small")
    return ax


def fenced(values: pd.Series) -> list[float]:
    """The smallest and largest of ``values`` inside Tukey's outer fences (3 interquartile
    ranges beyond the quartiles): the range of the bulk, far outliers left out."""
    values = values.astype(float).dropna()
    if not len(values):
        return []
    q1, q3 = values.quantile([0.25, 0.75])
    bulk = values[values.between(q1 - 3 * (q3 - q1), q3 + 3 * (q3 - q1))]
    return [bulk.min(), bulk.max()]


def view_of(points: pd.DataFrame, dataset: Dataset, *, include: pd.DataFrame | None = None):
    """An extent (w0, w1, b0, b1) holding the least-squares answer, every row of
    ``include`` (the starts and the best pair, say) and the bulk of ``points`` (see
    :func:`fenced`), so that a few far outliers do not squash the picture.

    Each side is padded by at least 1, so one point alone, or none, still gets a view
    of the landscape around the answer.
    """
    w, b = closed_form(dataset.x, dataset.y)
    ws, bs = [w, *fenced(points["w"])], [b, *fenced(points["b"])]
    if include is not None:
        ws += list(include["w"])
        bs += list(include["b"])
    pad_w = max(1.0, 0.15 * np.ptp(ws))
    pad_b = max(1.0, 0.15 * np.ptp(bs))
    return (min(ws) - pad_w, max(ws) + pad_w, min(bs) - pad_b, max(bs) + pad_b)


def run_view(run, dataset: Dataset):
    """The landscape's extent for ``run``: its starts, its best pair, the answer and the
    bulk of its proposals (what :func:`plot_run` and the animation show)."""
    scored = finite_proposals(run.history)
    marked = pd.concat([scored[scored["step"] == 0], scored.nsmallest(1, "loss")])
    return view_of(scored, dataset, include=marked)


def most_repeated(history: pd.DataFrame) -> tuple[float, float, int] | None:
    """The pair proposed most often after the start, and how often; None below 3 times."""
    proposed = finite_proposals(history[history["step"] > 0])
    if not len(proposed):
        return None
    counts = proposed.groupby(["w", "b"]).size()
    (w, b), count = counts.idxmax(), int(counts.max())
    return (float(w), float(b), count) if count >= 3 else None


def _suptitle(run) -> str:
    settings = run.settings
    return (f"{settings['model']} · {settings.get('dataset', 'custom')} data · "
            f"{run.steps_done} step{'s' * (run.steps_done != 1)} of "
            f"{settings['proposals_per_step']} proposals at "
            f"temperature {settings['temperature']:g}")


def best_possible(run, dataset: Dataset):
    """The run's loss function, the least-squares pair, its loss (the best any optimizer
    can reach on ``dataset``) and the loss's name for labels."""
    loss = loss_function(run.settings.get("loss", "mse"))
    least_squares = closed_form(dataset.x, dataset.y)
    return loss, least_squares, float(loss(*least_squares, dataset.x, dataset.y)), \
        loss.__name__.upper()


def plot_run(run, dataset: Dataset, *, figure=None):
    """Three titled panels: the data with the best line and the least-squares line; the
    loss of every reply against the best possible; the proposals on the loss landscape.

    Draws on ``figure`` if given (a ``matplotlib.figure.Figure`` is safe to draw
    from a background thread), else on a new pyplot figure of :data:`RUN_SIZE`.
    """
    with legible():
        fig = figure if figure is not None else plt.figure(figsize=RUN_SIZE)
        fig.set_layout_engine("constrained")
        axes = fig.subplots(1, 3)
        fig.suptitle(_suptitle(run))
        history = run.history
        scored = finite_proposals(history)
        loss, least_squares, floor, name = best_possible(run, dataset)
        _data_panel(axes[0], dataset, scored, least_squares, name)
        plot_loss(axes[1], history, floor=floor, loss_name=name)
        replies = int((history["step"] > 0).sum())
        axes[1].set_title(f"{name} of each proposal\n"
                          f"{run.n_failed} of {replies} replies had no pair")
        _landscape_panel(axes[2], run, dataset, scored, loss)
        # The keys go under the panels, where they hide nothing drawn.
        for ax, ncols in zip(axes, (1, 2, 2), strict=True):
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncols=ncols,
                      fontsize="small", frameon=False, columnspacing=1, handletextpad=0.4)
        for ax in fig.axes:
            ax.tick_params(labelsize=STYLE["xtick.labelsize"])
    return fig


def _data_panel(ax, dataset, scored, least_squares, name) -> None:
    lines = {"least squares": least_squares}
    if len(scored):
        best = scored.loc[scored["loss"].astype(float).idxmin()]
        lines = {"best found": (best.w, best.b), **lines}
        found = "still the start: " if best.step == 0 else ""
        ax.set_title(f"the data and the best line found\n({found}{name} {best.loss:.3g})")
    else:
        ax.set_title("the data\n(no proposal had a finite loss)")
    plot_data(ax, dataset, lines)


def _landscape_panel(ax, run, dataset, scored, loss) -> None:
    plot_landscape(ax, dataset, extent=run_view(run, dataset), loss=loss,
                   cmap=LANDSCAPE_GREYS, star="white")
    history = run.history
    title = "proposals on the loss landscape"
    repeated = most_repeated(history)
    if repeated is not None:
        w, b, count = repeated
        ax.plot(w, b, marker="o", markersize=20, markerfacecolor="none", markeredgewidth=2,
                markeredgecolor="crimson", linestyle="none", zorder=6,
                label=f"proposed {count}×")
    proposed = history[history["step"] > 0]
    if not len(finite_proposals(proposed)):
        title += "\n(no proposal had a pair and a finite loss)"
    plot_proposals(ax, proposed, title=title, steps=run.steps_done)
    starts = scored[scored["step"] == 0]
    ax.plot(starts["w"], starts["b"], marker="X", markersize=11, markerfacecolor="limegreen",
            markeredgecolor="black", linestyle="none", label="start", zorder=6)
    if len(scored):
        best = scored.loc[scored["loss"].astype(float).idxmin()]
        ax.plot(best.w, best.b, marker="*", markersize=18, markerfacecolor="cyan",
                markeredgecolor="black", linestyle="none", label="best found", zorder=7)


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
