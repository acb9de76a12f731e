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


HISTORY_HELP = "a run's history table or a list of (w, b, loss) tuples of numbers"


def _rows(history) -> Iterable[tuple[float, float, float]]:
    if isinstance(history, pd.DataFrame):
        if not {"w", "b", "loss"} <= set(history.columns):
            raise ValueError(f"history must be {HISTORY_HELP}; this table has no w, b, loss")
        if "parsed" in history:
            history = history[history["parsed"].astype(bool)]
        history = history[["w", "b", "loss"]].itertuples(index=False)
    elif isinstance(history, str | bytes | dict):
        raise ValueError(f"history must be {HISTORY_HELP}, got {type(history).__name__}")
    rows = []
    try:
        for row in history:
            if len(row) != 3:
                raise ValueError(f"history must be {HISTORY_HELP}; found the entry {row!r:.80}")
            rows.append(tuple(_checks.number("history", v) for v in row))
    except TypeError:
        raise ValueError(f"history must be {HISTORY_HELP}, got {history!r:.80}") from None
    return rows


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


# One shown pair as build_meta_prompt writes it; the numbers are kept as printed.
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SHOWN_RE = re.compile(
    rf"input:[ \t]*\n[ \t]*w[ \t]*=[ \t]*(?P<w>{_NUMBER})[ \t]*,[ \t]*b[ \t]*=[ \t]*"
    rf"(?P<b>{_NUMBER})[ \t]*\n[ \t]*value:[ \t]*\n[ \t]*(?P<loss>{_NUMBER})"
)
MAX_PROMPT_CHARS = 1_000_000  # a longer text is not read for pairs


def read_meta_prompt(text: str) -> list[tuple[str, str, str]]:
    """The ``(w, b, value)`` pairs a meta-prompt shows, as printed, in the order shown.

    The inverse of :func:`build_meta_prompt`'s pair blocks (``input:`` / ``w=.., b=..`` /
    ``value:`` / a number); anything else in ``text`` is ignored. Pairs with a number that
    is not finite are left out. Anything but a string, or a text over
    ``MAX_PROMPT_CHARS`` characters, gives an empty list. Never raises.
    """
    if not isinstance(text, str) or len(text) > MAX_PROMPT_CHARS:
        return []
    found = [(m["w"], m["b"], m["loss"]) for m in _SHOWN_RE.finditer(text)]
    return [pair for pair in found if all(math.isfinite(float(v)) for v in pair)]


def printed_decimals(numbers: Iterable[str]) -> int | None:
    """The most decimal places among ``numbers`` as printed (``"1.50"``: 2, ``"15"``: 0);
    None if there are none."""
    places = [len(n.split(".", 1)[1].split("e")[0].split("E")[0]) if "." in n else 0
              for n in numbers]
    return max(places) if places else None


# A reply is read token by token, in one pass: no pattern that can backtrack. Double
# quotes count as white space, so a JSON object {"w": 1, "b": 2} reads as w: 1, b: 2.
_TOKEN_RE = re.compile(
    r"(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<word>[^\W\d_]+)|(?P<space>[\s\"]+)|(?P<other>.)",
    re.DOTALL,
)
_DASHES = str.maketrans({"\u2212": "-", "\u2013": "-"})
MAX_REPLY_CHARS = 100_000  # a longer reply is not read (no model writes one on purpose)
MAX_GROUP_CHARS = 200  # a bracket wider than this is prose, not a pair
_OPEN, _CLOSE = {"[": "]", "(": ")"}, {"]": "[", ")": "("}
# Inside a bracket only numbers, the labels w and b and these may appear.
_GROUP_PUNCT = set(",;=:")
_Token = tuple[str, str, int, int]  # kind, text, start, end


def _tokens(text: str) -> list[_Token]:
    """Numbers, words and single characters, without the white space."""
    return [(m.lastgroup, m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)
            if m.lastgroup != "space"]


def _label(token: _Token) -> str | None:
    kind, value, _, _ = token
    return value.lower() if kind == "word" and value.lower() in ("w", "b") else None


def _pair(a: str, b: str) -> tuple[float, float] | None:
    w, b_ = float(a), float(b)
    return (w, b_) if math.isfinite(w) and math.isfinite(b_) else None


def _group_pair(tokens: list[_Token]) -> tuple[float, float] | None:
    """The pair inside one bracket: by its labels where it has them (``b=2, w=3``), else
    in order; labels that contradict each other or the order give None."""
    numbers = [i for i, t in enumerate(tokens) if t[0] == "num"]
    if len(numbers) != 2:
        return None
    labels = [_label(tokens[i - 2]) if i >= 2 and tokens[i - 1][1] in ("=", ":") else None
              for i in numbers]
    values = [tokens[i][1] for i in numbers]
    if labels == ["b", "w"]:
        values.reverse()
    elif labels[0] not in ("w", None) or labels[1] not in ("b", None):
        return None
    return _pair(*values)


