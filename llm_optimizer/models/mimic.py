"""The mimic: a proposer with no language model, the null hypothesis of the series.

A language model that optimizes must do better than one that only imitates what
it was shown. The mimic is that imitator, written out as a few lines of numpy. For
every reply it:

1. reads the ``(w, b, value)`` pairs the meta-prompt shows
   (:func:`llm_optimizer.prompt.read_meta_prompt`; the prompt is parsed, never run)
   and ranks them by value, best first;
2. picks one of them with a weight of ``1 / rank`` (the best 1, the second 1/2, the
   third 1/3, ...), so it favours the best without always copying it;
3. with probability :data:`MIX_SHARE` (when at least two pairs are shown) takes ``b``
   from a second pair, picked the same way among the others: a mix of two shown pairs;
4. perturbs the digits: adds Gaussian noise to each coordinate with standard deviation
   ``temperature * scale``, where ``scale`` is drawn log-uniformly from one unit of the
   last printed digit up to the *reach*: the size of the best pair's largest coordinate
   or, where larger, that coordinate's standard deviation over the shown pairs. So a
   step changes a last digit as often as a leading one, it grows with the temperature,
   and it fits the scale of the numbers shown (the article's ``w = 3``, the paper's
   ``w = 15``) without knowing the data;
5. rounds the pair to the prompt's precision (``decimals``, or the most decimal
   places among the shown ``w`` and ``b``) and keeps each number within +-999 (what
   the reply grammar allows);
6. writes it as the prompt style expects: `` w, b`` after the completion cue
   ``w, b =``, ``[w, b]`` for a chat prompt; with ``reply_format="reason+pair"`` a
   short sentence saying which of the above it did comes first.

It never looks at the data, the loss function or the stop rule: only at the
prompt. A prompt that shows no pair gets replies around ``(0, 0)`` with a reach of 1.
The same ``seed`` gives the same replies; ``seed=None`` draws fresh ones.
"""

from __future__ import annotations

import numpy as np

from .. import _checks
from ..grammar import INTEGER_DIGITS, check_format
from ..prompt import printed_decimals, read_meta_prompt
from .base import PROMPT_STYLES, TEMPERATURE_RANGE, chat_messages, completion_text

MIMIC = "mimic"
MIX_SHARE = 0.25  # share of replies that mix the coordinates of two shown pairs
DEFAULT_DECIMALS = 2  # the precision when the prompt shows no pair and none is given
_REASONS = {"copy": "Close to a good pair shown above: ",
            "mix": "Mixing two good pairs shown above: "}


class Mimic:
    """A :class:`~llm_optimizer.models.Proposer` that copies, mixes and perturbs the shown
    pairs instead of running a language model (see the module's docstring)."""

    def __init__(self, *, prompt_style: str = "chat", name: str = MIMIC):
        self.prompt_style = _checks.one_of("prompt_style", prompt_style, PROMPT_STYLES)
        self.name = _checks.text("name", name)
        self.reply_tokens = 16 if prompt_style == "completion" else 40

    def __repr__(self) -> str:
        return f"Mimic(prompt_style={self.prompt_style!r})"

    def render(self, meta_prompt: str) -> str:
        """The text a model of this prompt style would read (the mimic reads the pairs)."""
        if self.prompt_style == "completion":
            return completion_text(meta_prompt)
        return chat_messages(meta_prompt)[0]["content"]

    def generate(
        self,
        prompt: str,
        *,
        n: int = 1,
        temperature: float = 1.0,
        max_new_tokens: int = 24,
        seed: int | None = None,
        reply_format: str = "free",
        decimals: int | None = None,
    ) -> list[str]:
        """``n`` replies to one meta-prompt; ``max_new_tokens`` is checked, and every
        reply fits in the longest one ``reply_format`` allows."""
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        n = _checks.at_least("n", n, 1)
        temperature = _checks.between("temperature", temperature, *TEMPERATURE_RANGE)
        _checks.at_least("max_new_tokens", max_new_tokens, 1)
        if seed is not None:
            seed = _checks.at_least("seed", seed, 0)
        check_format(reply_format)
        shown = read_meta_prompt(prompt)
        if decimals is None:
            decimals = printed_decimals([v for w, b, _ in shown for v in (w, b)])
            decimals = DEFAULT_DECIMALS if decimals is None else decimals
        decimals = _checks.at_least("decimals", decimals, 0)
        pairs = np.array([[float(w), float(b)] for w, b, _ in shown]).reshape(-1, 2)
        order = np.argsort([float(loss) for _, _, loss in shown], kind="stable")
        pairs = pairs[order]  # best first
        rng = np.random.default_rng(seed)
        unit = 10.0 ** -decimals
        reach = _reach(pairs, unit)
        replies = []
        for _ in range(n):
            pair, how = _pick(pairs, rng)
            # the step's scale: log-uniform from one printed unit up to the reach
            scale = np.exp(rng.uniform(np.log(unit), np.log(np.maximum(reach, unit))))
            pair = pair + rng.normal(0.0, temperature * scale)
            replies.append(self._write(pair, decimals, how, reply_format))
        return replies

    def _write(self, pair: np.ndarray, decimals: int, how: str, reply_format: str) -> str:
        w, b = (_number(v, decimals) for v in pair)
        if reply_format == "reason+pair":
            return f"{_REASONS[how]}[{w}, {b}]"
        if self.prompt_style == "completion":
            return f" {w}, {b}"
        return f"[{w}, {b}]"


def _pick(pairs: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A shown pair picked with weight 1/rank, sometimes mixed with a second one."""
    if not len(pairs):
        return np.zeros(2), "copy"
    weights = 1.0 / np.arange(1, len(pairs) + 1)
    first = rng.choice(len(pairs), p=weights / weights.sum())
    if len(pairs) < 2 or rng.random() >= MIX_SHARE:
        return pairs[first].copy(), "copy"
    others = np.delete(np.arange(len(pairs)), first)
    second = rng.choice(others, p=weights[others] / weights[others].sum())
    return np.array([pairs[first, 0], pairs[second, 1]]), "mix"


def _reach(pairs: np.ndarray, unit: float) -> np.ndarray:
    """The largest step's scale, per coordinate: the size of the best pair's largest
    coordinate, or the spread of the shown pairs where that is larger; at least one
    printed unit, and 1 when no pair is shown."""
    if not len(pairs):
        return np.ones(2)
    return np.maximum(pairs.std(axis=0), max(float(np.abs(pairs[0]).max()), unit))


def _number(value: float, decimals: int) -> str:
    """``value`` at ``decimals`` places, within what the reply grammar allows."""
    largest = 10.0 ** INTEGER_DIGITS - 10.0 ** -decimals
    text = f"{float(np.clip(value, -largest, largest)):.{decimals}f}"
    return text[1:] if text.lstrip("-0.") == "" and text.startswith("-") else text
