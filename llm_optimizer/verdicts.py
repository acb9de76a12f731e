"""Verdicts in words, computed from the numbers: what the notebooks print instead of
asserting a result in their text.

Every function here reads a table of runs and returns a sentence that holds for those
runs, whatever model produced them and however many runs there are. Two rules decide:

- a group with fewer than :data:`MIN_RUNS` runs is too few to rank, and the sentence
  says so instead of ranking;
- one group is *ahead* of another only when every one of its runs ended lower than
  every run of the other, as printed (three significant digits); where the ranges
  overlap, the runs cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

MIN_RUNS = 3  # fewer runs per group than this are too few to rank


def printed(value: float) -> str:
    """``value`` as every verdict prints it: three significant digits."""
    return f"{float(value):.3g}"


def _level(value: float) -> float:
    """``value`` as printed, so that a tie on the page is a tie in the verdict."""
    return float(printed(value))


def _span(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return printed(low) if printed(low) == printed(high) else f"{printed(low)} to {printed(high)}"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def versus(
    name: str, best: float, others: Sequence[float], *, label: str, method: str,
    evaluations: int, loss_name: str = "MSE",
) -> str:
    """Whether one run's ``best`` loss beat every run of another method (``others``,
    one best loss per seed) at the same budget of ``evaluations`` from the same start.

    ``label`` names what the other method does ("copying"), ``method`` what ran it
    ("the mimic"). Better means lower than every one of ``others``; within their
    range, it did not beat them; above all of them, it did worse.
    """
    others = [float(v) for v in others if np.isfinite(v)]
    if not others:
        raise ValueError(f"others must hold at least one finite best loss of {method}")
    if not np.isfinite(best):
        return f"{name} scored no pair in {evaluations} evaluations, so it did not beat {label}."
    spread = f"{_span(others)} for {method} over {_runs(len(others))}"
    if len(others) == 1:
        spread = f"{printed(others[0])} for {method}"
    where = f"at {evaluations} evaluations from the same start"
    if _level(best) < _level(min(others)):
        verdict = f"did better than {label}: best {loss_name} {printed(best)} against"
    elif _level(best) > _level(max(others)):
        verdict = f"did worse than {label}: best {loss_name} {printed(best)} against"
    else:
        verdict = f"did not beat {label}: best {loss_name} {printed(best)}, within"
    return f"{name} {verdict} {spread}, {where}."


def _groups(table: pd.DataFrame, by: str, value: str) -> dict[str, list[float]]:
    if by not in table or value not in table:
        raise ValueError(f"table must have the columns {by!r} and {value!r}; "
                         f"it has {', '.join(map(str, table.columns))}")
    groups = table.groupby(by, sort=False)[value]
    return {str(k): [float(v) for v in g if np.isfinite(v)] for k, g in groups}


def runs_behind(table: pd.DataFrame, by: str, *, noun: str = "method") -> str:
    """How many runs stand behind each row of a summary of ``table`` grouped by ``by``."""
    counts = table.groupby(by, sort=False).size()
    low, high = int(counts.min()), int(counts.max())
    runs = _runs(low) if low == high else f"{low} to {high} runs"
    return f"{runs} per {noun}"


def ahead(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether every run of ``a`` ended lower than every run of ``b``, as printed."""
    return bool(a) and bool(b) and _level(max(a)) < _level(min(b))


