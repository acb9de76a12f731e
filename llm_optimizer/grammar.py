"""Reply formats: what a proposal may look like, as a grammar the decoder enforces.

``"free"`` lets the model write anything; the parser then looks for a pair.
``"pair"`` allows only the pair itself, in the prompt's precision: ``[w, b]``
after a chat prompt, `` w, b`` and a line break after the completion cue
``w, b =``. ``"reason+pair"`` allows a bounded stretch of text (no brackets, no
line break) before a forced ``[w, b]``.

At every decoding step a *matcher* (llguidance) says which tokens keep the reply
inside the grammar; the others get probability zero, and sampling with the
temperature goes on over the rest. The same grammar, as a regular expression, is
what a server with structured outputs (vLLM) is sent.
"""

from __future__ import annotations

import json
import re

from . import _checks

REPLY_FORMATS = ("free", "pair", "reason+pair")
INTEGER_DIGITS = 3  # a proposed w or b lies between -999 and 999 (the presets' optima: < 20)
REASON_TOKENS = 48  # the most tokens of text that "reason+pair" allows before the pair


def check_format(reply_format: str) -> str:
    """``reply_format`` if it is one of :data:`REPLY_FORMATS`, else a ``ValueError``."""
    return _checks.one_of("reply_format", reply_format, REPLY_FORMATS)


def number_regex(decimals: int) -> str:
    """A number as the prompt prints it: up to 3 integer digits, up to ``decimals`` places."""
    decimals = _checks.at_least("decimals", decimals, 0)
    places = rf"(\.[0-9]{{1,{decimals}}})?" if decimals else ""
    return rf"-?[0-9]{{1,{INTEGER_DIGITS}}}{places}"


def pair_regex(decimals: int, prompt_style: str) -> str:
    """The pair alone: `` w, b`` and a line break (completion) or ``[w, b]`` (chat)."""
    number = number_regex(decimals)
    if prompt_style == "completion":
        return rf" ?{number}, {number}\n"
    return rf"\[{number}, {number}\]"


def reply_regex(reply_format: str, *, decimals: int, prompt_style: str = "chat") -> str:
    """The reply format as one regular expression (for servers with structured outputs).

    A server's reply ends where the expression does, so the completion prompt's pair has
    no line break here; ``"reason+pair"`` bounds its text to ``REASON_TOKENS`` characters,
    since a regular expression cannot count tokens and a character is at most one token.
    """
    if check_format(reply_format) == "free":
        raise ValueError("reply_format 'free' has no grammar; use 'pair' or 'reason+pair'")
    if reply_format == "pair":
        return pair_regex(decimals, prompt_style).removesuffix(r"\n")
    return rf"[^\[\]\n]{{0,{REASON_TOKENS}}}{pair_regex(decimals, 'chat')}"


def follows(reply: str, kind: str, reply_format: str, *, decimals: int,
            prompt_style: str) -> bool:
    """Whether a served ``reply`` keeps to ``reply_format`` as asked for by ``kind``
    (``"regex"`` or ``"json_schema"``): a server that ignores the request does not."""
    if kind == "regex":
        regex = reply_regex(reply_format, decimals=decimals, prompt_style=prompt_style)
        return re.fullmatch(regex, reply) is not None
    try:
        value = json.loads(reply)
    except ValueError:
        return False
    schema = reply_json_schema(with_reason=reply_format == "reason+pair")
    return (isinstance(value, dict) and set(value) == set(schema["required"])
            and all(isinstance(value[k], int | float) and not isinstance(value[k], bool)
                    for k in ("w", "b")))


def reply_json_schema(*, with_reason: bool = False) -> dict:
    """The pair as a JSON object ``{"w": .., "b": ..}`` (after a ``"reason"`` string with
    ``with_reason``), for servers that take a JSON schema (OpenAI's ``response_format``);
    the parser reads that object too. Numbers are rounded to the run's places when scored.
    """
    properties = {"reason": {"type": "string"}} if with_reason else {}
    properties.update({"w": {"type": "number"}, "b": {"type": "number"}})
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def reply_lark(reply_format: str, *, decimals: int, prompt_style: str) -> str:
    """The reply format as a llguidance Lark grammar (tokens counted exactly)."""
    if check_format(reply_format) == "free":
        raise ValueError("reply_format 'free' has no grammar; use 'pair' or 'reason+pair'")
    if reply_format == "pair":
        return f"start: /{pair_regex(decimals, prompt_style)}/\n"
    return (f"start: reason pair\n"
            f"reason[max_tokens={REASON_TOKENS}]: /[^\\[\\]\\n]*/\n"
            f"pair: /{pair_regex(decimals, 'chat')}/\n")


def reply_tokens(reply_format: str, decimals: int) -> int:
    """Enough new tokens for the longest reply ``reply_format`` allows (a token holds at
    least one character); 0 for ``"free"``, which has no longest reply."""
    if check_format(reply_format) == "free":
        return 0
    pair = 2 * (1 + INTEGER_DIGITS + 1 + decimals) + 4  # "[-999.99, -999.99]" or " ...\n"
    return pair + (REASON_TOKENS if reply_format == "reason+pair" else 0)


class ReplyGrammar:
    """A reply format compiled for one tokenizer: one matcher per reply being written.

    ``tokenizer`` is a Hugging Face tokenizer and ``vocab_size`` the width of the
    model's logits (it may exceed the tokenizer's length).
    """

    def __init__(self, tokenizer, vocab_size: int):
        import llguidance.hf

        self.vocab_size = vocab_size
        self.tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size)
        self._grammars: dict[tuple[str, int, str], str] = {}

    def matchers(self, reply_format: str, n: int, *, decimals: int,
                 prompt_style: str) -> list:
        """``n`` fresh matchers for replies in ``reply_format``."""
        import llguidance

        key = (reply_format, decimals, prompt_style)
        if key not in self._grammars:
            self._grammars[key] = llguidance.LLMatcher.grammar_from_lark(
                reply_lark(reply_format, decimals=decimals, prompt_style=prompt_style))
        first = llguidance.LLMatcher(self.tokenizer, self._grammars[key])
        if first.is_error():
            raise ValueError(f"reply_format {reply_format!r} did not compile: "
                             f"{first.get_error()}")
        return [first] + [first.deep_copy() for _ in range(n - 1)]

    def mask(self, logits, matchers: list) -> None:
        """Set, in place, the logits of every token a row's matcher forbids to -inf."""
        import llguidance.torch as ll_torch

        bitmask = ll_torch.allocate_token_bitmask(len(matchers), self.vocab_size)
        for row, matcher in enumerate(matchers):
            ll_torch.fill_next_token_bitmask(matcher, bitmask, row)
        ll_torch.apply_token_bitmask_inplace(logits, bitmask.to(logits.device))

    def allowed(self, matcher) -> list[int]:
        """The token ids ``matcher`` allows next."""
        import torch

        logits = torch.zeros(1, self.vocab_size)
        self.mask(logits, [matcher])
        return torch.isfinite(logits[0]).nonzero().flatten().tolist()
