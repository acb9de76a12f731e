"""Three ways to sample n proposals for one meta-prompt, timed on the same weights.

(a) the blog article's way: one ``generate`` call per proposal, 15 new tokens, no stop;
(b) one ``generate(num_return_sequences=n)`` call: the prompt is prefilled n times;
(c) ``LLM.generate``: one prefill shared by the n samples, each stopped at its pair.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from llm_optimizer import build_meta_prompt, make_dataset, parse_reply, sse

ARTICLE_TOKENS = 15


def paper_prompt(pairs: int = 20, seed: int = 0) -> str:
    """The OPRO paper's meta-prompt with ``pairs`` integer pairs on its data set."""
    data = make_dataset("opro")
    ws_bs = np.random.default_rng(seed).integers(5, 26, size=(3 * pairs, 2))
    history = [(int(w), int(b), sse(int(w), int(b), data.x, data.y)) for w, b in ws_bs]
    return build_meta_prompt(history, max_pairs=pairs, decimals=0)


def _hf_sample(llm, ids: torch.Tensor, *, n: int, max_new_tokens: int, temperature: float,
               seed: int) -> list[str]:
    torch.manual_seed(seed)
    out = llm.model.generate(
        ids, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
        max_new_tokens=max_new_tokens, num_return_sequences=n,
        pad_token_id=llm.tokenizer.eos_token_id,
    )
    return llm.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)


def article_way(llm, prompt: str, *, n: int, max_new_tokens: int, temperature: float,
                seed: int) -> list[str]:
    """(a) One call per proposal with the article's 15 new tokens."""
    ids = llm.encode(prompt)
    return [reply for i in range(n) for reply in _hf_sample(
        llm, ids, n=1, max_new_tokens=ARTICLE_TOKENS, temperature=temperature, seed=seed + i)]


def return_sequences(llm, prompt: str, *, n: int, max_new_tokens: int, temperature: float,
                     seed: int) -> list[str]:
    """(b) One call with ``num_return_sequences=n``."""
    return _hf_sample(llm, llm.encode(prompt), n=n, max_new_tokens=max_new_tokens,
                      temperature=temperature, seed=seed)


def shared_prefill(llm, prompt: str, *, n: int, max_new_tokens: int, temperature: float,
                   seed: int) -> list[str]:
    """(c) This package's sampler."""
    return llm.generate(prompt, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                        seed=seed)


METHODS = {"a: one call per proposal": article_way,
           "b: num_return_sequences": return_sequences,
           "c: shared prefill": shared_prefill}


def compare_methods(llm, prompt: str, *, n: int = 8, max_new_tokens: int = 12,
                    temperature: float = 1.0, repeats: int = 3, baseline=None) -> dict:
    """Median seconds per step of each method, interleaved over ``repeats`` rounds,
    with tokens generated per proposal and the share of replies that parsed.

    (a) and (b) run on ``baseline`` (default: ``llm``), such as the same weights in fp32
    where ``llm`` runs in another precision."""
    models = {name: llm if method is shared_prefill else (baseline or llm)
              for name, method in METHODS.items()}
    shared_prefill(llm, prompt, n=n, max_new_tokens=2, temperature=temperature, seed=0)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in METHODS}
    replies: dict[str, list[str]] = {name: [] for name in METHODS}
    for round_ in range(repeats):
        for name, method in METHODS.items():
            started = time.perf_counter()
            out = method(models[name], prompt, n=n, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=1000 * round_)
            seconds[name].append(time.perf_counter() - started)
            replies[name].extend(out)
    rows = {}
    for name in METHODS:
        tokens = [len(llm.tokenizer(r, add_special_tokens=False)["input_ids"])
                  for r in replies[name]]
        rows[name] = {
            "seconds_per_step": statistics.median(seconds[name]),
            "all_seconds": seconds[name],
            "tokens_per_proposal": float(np.mean(tokens)),
            "parse_rate": float(np.mean([parse_reply(r) is not None for r in replies[name]])),
        }
    c = rows["c: shared prefill"]["seconds_per_step"]
    return {
        "prompt_tokens": int(llm.encode(prompt).shape[1]), "n": n,
        "max_new_tokens": max_new_tokens, "temperature": temperature, "repeats": repeats,
        "methods": rows, "precision": str(getattr(llm, "precision", "")),
        "shared_prefix_attention": bool(llm._shares_prefix),  # False: (c) copied the cache
        "a_over_c": rows["a: one call per proposal"]["seconds_per_step"] / c,
        "b_over_c": rows["b: num_return_sequences"]["seconds_per_step"] / c,
    }