def rank_groups(
    table: pd.DataFrame, by: str, *, value: str = "best_loss", focus: str | None = None,
    focus_name: str | None = None, noun: str = "method", min_runs: int = MIN_RUNS,
) -> str:
    """A verdict on a table with one row per run: how many runs stand behind each group,
    and either that they are too few to rank, or the order by median ``value`` with what
    the runs can and cannot tell apart.

    With ``focus`` (a value of ``by``, such as ``"LLM"``), the verdict says which groups
    that one is ahead of, behind, and not separable from; ``focus_name`` is how the
    sentence names it (the model's name). Without it, the verdict says whether one group
    was ahead of all the others.
    """
    groups = _groups(table, by, value)
    if focus is not None and focus not in groups:
        raise ValueError(f"focus must be one of {', '.join(map(repr, groups))}, got {focus!r}")
    lines = [f"{runs_behind(table, by, noun=noun)}."]
    fewest = min(len(v) for v in groups.values())
    if fewest < min_runs:
        lines.append(f"{_runs(fewest).capitalize()} of a {noun} is too few to rank "
                     f"(at least {min_runs} needed): these figures rank nothing; run more "
                     "seeds (full mode) to compare.")
        return "\n".join(lines)
    medians = {k: float(np.median(v)) for k, v in groups.items() if v}
    order = sorted(medians, key=medians.get)
    lines.append("By median, lowest first: "
                 + ", ".join(f"{k} {printed(medians[k])}" for k in order) + ".")
    if focus is not None:
        lines.append(_focus(groups, focus, focus_name or focus))
    else:
        leader = order[0]
        if all(ahead(groups[leader], groups[k]) for k in order[1:]):
            lines.append(f"{leader} was ahead of every other {noun}: each of its runs ended "
                         "lower than every run of the others.")
        else:
            lines.append(f"No {noun} was ahead of all the others in every run: the ranges "
                         "overlap, so the order of the medians may be chance.")
    return "\n".join(lines)


def _focus(groups: dict[str, list[float]], focus: str, name: str) -> str:
    mine = groups[focus]
    others = [k for k in groups if k != focus]
    before = [k for k in others if ahead(mine, groups[k])]
    behind = [k for k in others if ahead(groups[k], mine)]
    level = [k for k in others if k not in before and k not in behind]
    parts = []
    if behind:
        parts.append(f"behind {_listed(behind)} (every run of theirs ended lower)")
    if before:
        parts.append(f"ahead of {_listed(before)} (every run of its own ended lower)")
    if level:
        parts.append(f"not separable from {_listed(level)} (the ranges overlap)")
    return f"{name} is " + "; ".join(parts) + "."


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def steps_to_optimum(name: str, steps: Sequence[float], *, budget: int) -> str:
    """How many of ``name``'s runs reached the optimum (``steps``: the step each reached
    it at, NaN for a run that did not within ``budget`` steps)."""
    reached = [int(s) for s in steps if np.isfinite(s)]
    n = len(steps)
    if not reached:
        return f"{name} did not reach the optimum within {budget} steps in any of {_runs(n)}."
    shown = ("step " if len(reached) == 1 else "steps ") + ", ".join(map(str, reached))
    if len(reached) == n:
        return f"{name} reached the optimum in all {_runs(n)}, at {shown}."
    return (f"{name} reached the optimum in {len(reached)} of {_runs(n)} (at {shown}); "
            f"the others did not within {budget} steps.")


def trend(values: pd.Series, *, what: str, setting: str = "T") -> str:
    """Whether ``values`` (indexed by a setting such as the temperature) rose or fell from
    the lowest setting to the highest, as printed."""
    values = values.dropna()
    if len(values) < 2:
        return f"{what}: fewer than two settings have a figure, so there is no trend to read."
    low, high = values.index.min(), values.index.max()
    a, b = _level(values[low]), _level(values[high])
    if a == b:
        return f"{what} stayed at {printed(a)} from {setting} = {low:g} to {high:g}."
    change = "rose" if b > a else "fell"
    return (f"{what} {change} from {printed(a)} at {setting} = {low:g} "
            f"to {printed(b)} at {setting} = {high:g}.")


def rank_trend(x: pd.Series, y: pd.Series, *, what: str, against: str,
               min_runs: int = 2 * MIN_RUNS) -> str:
    """Whether ``y`` grew or shrank with ``x`` over the runs, by Spearman's rank
    correlation: at least 0.5 in size counts as a trend, and fewer than ``min_runs``
    runs with both figures are too few to say."""
    both = pd.DataFrame({"x": x, "y": y}).dropna()
    if len(both) < min_runs:
        return (f"{_runs(len(both))} with a {what}: too few (at least {min_runs} needed) "
                f"to say how it changes with the {against}.")
    rho = both["x"].rank().corr(both["y"].rank())
    if not np.isfinite(rho):
        return f"The {what} did not change with the {against} over {_runs(len(both))}."
    over = f"rank correlation {rho:.2f} over {_runs(len(both))}"
    if rho >= 0.5:
        return f"The {what} grew with the {against} ({over})."
    if rho <= -0.5:
        return f"The {what} shrank as the {against} rose ({over})."
    return f"The {what} showed no clear trend with the {against} ({over})."
