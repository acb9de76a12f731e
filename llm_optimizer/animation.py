"""A run as a film: each step's meta-prompt pairs and proposals arriving on the loss
landscape, with the best line so far beside it.

``animate_run(run, dataset).to_jshtml()`` is HTML with its own player (it plays without a
kernel, on GitHub and nbviewer too); :func:`gif_bytes` makes the same frames a GIF.

What stays the same from frame to frame (axes, ticks, the landscape, its colour scale,
the data) is drawn once into a picture that every frame shows behind the few artists that
move, so a frame costs a fraction of a full drawing.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .data import Dataset
from .plots import (
    LANDSCAPE_GREYS,
    STYLE,
    best_possible,
    finite_proposals,
    legible,
    line_label,
    outside,
    plot_landscape,
    run_view,
)
from .prompt import shown_pairs

SIZE = (12, 5.2)
DPI = 72  # 864 x 374 pixels: the GIF fits a README's column
INTERVAL_MS = 700  # between frames: time to see where a step's proposals landed


class RunAnimation(FuncAnimation):
    """A :class:`FuncAnimation` that always renders at its figure's dpi: its frames are
    drawn over a picture of the unchanging parts made at that resolution."""

    def save(self, filename, writer=None, fps=None, dpi=None, **options):
        super().save(filename, writer, fps, self._fig.dpi, **options)


def _prompt_pairs(run, step: int) -> np.ndarray:
    """The (w, b) pairs the meta-prompt of ``step`` showed, as an array of rows."""
    earlier = run.history[run.history["step"] < step]
    pairs = shown_pairs(earlier[["w", "b", "loss"]].to_numpy(),
                        max_pairs=run.settings["max_pairs"], decimals=run.settings["decimals"])
    return np.array([(float(w), float(b)) for w, b, _ in pairs]).reshape(-1, 2)


def _points(frame: pd.DataFrame) -> np.ndarray:
    return frame[["w", "b"]].to_numpy(float).reshape(-1, 2)


def animate_run(run, dataset: Dataset) -> RunAnimation:
    """One frame per step of ``run``: on the landscape (left) the pairs that step's prompt
    showed (rings), its proposals (red dots) and all earlier ones (faint); on the data
    (right) the best line after the step against the least-squares line.

    The figure is not a pyplot figure, so a notebook does not show it a second time.
    Render it with ``.to_jshtml()`` or :func:`gif_bytes`.
    """
    if run.steps_done < 1:
        raise ValueError("run has no step to animate: give it one with optimize(..., steps=1) "
                         "or more")
    history = run.history
    scored = finite_proposals(history)
    loss, least_squares, floor, name = best_possible(run, dataset)
    xs = np.linspace(dataset.x.min(), dataset.x.max(), 100)
    with legible():
        fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
        land, right = fig.subplots(1, 2, width_ratios=[1.15, 1])
        plot_landscape(land, dataset, extent=run_view(run, dataset), loss=loss,
                       cmap=LANDSCAPE_GREYS, star="white")
        past = land.scatter([], [], s=14, color="tab:blue", alpha=0.4, zorder=3,
                            label="earlier proposals")
        shown = land.scatter([], [], s=130, facecolors="none", edgecolors="darkorange",
                             linewidths=2, zorder=4, label="pairs in the prompt")
        new = land.scatter([], [], s=40, color="crimson", edgecolors="black", linewidths=0.5,
                           zorder=5, label="this step's proposals")
        (best_mark,) = land.plot([], [], marker="*", markersize=18, markerfacecolor="cyan",
                                 markeredgecolor="black", linestyle="none", zorder=6,
                                 label="best so far")
        land.legend(loc="upper left", bbox_to_anchor=(0, -0.14), ncols=3, fontsize="small",
                    frameon=False)
        right.scatter(dataset.x, dataset.y, color="black", s=18, zorder=3, label="data")
        right.plot(xs, least_squares[0] * xs + least_squares[1], color="seagreen",
                   linestyle="--", label=f"least squares: {line_label(*least_squares)}")
        (best_line,) = right.plot([], [], color="crimson", label="best so far")
        right.set(xlabel="x", ylabel="y")
        key = right.legend(loc="upper left", fontsize="small")
        for ax in (land, right):
            ax.tick_params(labelsize=STYLE["xtick.labelsize"])
    moving = [past, shown, new, best_mark, best_line, key, land.title, right.title]

    def draw(frame: int):
        step = frame + 1
        replies = history[history["step"] == step]
        now = finite_proposals(replies)
        prompt = _prompt_pairs(run, step)
        past.set_offsets(_points(scored[(scored["step"] > 0) & (scored["step"] < step)]))
        shown.set_offsets(prompt)
        new.set_offsets(_points(now))
        missing = outside(now, land)
        land.set_title(f"step {step} of {run.steps_done}: the prompt showed {len(prompt)} "
                       f"pairs;\n{len(replies)} replies, {int(replies['parsed'].sum())} with a "
                       f"pair" + (f", {missing} outside this view" if missing else ""), y=1)
        so_far = scored[scored["step"] <= step]
        if len(so_far):
            best = so_far.loc[so_far["loss"].astype(float).idxmin()]
            best_mark.set_data([best.w], [best.b])
            best_line.set_data(xs, best.w * xs + best.b)
            key.get_texts()[-1].set_text(f"best so far: {line_label(best.w, best.b)}")
            right.set_title(f"the best line after step {step}\n"
                            f"{name} {best.loss:.3g} (best possible {floor:.3g})", y=1)
        else:
            right.set_title(f"the best line after step {step}\nnone yet: no finite loss", y=1)
        return moving  # titles at a fixed height (y=1): the picture behind them does not move

    with legible():
        draw(run.steps_done - 1)
        fig.draw_without_rendering()  # lay out once, with the longest titles in place
    fig.set_layout_engine("none")
    _bake(fig, moving)
    return RunAnimation(fig, draw, frames=run.steps_done, interval=INTERVAL_MS, blit=False)


def _bake(fig: Figure, moving: list) -> None:
    """Draw all but ``moving`` once into a picture behind everything; hide what it holds."""
    for artist in moving:
        artist.set_visible(False)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    background = np.asarray(canvas.buffer_rgba()).copy()
    FigureCanvasBase(fig)  # back to a canvas that draws only when a frame is saved
    for ax in fig.axes:
        for child in ax.get_children():
            child.set_visible(child in moving)
    fig.patch.set_visible(False)
    fig.figimage(background, xo=0, yo=0, origin="upper", zorder=-1)
    for artist in moving:
        artist.set_visible(True)


def gif_bytes(animation: FuncAnimation, *, comment: str = "") -> bytes:
    """The animation as a looping GIF (matplotlib's PillowWriter), ``comment`` stored in it."""
    from PIL import Image, ImageSequence

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.gif"
        animation.save(path, writer=PillowWriter(fps=1000 / INTERVAL_MS))
        if comment:
            with Image.open(path) as gif:
                frames = [frame.copy() for frame in ImageSequence.Iterator(gif)]
                duration = gif.info.get("duration", INTERVAL_MS)
            frames[0].save(path, save_all=True, append_images=frames[1:], loop=0,
                           duration=duration, comment=comment)
        return path.read_bytes()
