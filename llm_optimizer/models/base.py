"""What every model backend offers the optimization loop: one small protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

PROMPT_STYLES = ("chat", "completion")
# A completion-style prompt ends in this cue, as in the blog article; the model
# continues it with a pair.
COMPLETION_CUE = "\n\nw, b ="
# Below 0.001 the logits divided by the temperature overflow float32 and sampling fails;
# above 100 every token is about as likely as any other.
TEMPERATURE_RANGE = (0.001, 100.0)
# A reply is kept up to this many characters (a step's record says how many were cut):
# a pair takes a few dozen, a reasoned reply a few hundred.
MAX_REPLY_CHARS = 4096


def completion_text(meta_prompt: str) -> str:
    """A completion-style prompt: the meta-prompt followed by the cue ``w, b =``."""
    return meta_prompt + COMPLETION_CUE


def chat_messages(meta_prompt: str) -> list[dict[str, str]]:
    """A chat-style prompt: the meta-prompt as one user turn (Mistral's template has no
    system role)."""
    return [{"role": "user", "content": meta_prompt}]


@runtime_checkable
class Proposer(Protocol):
    """A model that proposes ``(w, b)`` pairs: what ``optimize``, the CLI and the panel use.

    ``name`` is shown in plots and saved in a run's settings; ``reply_tokens`` is
    the default reply length for its prompt style. A model that can constrain its
    replies (``reply_format="pair"`` and ``"reason+pair"``) takes ``reply_format`` and
    ``decimals`` too; ``optimize`` passes them only for a constrained format.
    """

    name: str
    reply_tokens: int

    def generate(
        self, prompt: str, *, n: int = 1, temperature: float = 1.0,
        max_new_tokens: int = 24, seed: int | None = None,
    ) -> list[str]:
        """Sample ``n`` replies to one meta-prompt."""
        ...


def reply_problem(replies: object, n: int) -> str | None:
    """What is wrong with a ``generate`` result, or None if it is a list of ``n`` strings."""
    if not isinstance(replies, list | tuple):
        return f"generate returned {type(replies).__name__}, expected a list of {n} strings"
    if len(replies) != n:
        return f"generate returned {len(replies)} replies, expected {n}"
    kinds = {type(r).__name__ for r in replies if not isinstance(r, str)}
    if kinds:
        return f"generate returned {', '.join(sorted(kinds))} among its replies, expected strings"
    return None


def capped(reply: str) -> tuple[str, dict[str, int]]:
    """``reply`` cut to ``MAX_REPLY_CHARS``, and ``{"cut": characters dropped}`` if it was."""
    if len(reply) <= MAX_REPLY_CHARS:
        return reply, {}
    return reply[:MAX_REPLY_CHARS], {"cut": len(reply) - MAX_REPLY_CHARS}
