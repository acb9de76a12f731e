"""Repeatable experiments shared by the notebooks and the benchmark suite."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .baselines import gradient_descent, hill_climb, random_search
from .data import Dataset
from .loop import Run, optimize
from .prompt import shown_pairs
from .regression import loss_function


def outlier_share(run: Run) -> float:
    """Share of scored proposals worse than every pair their prompt showed.

    Such a proposal jumped away from all it was shown: the "large step" that the
    blog article saw at high temperature.
    """
    settings = run.settings
    worse = total = 0
    for record in run.records[1:]:
        losses = np.array([p["loss"] for p in record["proposals"] if p["parsed"]], dtype=float)
        if not losses.size:
            continue
        earlier = [p for r in run.records if r["step"] < record["step"] for p in r["proposals"]]
        shown = shown_pairs(
            [(p["w"], p["b"], p["loss"]) for p in earlier if p["parsed"]],
            max_pairs=settings["max_pairs"], decimals=settings["decimals"],
        )
        worst_shown = max(float(loss) for _, _, loss in shown)
        worse += int((~(losses <= worst_shown)).sum())
        total += losses.size
    return worse / total if total else float("nan")


def repeat_share(run: Run) -> float:
    """Share of parsed proposals that repeat, at printed precision, a pair tried before.

    A repeat cannot improve on anything: it is the model copying its prompt.
    """
    seen: set[tuple[float, float]] = set()
    repeats = total = 0
    for record in run.records:
        pairs = [(p["w"], p["b"]) for p in record["proposals"] if p["parsed"]]
        if record["step"] > 0:
            repeats += sum(pair in seen for pair in pairs)
            total += len(pairs)
        seen.update(pairs)
    return repeats / total if total else float("nan")


def summarize(run: Run, *, target: float | None = None) -> dict:
    """One row of numbers about ``run``; ``evaluations_to_target`` is NaN if never reached."""
    h = run.history
    proposed = h[h["step"] > 0]
    losses = h["loss"].astype(float).where(h["parsed"])
    hit = np.flatnonzero(losses.to_numpy() <= target) if target is not None else []
    converged = run.stop_reason not in ("step limit", "interrupted", "stopped")
    return {
        "steps": run.steps_done,
        "converged": converged,
        "steps_to_converge": run.steps_done if converged else np.nan,
        "evaluations": len(h),
        "evaluations_to_target": (hit[0] + 1) if len(hit) else np.nan,
        "best_loss": float(run.best.loss) if run.best is not None else np.nan,
        "parse_rate": float(proposed["parsed"].mean()) if len(proposed) else np.nan,
        "parsed": int(proposed["parsed"].sum()),
        "outlier_share": outlier_share(run),
    }


def temperature_sweep(
    dataset: Dataset, model, *, temperatures: Sequence[float], seeds: Sequence[int],
    steps: int, **options,
) -> pd.DataFrame:
    """Run the loop for every temperature and seed; one row each (see :func:`summarize`)."""
    rows = []
    for temperature in temperatures:
        for seed in seeds:
            started = time.perf_counter()
            run = optimize(dataset, model, steps=steps, temperature=temperature, seed=seed,
                           **options)
            rows.append({"temperature": temperature, "seed": seed, **summarize(run),
                         "seconds": time.perf_counter() - started})
    return pd.DataFrame(rows)


def compare_optimizers(
    dataset: Dataset, model, *, evaluations: int, seeds: Sequence[int], target: float,
    lr: float = 0.05, step_size: float = 1.0, **options,
) -> pd.DataFrame:
    """The LLM loop against random search, hill climbing and gradient descent.

    Every method gets the same budget of ``evaluations`` loss evaluations (for
    gradient descent, one step counts as one evaluation; for the LLM, every reply
    counts, a reply with no pair included). The LLM, hill climbing and gradient
    descent start from the same pair; random search ignores it and samples a box
    10 wider on each side than the preset's starting range. One row per method and
    seed: best loss within the budget and the evaluations needed to reach ``target``
    (NaN if never).
    """
    loss = loss_function(options.get("loss") or dataset.setup.loss)
    x, y = dataset.x, dataset.y
    per_step = options.get("proposals_per_step") or dataset.setup.proposals_per_step
    rows = []
    for seed in seeds:
        run = optimize(dataset, model, steps=max(1, evaluations // per_step), seed=seed,
                       stop=[], **options)
        w0, b0 = run.history.iloc[0][["w", "b"]]
        lo, hi = dataset.setup.init_range
        traces = {
            "LLM": run.history["loss"].astype(float).where(run.history["parsed"]).to_numpy(),
            "random search": random_search(
                x, y, evaluations=evaluations, low=lo - 10, high=hi + 10, seed=seed, loss=loss
            )["loss"].to_numpy(),
            "hill climbing": hill_climb(
                x, y, evaluations=evaluations, w0=w0, b0=b0, step=step_size, seed=seed, loss=loss
            )["loss"].to_numpy(),
            "gradient descent": _gd_losses(x, y, lr, evaluations, w0, b0, loss),
        }
        for method, losses in traces.items():
            losses = np.asarray(losses, dtype=float)[:evaluations]
            hit = np.flatnonzero(losses <= target)
            rows.append({
                "method": method, "seed": seed, "evaluations": len(losses),
                "best_loss": float(np.nanmin(losses)),
                "evaluations_to_target": hit[0] + 1 if len(hit) else np.nan,
            })
    return pd.DataFrame(rows)


def _gd_losses(x, y, lr, evaluations, w0, b0, loss) -> np.ndarray:
    path = gradient_descent(x, y, lr=lr, steps=max(1, evaluations - 1), w0=w0, b0=b0)
    return np.asarray(loss(path["w"].to_numpy(), path["b"].to_numpy(), x, y))


def sweep_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per temperature of a :func:`temperature_sweep`, with the number of parsed
    proposals behind each figure; a figure that nothing backs shows as a dash."""
    grouped = sweep.groupby("temperature")
    table = pd.DataFrame({
        "runs converged": grouped["converged"].apply(lambda s: f"{int(s.sum())}/{len(s)}"),
        "steps to converge, median": grouped["steps_to_converge"].median(),
        "best loss, median": grouped["best_loss"].median(),
        "parse rate, mean": grouped["parse_rate"].mean(),
        "parsed proposals": grouped["parsed"].sum(),
        "outlier share, mean": grouped["outlier_share"].mean(),
    }).reset_index()
    return _dashed(table)


def ranking(table: pd.DataFrame) -> pd.DataFrame:
    """The methods of :func:`compare_optimizers` ordered by median best loss (per preset
    when ``table`` has a ``preset`` column); "never" where no run reached the target."""
    keys = ["preset", "method"] if "preset" in table else ["method"]
    grouped = table.groupby(keys, sort=False)
    summary = pd.DataFrame({
        "best loss, median": grouped["best_loss"].median(),
        "best loss, min": grouped["best_loss"].min(),
        "best loss, max": grouped["best_loss"].max(),
        "runs reaching target": grouped["evaluations_to_target"].apply(
            lambda s: f"{s.notna().sum()}/{len(s)}"),
        "evaluations to target, median": grouped["evaluations_to_target"].median(),
    }).reset_index()
    summary = summary.sort_values([*keys[:-1], "best loss, median"], kind="stable")
    return _dashed(summary.reset_index(drop=True), missing="never")


def _dashed(table: pd.DataFrame, missing: str = "\u2014") -> pd.DataFrame:
    """``table`` with its missing numbers written as ``missing`` instead of NaN."""
    return table.astype(object).where(table.notna(), missing)
