"""Pictures of repeated runs (notebook 04): the temperature sweep, the optimizers at an
equal budget and the step size against temperature.

Every run is a dot; a mean or median is drawn only over :data:`~.plots.MIN_RUNS` runs or
more, since a "median" of two runs can sit where neither run is.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .plots import MIN_RUNS, RUN_SIZE, legible

SWEEP_PANELS = {"parse_rate": "share of replies with a pair",
                "outlier_share": "share of outliers\n(worse than every pair shown)",
                "best_loss": "best MSE of each run"}


def _enough(counts: pd.Series) -> pd.Series:
    """Which groups hold enough runs for a mean or median line."""
    return counts >= MIN_RUNS


def _centre_key(ax, counts: pd.Series, what: str) -> str:
    """The label of the centre line, or a note in the title when too few runs back it."""
    if _enough(counts).all():
        return f"{what} of {int(counts.min())} runs" if counts.nunique() == 1 else what
    ax.set_title(ax.get_title() + f"\n(under {MIN_RUNS} runs a temperature: no {what})")
    return what


def plot_sweep(sweep: pd.DataFrame):
    """A :func:`~.experiments.temperature_sweep` in three titled panels against
    temperature: one dot per run, the mean where enough runs back it, and under each
    temperature the parsed proposals its figures rest on."""
    with legible():
        fig, axes = plt.subplots(1, 3, figsize=(RUN_SIZE[0], 4.8), layout="constrained")
        grouped = sweep.groupby("temperature")
        counts, parsed = grouped.size(), grouped["parsed"].sum()
        means = grouped.mean(numeric_only=True)
        ticks = [f"{t:g}\n{parsed[t]} parsed" for t in counts.index]
        for ax, (column, title) in zip(axes, SWEEP_PANELS.items(), strict=True):
            ax.set_title(title)
            ax.scatter(sweep["temperature"], sweep[column], alpha=0.6, label="one run")
            key = _centre_key(ax, counts, "mean")
            shown = means[column][_enough(counts)].dropna()
            if len(shown):
                ax.plot(shown.index, shown, "k-o", label=key)
            ax.set_xticks(counts.index, ticks)
            ax.set_xlabel("temperature")
        axes[2].set_yscale("log")
        axes[0].legend()
    return fig


def plot_comparison(table: pd.DataFrame, budget: int):
    """A :func:`~.experiments.compare_optimizers` table: each method's runs as dots, their
    median where enough runs back it, and the target."""
    methods = list(dict.fromkeys(table["method"]))
    where = table["method"].map(methods.index) + 0.08 * (table["seed"] - table["seed"].mean())
    with legible():
        fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
        ax.set_title(f"best MSE of each run after {budget} evaluations")
        ax.scatter(where, table["best_loss"], c=where.round(), cmap="tab10", vmin=0, vmax=9)
        grouped = table.groupby("method", sort=False)
        counts = grouped.size()
        key = _centre_key(ax, counts, "median")
        medians = grouped["best_loss"].median()[_enough(counts)]
        at = np.array([methods.index(m) for m in medians.index])
        if len(at):
            ax.hlines(medians, at - 0.3, at + 0.3, color="black", label=key)
        ax.axhline(1.0, color="gray", linestyle=":", label="target MSE = 1")
        ax.set_xticks(range(len(methods)), methods)
        ax.set(yscale="log", ylabel="best MSE")
        ax.legend()
    return fig


def plot_step_sizes(sweep: pd.DataFrame):
    """The median step of each run of a sweep against temperature, and the median over
    runs where enough runs back it."""
    with legible():
        fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
        ax.set_title("step size against temperature")
        ax.scatter(sweep["temperature"], sweep["step_size_median"], alpha=0.6,
                   label="one run (its median step)")
        counts = sweep.groupby("temperature").size()
        key = _centre_key(ax, counts, "median")
        medians = sweep.groupby("temperature")["step_size_median"].median()[_enough(counts)]
        if len(medians.dropna()):
            ax.plot(medians.dropna().index, medians.dropna(), "k-o", label=key)
        ax.set(xlabel="temperature", ylabel="distance from the best shown pair")
        ax.legend()
    return fig
