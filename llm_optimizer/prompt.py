"""The OPRO meta-prompt and the parser for the model's replies."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import pandas as pd

from . import _checks

INSTRUCTION = (
    "Help me minimize a function of two variables, w and b. "
    "Below are (w, b) pairs I have tried, each with its function value. "
    "They are sorted from the highest value to the lowest; lower is better."
)
REQUEST = (
    "Propose a new pair (w, b), different from every pair above, whose function value "
    "is lower than all of the values above. Do not write code. "
    "End your answer with the pair written as [w, b], where w and b are numbers."
)


def _rows(history) -> Iterable[tuple[float, float, float]]:
    if isinstance(history, pd.DataFrame):
        if "parsed" in history:
            history = history[history["parsed"]]
        return history[["w", "b", "loss"]].itertuples(index=False)
    return ((w, b, loss) for w, b, loss in history)


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def shown_pairs(history, *, max_pairs: int = 10, decimals: int = 2) -> list[tuple[str, str, str]]:
    """The pairs the meta-prompt shows, as printed strings, worst first.

    Unparsed and non-finite entries are skipped; a pair evaluated more than once
    (at the printed precision) is shown once; only the best ``max_pairs`` remain.
    """
    max_pairs = _checks.at_least("max_pairs", max_pairs, 1)
    decimals = _checks.at_least("decimals", decimals, 0)
    best: dict[tuple[str, str], float] = {}
    for w, b, loss in _rows(history):
        if not all(math.isfinite(float(v)) for v in (w, b, loss)):
            continue
        key = (_fmt(w, decimals), _fmt(b, decimals))
        best[key] = min(float(loss), best.get(key, math.inf))
    ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)[-max_pairs:]
    return [(w, b, _fmt(loss, decimals)) for (w, b), loss in ranked]


def build_meta_prompt(history, *, max_pairs: int = 10, decimals: int = 2) -> str:
    """Build the OPRO meta-prompt from evaluated pairs.

    ``history`` is a sequence of ``(w, b, loss)`` tuples or a run's history
    DataFrame. Pairs appear worst first and best last, at most ``max_pairs``.
    """
    blocks = [INSTRUCTION]
    for w, b, loss in shown_pairs(history, max_pairs=max_pairs, decimals=decimals):
        blocks.append(f"input:\nw={w}, b={b}\nvalue:\n{loss}")
    blocks.append(REQUEST)
    return "\n\n".join(blocks)


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_GROUP_RE = re.compile(r"\[([^\[\]]{0,200})\]|\(([^()]{0,200})\)")
# Inside a bracket only numbers, separators and the labels w/b may appear.
_GROUP_JUNK_RE = re.compile(r"[\s,;=:wb]+", re.IGNORECASE)
_NAMED_RE = re.compile(
    rf"\bw\s*[=:]\s*({_NUMBER})\s*[,;]?\s*(?:and\s+)?b\s*[=:]\s*({_NUMBER})(?![\d.eE])",
    re.IGNORECASE,
)
_BARE_RE = re.compile(rf"^\s*(?:w\s*,\s*b\s*=\s*)?({_NUMBER})\s*,\s*({_NUMBER})\s*[.;]?\s*$", re.I)
_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-"})


def _pair(a: str, b: str) -> tuple[float, float] | None:
    w, b_ = float(a), float(b)
    return (w, b_) if math.isfinite(w) and math.isfinite(b_) else None


def _bracketed(text: str) -> list[tuple[int, tuple[float, float] | None]]:
    found = []
    for match in _GROUP_RE.finditer(text):
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        numbers = _NUMBER_RE.findall(inner)
        if not numbers:
            continue  # "[w, b]" echoed from the prompt
        if _GROUP_JUNK_RE.sub("", _NUMBER_RE.sub(" ", inner)):
            continue  # prose in parentheses, not an attempt at a pair
        pair = _pair(*numbers) if len(numbers) == 2 else None
        found.append((match.end(), pair))
    return found


def parse_reply(text: str) -> tuple[float, float] | None:
    """Read a ``(w, b)`` pair from a model's reply, or return ``None``.

    Accepts ``[w, b]``, ``(w, b)``, ``w = .., b = ..`` and a bare ``w, b`` line
    (the continuation of a prompt ending in ``w, b =``). When several pairs
    appear, the last one wins. Never raises.
    """
    if not isinstance(text, str):
        return None
    text = text.translate(_DASHES)
    candidates = _bracketed(text)
    candidates += [(m.end(), _pair(*m.groups())) for m in _NAMED_RE.finditer(text)]
    if candidates:
        return max(candidates, key=lambda item: item[0])[1]
    first_line = text.strip().split("\n", 1)[0]
    match = _BARE_RE.match(first_line)
    return _pair(*match.groups()) if match else None
