"""Repeatable experiments shared by the notebooks and the benchmark suite."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .baselines import gradient_descent, hill_climb, random_search
from .data import Dataset
from .loop import optimize
from .notebook import dashed
from .prompt import shown_pairs
from .regression import loss_function
from .run import Run


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


def _shown(run: Run, step: int) -> list[tuple[float, float, float]]:
    """The (w, b, loss) pairs the prompt of ``step`` showed, as numbers."""
    settings = run.settings
    earlier = [p for r in run.records if r["step"] < step for p in r["proposals"] if p["parsed"]]
    pairs = shown_pairs([(p["w"], p["b"], p["loss"]) for p in earlier],
                        max_pairs=settings["max_pairs"], decimals=settings["decimals"])
    return [(float(w), float(b), float(loss)) for w, b, loss in pairs]


def shown_repeat_share(run: Run) -> float:
    """Share of parsed proposals that repeat, at printed precision, a pair their own
    prompt showed: the model copying what it read instead of proposing."""
    repeats = total = 0
    for record in run.records[1:]:
        shown = {(w, b) for w, b, _ in _shown(run, record["step"])}
        pairs = [(p["w"], p["b"]) for p in record["proposals"] if p["parsed"]]
        repeats += sum(pair in shown for pair in pairs)
        total += len(pairs)
    return repeats / total if total else float("nan")


def step_sizes(run: Run) -> np.ndarray:
    """How far each parsed proposal lies from the best pair its prompt showed: the
    distance sqrt(dw^2 + db^2), the optimizer's step."""
    sizes = []
    for record in run.records[1:]:
        shown = _shown(run, record["step"])
        if not shown:
            continue
        w0, b0, _ = shown[-1]  # shown worst first: the last is the best
        sizes += [float(np.hypot(p["w"] - w0, p["b"] - b0))
                  for p in record["proposals"] if p["parsed"]]
    return np.array(sizes)


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
        "step_size_median": float(np.median(sizes)) if len(sizes := step_sizes(run)) else np.nan,
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
    lr: float = 0.05, step_size: float = 1.0, others: Mapping[str, Any] | None = None,
    **options,
) -> pd.DataFrame:
    """The LLM loop against random search, hill climbing and gradient descent.

    Every method gets the same budget of ``evaluations`` loss evaluations (for
    gradient descent, one step counts as one evaluation; for the LLM, every reply
    counts, a reply with no pair included). The LLM, hill climbing and gradient
    descent start from the same pair; random search ignores it and samples a box
    10 wider on each side than the preset's starting range. One row per method and
    seed: best loss within the budget and the evaluations needed to reach ``target``
    (NaN if never). ``others`` maps a method's name to another proposer that runs the
    same loop from the same start, such as ``{"mimic": load_model("mimic")}``.
    """
    loss = loss_function(options.get("loss") or dataset.setup.loss)
    x, y = dataset.x, dataset.y
    per_step = options.get("proposals_per_step") or dataset.setup.proposals_per_step
    rows = []
    steps = max(1, evaluations // per_step)
    for seed in seeds:
        run = optimize(dataset, model, steps=steps, seed=seed, stop=[], **options)
        w0, b0 = run.history.iloc[0][["w", "b"]]
        lo, hi = dataset.setup.init_range
        traces = {"LLM": _losses(run)}
        for name, other in (others or {}).items():
            traces[name] = _losses(optimize(dataset, other, steps=run.settings["steps"],
                                            seed=seed, stop=[], **options))
        traces.update({
            "random search": random_search(
                x, y, evaluations=evaluations, low=lo - 10, high=hi + 10, seed=seed, loss=loss
            )["loss"].to_numpy(),
            "hill climbing": hill_climb(
                x, y, evaluations=evaluations, w0=w0, b0=b0, step=step_size, seed=seed, loss=loss
            )["loss"].to_numpy(),
            "gradient descent": _gd_losses(x, y, lr, evaluations, w0, b0, loss),
        })
        for method, losses in traces.items():
            losses = np.asarray(losses, dtype=float)[:evaluations]
            hit = np.flatnonzero(losses <= target)
            rows.append({
                "method": method, "seed": seed, "evaluations": len(losses),
                "best_loss": float(np.nanmin(losses)),
                "evaluations_to_target": hit[0] + 1 if len(hit) else np.nan,
            })
    return pd.DataFrame(rows)


def compare_formats(
    dataset: Dataset, model, *, formats: Sequence[str], evaluations: int,
    seeds: Sequence[int], target: float, **options,
) -> pd.DataFrame:
    """The loop with each reply format at the same budget of ``evaluations`` replies.

    One row per format and seed: what :func:`summarize` gives, and the reply
    tokens per proposal, seconds per step and the share of proposals that repeat a
    shown pair. Every run starts from the same pairs for a seed.
    """
    per_step = options.get("proposals_per_step") or dataset.setup.proposals_per_step
    steps = max(1, evaluations // per_step)
    rows = []
    for reply_format in formats:
        for seed in seeds:
            run = optimize(dataset, model, steps=steps, seed=seed, stop=[],
                           reply_format=reply_format, **options)
            replies = run.history[run.history["step"] > 0]["reply"]
            tokenizer = getattr(model, "tokenizer", None)  # a served model or the mimic: none
            tokens = [len(tokenizer(r, add_special_tokens=False)["input_ids"])
                      for r in replies] if tokenizer is not None else [np.nan]
            seconds = [r["seconds"] for r in run.records[1:]]
            rows.append({"reply_format": reply_format, "seed": seed,
                         **summarize(run, target=target),
                         "tokens_per_proposal": float(np.mean(tokens)),
                         "seconds_per_step": float(np.mean(seconds)),
                         "shown_repeat_share": shown_repeat_share(run)})
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per reply format (and preset, if ``table`` has one) of
    :func:`compare_formats`: medians and means over the seeds."""
    _, grouped = _per_preset(table, "reply_format")
    summary = pd.DataFrame({
        "parse rate, mean": grouped["parse_rate"].mean(),
        "tokens per proposal": grouped["tokens_per_proposal"].mean(),
        "seconds per step": grouped["seconds_per_step"].mean(),
        "repeats of shown pairs": grouped["shown_repeat_share"].mean(),
        "best loss, median": grouped["best_loss"].median(),
        **_target_columns(grouped),
    }).reset_index()
    return dashed(summary)


def _losses(run: Run) -> np.ndarray:
    """Every loss a run evaluated, in order; NaN for a reply without a pair."""
    return run.history["loss"].astype(float).where(run.history["parsed"]).to_numpy()


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
    return dashed(table)


def ranking(table: pd.DataFrame) -> pd.DataFrame:
    """The methods of :func:`compare_optimizers` ordered by median best loss (per preset
    when ``table`` has a ``preset`` column); "never" where no run reached the target."""
    keys, grouped = _per_preset(table, "method")
    summary = pd.DataFrame({
        "best loss, median": grouped["best_loss"].median(),
        "best loss, min": grouped["best_loss"].min(),
        "best loss, max": grouped["best_loss"].max(),
        **_target_columns(grouped),
    }).reset_index()
    summary = summary.sort_values([*keys[:-1], "best loss, median"], kind="stable")
    return dashed(summary.reset_index(drop=True))


def _per_preset(table: pd.DataFrame, column: str):
    """The grouping keys (``column``, per preset where ``table`` has one) and the groups."""
    keys = ["preset", column] if "preset" in table else [column]
    return keys, table.groupby(keys, sort=False)


def _target_columns(grouped) -> dict[str, pd.Series]:
    """How many runs of each group reached the target, and the median evaluations to it
    ("never" where no run reached it)."""
    median = grouped["evaluations_to_target"].median()
    return {
        "runs reaching target": grouped["evaluations_to_target"].apply(
            lambda s: f"{s.notna().sum()}/{len(s)}"),
        "evaluations to target, median": median.astype(object).where(median.notna(), "never"),
    }