def _bracketed(text: str, tokens: list[_Token]) -> list[tuple[int, tuple[float, float] | None]]:
    """Each innermost ``[...]`` or ``(...)`` holding only numbers, labels and separators."""
    found, opened = [], None  # opened: index of the last bracket, if it opens a group
    brackets = [i for i, t in enumerate(tokens) if t[0] == "other" and t[1] in "[]()"]
    for i in brackets:
        _, value, start, end = tokens[i]
        if value in _OPEN:
            opened = i
            continue
        if opened is not None and tokens[opened][1] == _CLOSE[value] and (
            start - tokens[opened][3] <= MAX_GROUP_CHARS
        ):
            inner = tokens[opened + 1 : i]
            prose = any(t[0] == "word" and not _label(t) or t[0] == "other"
                        and t[1] not in _GROUP_PUNCT for t in inner)
            if not prose and any(t[0] == "num" for t in inner):  # "[w, b]" is the prompt's
                found.append((end, _group_pair(inner)))
        opened = None
    return found


def _named(tokens: list[_Token]) -> list[tuple[int, tuple[float, float] | None]]:
    """``w = 1, b = 2``, ``b: 2 and w: 1`` and the like, anywhere in the reply."""
    found, after = [], 0  # after: the end of the last pair found (pairs do not overlap)
    for i in [i for i, t in enumerate(tokens) if _label(t)]:
        end = _named_at(tokens, i) if i >= after else None
        if end is None:
            continue
        first, second = _label(tokens[i]), _label(tokens[end - 3])
        values = {first: tokens[i + 2][1], second: tokens[end - 1][1]}
        found.append((tokens[end - 1][3], _pair(values["w"], values["b"])))
        after = end
    return found


def _named_at(tokens: list[_Token], i: int) -> int | None:
    """The index after a named pair that starts at token ``i``, or None."""
    def assignment(j: int) -> bool:
        return (j + 2 < len(tokens) and _label(tokens[j]) is not None
                and tokens[j + 1][1] in ("=", ":") and tokens[j + 2][0] == "num")

    if not assignment(i):
        return None
    j = i + 3
    if j < len(tokens) and tokens[j][1] in (",", ";"):
        j += 1
    if j < len(tokens) and tokens[j][0] == "word" and tokens[j][1].lower() == "and":
        j += 1
    if not assignment(j) or _label(tokens[j]) == _label(tokens[i]):
        return None
    after = tokens[j + 3] if j + 3 < len(tokens) else None
    if after is not None and after[2] == tokens[j + 2][3] and after[0] == "num":
        return None  # "b = 1.2.3": not a number
    return j + 3


def _bare(text: str) -> tuple[float, float] | None:
    """A first line that is only ``w, b`` (after an optional ``w, b =``), as a
    continuation of a prompt ending in ``w, b =`` is."""
    line = text.strip().split("\n", 1)[0]
    if len(line) > MAX_GROUP_CHARS:  # a pair on a line of its own is short
        return None
    tokens = _tokens(line)
    # One character per token: n for a number, ? for a word, w/b for a label.
    shape = "".join({"num": "n", "word": "?"}.get(t[0], t[1]) if not _label(t) else _label(t)
                    for t in tokens)
    if shape.startswith("w,b="):
        shape, tokens = shape[4:], tokens[4:]
    if shape in ("n,n", "n,n.", "n,n;"):
        return _pair(tokens[0][1], tokens[2][1])
    return None


def parse_reply(text: str) -> tuple[float, float] | None:
    """Read a ``(w, b)`` pair from a model's reply, or return ``None``.

    Accepts ``[w, b]``, ``(w, b)``, labelled pairs in any order (``w = 3.1, b = 0.5.``,
    ``[b=2, w=3]``, ``{"w": 3, "b": 2}``) and a bare ``w, b`` line (the continuation
    of a prompt ending in ``w, b =``). When several pairs appear, the last one wins.
    Runs in time linear in the reply's length; a reply over ``MAX_REPLY_CHARS``
    characters, or anything but a string, gives ``None``. Never raises.
    """
    if not isinstance(text, str) or len(text) > MAX_REPLY_CHARS:
        return None
    text = text.translate(_DASHES)
    tokens = _tokens(text)
    candidates = _bracketed(text, tokens) + _named(tokens)
    if candidates:
        return max(candidates, key=lambda item: item[0])[1]
    return _bare(text)
