"""The pictures of a run read at a glance: titled panels, the best possible loss, a robust
view, sensible axes when little parsed, nothing overlapping; and the run as a film."""

import io
import itertools

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from PIL import Image  # noqa: E402

from llm_optimizer import closed_form, mse, optimize  # noqa: E402
from llm_optimizer.animation import animate_run, gif_bytes  # noqa: E402
from llm_optimizer.plots import plot_run  # noqa: E402
from llm_optimizer.sweep_plots import plot_comparison, plot_step_sizes, plot_sweep  # noqa: E402


class Replies:
    """A proposer that replays fixed replies, then answers without a pair."""

    name = "replayed"

    def __init__(self, replies):
        self.replies = list(replies)

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        return [self.replies.pop(0) if self.replies else "no idea" for _ in range(n)]


def _run(article, replies, steps=3):
    return optimize(article, Replies(replies), steps=steps, proposals_per_step=8,
                    init=[(-1.2, 3.4)], stop=[])


NEAR = [f"[{2 + 0.1 * i:.2f}, {1.5 + 0.05 * i:.2f}]" for i in range(24)]


def _panels(figure):
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def _colorbar(figure, label):
    return next(ax for ax in figure.axes if ax.get_label() == "<colorbar>"
                and label in (ax.get_ylabel() + ax.get_xlabel()))


