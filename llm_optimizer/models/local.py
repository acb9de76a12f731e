"""The local sampler: a Hugging Face causal LM that proposes (w, b) pairs, n at a time.

The prompt is run through the model once; the ``n`` samples are decoded together
and each stops as soon as it has written a complete pair (see ``shared_prefix``
for how the prompt's keys and values are shared instead of copied). A constrained
``reply_format`` masks, at every step, the tokens that would leave its grammar
(see ``grammar``).
"""

from __future__ import annotations

import inspect

import torch

from .. import _checks
from ..grammar import ReplyGrammar, check_format, reply_tokens
from ..prompt import parse_reply
from .base import PROMPT_STYLES, TEMPERATURE_RANGE, chat_messages, completion_text
from .cpu import ThreadPolicy
from .precision import SHARE_TOLERANCE, Precision, cast_cache, parse_precision, prepare
from .shared_prefix import _empty_cache, _shared_prefix_attention_on, _SharedPrefix

# The shared-prefix check's text: ordinary text, where bf16 logits are well-conditioned
# (after a lone special token they are not, and the check would judge rounding).
_CHECK_TEXT = "w, b = 3, 1\nw, b = 4, 2\nw, b ="
_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


class LLM:
    """A causal language model that proposes ``(w, b)`` pairs for a meta-prompt."""

    def __init__(self, model, tokenizer, *, name: str = "model", prompt_style: str = "chat",
                 precision: str = "auto", adaptive_threads: bool = True):
        """Wrap a Hugging Face causal LM and its tokenizer (``load_model`` does this).

        An fp32 model on the CPU is run in ``precision`` (see
        :mod:`~llm_optimizer.models.precision`; ``"auto"``: the fastest this CPU runs);
        any other model as it was loaded. ``adaptive_threads`` runs each step on the
        cores other programs leave free (see :class:`~llm_optimizer.models.cpu.ThreadPolicy`).
        """
        if not callable(model) or not hasattr(model, "generation_config"):
            raise ValueError(f"model must be a transformers causal language model, got "
                             f"{type(model).__name__}; get an LLM from load_model()")
        if not callable(getattr(tokenizer, "decode", None)):
            raise ValueError(f"tokenizer must be a transformers tokenizer, got "
                             f"{type(tokenizer).__name__}")
        _checks.text("name", name)
        self.prompt_style = _checks.one_of("prompt_style", prompt_style, PROMPT_STYLES)
        on_cpu = model.device.type == "cpu"
        if on_cpu and model.dtype == torch.float32:
            self.precision = (precision if isinstance(precision, Precision)
                              else parse_precision(precision))
            self.prefill_model, model = prepare(model, self.precision)
        elif precision == "auto":
            as_loaded = _DTYPE_NAMES.get(model.dtype, str(model.dtype).removeprefix("torch."))
            self.precision, self.prefill_model = Precision(as_loaded, as_loaded), model
        else:
            raise ValueError(f"precision {precision!r} is for an fp32 model on the CPU; this "
                             f"one is {model.dtype} on {model.device}: use precision='auto'")
        self.threads = ThreadPolicy(adaptive=adaptive_threads and on_cpu)
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        # A continuation of "w, b =" is a pair and a line break; a chat reply may
        # open with a sentence first. Generation stops at the pair either way.
        self.reply_tokens = 16 if prompt_style == "completion" else 40
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(e) for e in eos + [tokenizer.eos_token_id] if e is not None}
        # transformers renamed `past_key_values` to `cache` (5.24); accept both.
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._shares_prefix: bool | None = None  # found out on the first call
        self._grammar: ReplyGrammar | None = None  # built on the first constrained call

    def __repr__(self) -> str:
        return (f"LLM({self.name!r}, device={self.device}, precision='{self.precision}', "
                f"prompt_style={self.prompt_style!r})")

    @property
    def device(self) -> torch.device:
        return self.model.device

    def render(self, meta_prompt: str) -> str:
        """The exact text the model reads for ``meta_prompt``."""
        if self.prompt_style == "completion" or not self.tokenizer.chat_template:
            return completion_text(meta_prompt)
        return self.tokenizer.apply_chat_template(
            chat_messages(meta_prompt), add_generation_prompt=True, tokenize=False
        )

    def encode(self, meta_prompt: str) -> torch.Tensor:
        """Token ids (shape 1 x length) of the rendered prompt."""
        text = self.render(meta_prompt)
        templated = self.prompt_style == "chat" and bool(self.tokenizer.chat_template)
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=not templated)
        return ids["input_ids"].to(self.device)

    @torch.inference_mode()
    def generate(
        self,
        prompt: str,
        *,
        n: int = 1,
        temperature: float = 1.0,
        max_new_tokens: int = 24,
        seed: int | None = None,
        do_sample: bool = True,
        reply_format: str = "free",
        decimals: int = 2,
    ) -> list[str]:
        """Sample ``n`` replies to one meta-prompt.

        Pure temperature sampling (no top-k or top-p); ``do_sample=False`` picks
        the most likely token instead. Each reply stops at the end-of-text token,
        as soon as it holds a complete pair, or (completion prompts) at the end
        of its first line. A ``seed`` makes the replies repeatable.
        ``reply_format`` ``"pair"`` or ``"reason+pair"`` allows only the tokens that
        keep a reply in that format, with numbers of up to ``decimals`` places
        (see :mod:`llm_optimizer.grammar`); such a reply ends where its grammar does.
        """
        if not isinstance(prompt, str):
            raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
        n = _checks.at_least("n", n, 1)
        temperature = _checks.between("temperature", temperature, *TEMPERATURE_RANGE)
        max_new_tokens = _checks.at_least("max_new_tokens", max_new_tokens, 1)
        if seed is not None:
            seed = _checks.at_least("seed", seed, 0)
        do_sample = _checks.boolean("do_sample", do_sample)
        check_format(reply_format)
        decimals = _checks.at_least("decimals", decimals, 0)
        if reply_format != "free" and max_new_tokens < reply_tokens(reply_format, decimals):
            raise ValueError(
                f"max_new_tokens must be at least {reply_tokens(reply_format, decimals)} for "
                f"reply_format {reply_format!r} with {decimals} decimals, got {max_new_tokens}")
        with self.threads.step():
            return self._sample(prompt, n=n, temperature=temperature,
                                max_new_tokens=max_new_tokens, seed=seed, do_sample=do_sample,
                                reply_format=reply_format, decimals=decimals)

    def _sample(self, prompt: str, *, n: int, temperature: float, max_new_tokens: int,
                seed: int | None, do_sample: bool, reply_format: str,
                decimals: int) -> list[str]:
        """:meth:`generate` after its arguments were checked."""
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
        ids = self.encode(prompt)
        logits, cache = self._prefill(ids)
        shared = self._can_share(ids.shape[1] + max_new_tokens)
        if shared:  # keep the prompt once; the samples' own tokens go to a new cache
            prefix, cache = _SharedPrefix(cache), _empty_cache()
        else:  # the generic way: copy the prompt's keys and values to every sample
            cache.batch_repeat_interleave(n)
        logits = logits.expand(n, -1)
        matchers = None
        if reply_format != "free":
            matchers = self.grammar(logits.shape[-1]).matchers(
                reply_format, n, decimals=decimals, prompt_style=self.prompt_style)
        tokens: list[list[int]] = [[] for _ in range(n)]
        active = list(range(n))  # the replies still being written, in cache order
        for step in range(max_new_tokens):
            if matchers is not None:  # the grammar's mask first, then the temperature
                logits = logits.clone()
                self._grammar.mask(logits, [matchers[row] for row in active])
            if do_sample:
                probs = torch.softmax(logits / temperature, dim=-1)
                next_ids = sample_rows(probs, generator)
            else:
                next_ids = logits.argmax(dim=-1)
            going = [k for k, (row, token) in enumerate(zip(active, next_ids.tolist(), strict=True))
                     if not self._finished(tokens[row], token,
                                           None if matchers is None else matchers[row])]
            if not going or step == max_new_tokens - 1:
                break
            if len(going) < len(active):  # drop finished replies from the batch
                keep = torch.tensor(going, device=self.device)
                cache.batch_select_indices(keep)
                next_ids = next_ids[keep]
                active = [active[k] for k in going]
            if shared:
                logits, cache = self._forward_shared(next_ids[:, None], cache, prefix,
                                                     position=ids.shape[1] + step)
            else:
                logits, cache = self._forward(next_ids[:, None], cache)
        return [self.tokenizer.decode(t, skip_special_tokens=True) for t in tokens]

    def _prefill(self, ids: torch.Tensor):
        """The prompt's pass in the prefill format; its cache in the decoding format."""
        logits, cache = self._forward(ids, None, model=self.prefill_model)
        if self.prefill_model is not self.model:
            cast_cache(cache, self.precision.decode_dtype)
        return logits, cache

    def _forward(self, ids: torch.Tensor, cache, *, model=None, **kwargs):
        """Run ``ids`` after what ``cache`` holds; return the last logits and the cache."""
        out = (model or self.model)(
            input_ids=ids, use_cache=True, logits_to_keep=1, **{self._cache_arg: cache}, **kwargs
        )
        new_cache = out["cache"] if "cache" in out else out["past_key_values"]
        return out.logits[:, -1, :].float(), new_cache

    def _forward_shared(self, ids: torch.Tensor, cache, prefix: _SharedPrefix, *, position: int):
        """One decoding step of ``len(ids)`` samples that all continue ``prefix``."""
        with _shared_prefix_attention_on(self.model):
            return self._forward(ids, cache, shared_prefix=prefix,
                                 position_ids=torch.full((1, 1), position, device=self.device))

    @torch.inference_mode()
    def _can_share(self, length: int) -> bool:
        """Whether shared-prefix attention serves this model (checked once, on a tiny input).

        The check runs the last two tokens of a short text after the rest both ways
        (as two samples of one token each) and compares
        the logits, within a tolerance that fits the decoding format
        (``precision.SHARE_TOLERANCE``); a model whose attention layers do not take the function (or
        a sliding window shorter than ``length``) falls back to copying.
        """
        window = getattr(self.model.config, "sliding_window", None)
        if window is not None and length > window:
            return False
        if self._shares_prefix is None:
            ids = self.tokenizer(_CHECK_TEXT, return_tensors="pt",
                                 add_special_tokens=False)["input_ids"].to(self.device)
            _, cache = self._prefill(ids[:, :-2])
            prefix = _SharedPrefix(cache)
            shared, _ = self._forward_shared(ids[0, -2:, None], _empty_cache(), prefix,
                                             position=ids.shape[1] - 2)
            cache.batch_repeat_interleave(2)
            copied, _ = self._forward(ids[0, -2:, None], cache)
            scale = copied.abs().max().clamp(min=1.0)
            tolerance = SHARE_TOLERANCE.get(self.precision.decode_dtype, 1e-2)
            self._shares_prefix = bool(
                prefix.calls == len(prefix.layers)
                and torch.allclose(shared, copied, rtol=0.0, atol=tolerance * float(scale))
            )
        return self._shares_prefix

    def grammar(self, vocab_size: int | None = None) -> ReplyGrammar:
        """The reply formats compiled for this model's tokenizer (built once, about 1 s)."""
        if self._grammar is None:
            size = vocab_size or self.prefill_model.get_output_embeddings().weight.shape[0]
            self._grammar = ReplyGrammar(self.tokenizer, size)
        return self._grammar

    def allowed_tokens(self, reply_format: str, reply: str = "", *,
                       decimals: int = 2) -> list[str]:
        """The tokens ``reply_format`` allows after the start of a reply ``reply``, as text.

        What the mask leaves the model at one decoding step; an empty list means the
        grammar has ended (or ``reply`` already left it).
        """
        check_format(reply_format)
        if reply_format == "free":
            raise ValueError("reply_format 'free' allows every token; use 'pair' or "
                             "'reason+pair'")
        _checks.instance("reply", reply, str, "a string")
        grammar = self.grammar()
        [matcher] = grammar.matchers(reply_format, 1, decimals=decimals,
                                     prompt_style=self.prompt_style)
        for token in self.tokenizer(reply, add_special_tokens=False)["input_ids"]:
            if not matcher.consume_token(token):
                return []
        if matcher.is_stopped():
            return []
        return [self.tokenizer.decode([t]) for t in grammar.allowed(matcher)]

    def _finished(self, tokens: list[int], token: int, matcher=None) -> bool:
        """Append ``token`` unless it ends the text; say whether the reply is complete.

        Under a grammar (``matcher``) the reply is complete when the grammar ends.
        """
        if token in self.eos_ids:
            return True
        tokens.append(token)
        if matcher is not None:
            matcher.consume_token(token)
            return matcher.is_stopped()
        piece = self.tokenizer.decode([token])
        if not any(c in piece for c in "])\n"):
            return False
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if self.prompt_style == "completion" and "\n" in text.lstrip():
            # A continuation of "w, b =" answers on its line; after a line break the
            # model is writing the next block of the prompt, not a proposal.
            return True
        return parse_reply(text) is not None


def sample_rows(probs: torch.Tensor, generator: torch.Generator | None = None,
                block: int = 256) -> torch.Tensor:
    """One token per row of ``probs``, drawn with exactly those probabilities.

    ``torch.multinomial`` draws an exponential variate for every entry of a row (6–9 ms
    for 8 rows of a 49,152-token vocabulary on a 2-core CPU, at every decoding step).
    Drawing a block of ``block`` tokens by the blocks' sums, then a token within it, is
    the same distribution with about 1/100 of the random numbers.
    """
    rows, vocab = probs.shape
    if vocab <= block:
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)
    blocks = torch.nn.functional.pad(probs, (0, -vocab % block)).view(rows, -1, block)
    chosen = torch.multinomial(blocks.sum(-1), 1, generator=generator).squeeze(1)
    inside = blocks[torch.arange(rows, device=probs.device), chosen]
    return chosen * block + torch.multinomial(inside, 1, generator=generator).squeeze(1)