def _overlaps(figure) -> list[tuple[int, int]]:
    """Pairs of axes (panels and colour scales) whose drawn extents, labels and keys
    included, overlap by more than a pixel each way."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    boxes = [ax.get_tightbbox(renderer) for ax in figure.axes]
    return [(i, j) for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2)
            if min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1]


def test_every_panel_says_what_it_plots_and_the_loss_panel_shows_the_best_possible(article):
    run = _run(article, NEAR[:20] + ["no pair here"] * 4)
    figure = plot_run(run, article)
    assert "replayed" in figure.get_suptitle() and "3 steps of 8 proposals" in figure.get_suptitle()
    data, loss, landscape = _panels(figure)
    assert "best line found" in data.get_title()
    assert loss.get_title().startswith("MSE of each proposal")
    assert "4 of 24 replies had no pair" in loss.get_title()
    assert landscape.get_title().startswith("proposals on the loss landscape")
    floor = mse(*closed_form(article.x, article.y), article.x, article.y)
    best_possible = [line for line in loss.lines if line.get_label().startswith("best possible")]
    assert len(best_possible) == 1 and np.allclose(best_possible[0].get_ydata(), floor)
    assert f"{floor:.3g}" in best_possible[0].get_label()
    assert _colorbar(figure, "log10 MSE")  # the landscape's colour scale, labelled
    assert not _overlaps(figure)


def test_one_far_outlier_is_counted_not_allowed_to_squash_the_landscape(article):
    run = _run(article, NEAR[:10] + ["[92, 2]"] + NEAR[10:23])
    landscape = _panels(plot_run(run, article))[2]
    w0, w1 = landscape.get_xlim()
    assert w1 - w0 < 10 and w1 < 92  # the view stays on the proposals, the start and the answer
    assert "(1 outside this view)" in landscape.get_title()


def test_when_nothing_parses_the_axes_still_span_something_readable(article):
    run = _run(article, [], steps=1)
    figure = plot_run(run, article)
    data, loss, landscape = _panels(figure)
    low, high = loss.get_ylim()
    start = mse(-1.2, 3.4, article.x, article.y)
    assert low < mse(*closed_form(article.x, article.y), article.x, article.y) and high > start
    assert loss.get_xlim() == (0, 10)  # every reply, parsed or not, has its place
    assert "8 of 8 replies had no pair" in loss.get_title()
    assert "no proposal had a pair" in landscape.get_title()
    assert "the start" in data.get_title()
    steps = _colorbar(figure, "step of the proposal")
    assert steps.get_ylim() == (0, 1)  # not a degenerate 0.7..1.3 scale around one step
    assert not _overlaps(figure)


def test_the_figure_is_legible_on_a_projector(article):
    figure = plot_run(_run(article, NEAR), article)
    width, _ = figure.get_size_inches()
    titles = [ax.title.get_fontsize() for ax in _panels(figure)]
    ticks = [label.get_fontsize() for ax in figure.axes for label in ax.get_xticklabels()]
    # at 72 pixels an inch it fits a notebook's page unscaled, with text of 11 points or more
    assert width * 72 <= 1024 and min(titles) >= 13 and min(ticks) >= 11


def test_the_animation_has_a_frame_per_step_and_plays_without_a_kernel(article):
    run = _run(article, NEAR[:12] + ["[92, 2]"] + NEAR[12:])
    html = animate_run(run, article).to_jshtml()
    assert html.count("data:image/png;base64") == run.steps_done
    assert "<script" in html and "anim-buttons" in html  # matplotlib's own player


def test_the_gif_has_a_frame_per_step_and_keeps_its_comment(article):
    run = _run(article, NEAR, steps=2)
    data = gif_bytes(animate_run(run, article), comment="made by a test")
    with Image.open(io.BytesIO(data)) as gif:
        assert gif.format == "GIF" and gif.n_frames == 2
        assert gif.info["comment"] == b"made by a test"


def test_a_frame_shows_the_step_the_prompt_and_the_best_line(article):
    run = _run(article, NEAR[:4] + ["[92, 2]"] + NEAR[4:])
    animation = animate_run(run, article)
    assert not _overlaps(animation._fig)
    html = animation.to_jshtml()
    assert html.count("data:image/png;base64") == 3
    land, right = (ax for ax in animation._fig.axes if ax.get_label() != "<colorbar>")
    assert land.get_title().startswith("step 3 of 3: the prompt showed")
    assert "best line after step 3" in right.get_title()


def test_a_run_without_a_step_cannot_be_animated(article):
    run = _run(article, [], steps=1)
    run.records = run.records[:1]
    with pytest.raises(ValueError, match="no step to animate"):
        animate_run(run, article)


def _sweep(runs_per_temperature):
    rng = np.random.default_rng(0)
    rows = [{"temperature": t, "seed": s, "parse_rate": rng.uniform(), "parsed": 5,
             "outlier_share": rng.uniform(), "best_loss": rng.uniform(1, 100),
             "step_size_median": rng.uniform(0, 5)}
            for t in (0.4, 0.8, 1.2, 1.6) for s in range(runs_per_temperature)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("runs", [2, 3])
def test_a_mean_or_median_is_drawn_only_over_enough_runs(runs):
    sweep = _sweep(runs)
    table = pd.DataFrame([{"method": m, "seed": s, "best_loss": 1.0 + s}
                          for m in ("LLM", "hill climbing") for s in range(runs)])
    figures = [plot_sweep(sweep), plot_comparison(table, 80), plot_step_sizes(sweep)]
    for figure in figures:
        assert not _overlaps(figure)
        for ax in _panels(figure):
            assert ax.get_title()
            centres = [a for a in [*ax.lines, *ax.collections]
                       if a.get_label().startswith(("mean", "median"))]
            assert bool(centres) == (runs >= 3)
            assert ("under 3 runs" in ax.get_title()) == (runs < 3)
    ticks = [t.get_text() for t in _panels(figures[0])[0].get_xticklabels()]
    assert ticks[0] == f"0.4\n{5 * runs} parsed"  # what each temperature's figures rest on


def test_a_landscape_through_a_perfect_fit_draws_without_a_warning():
    """Noise-free data: the grid passes through (3, 0), where the loss is exactly 0."""
    import warnings

    import matplotlib.pyplot as plt

    from llm_optimizer import make_dataset
    from llm_optimizer.plots import plot_landscape

    figure, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_landscape(ax, make_dataset("article", noise=0), extent=(-1, 7, -6, 6))
    assert np.isfinite(ax.collections[0].levels).all()  # the colour scale has finite ends
    plt.close(figure)
