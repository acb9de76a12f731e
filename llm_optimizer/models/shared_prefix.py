"""Shared-prefix attention: n samples read one copy of the prompt's keys and values.

A step asks for ``n`` short replies to one long prompt. Instead of copying the
prompt's key/value cache ``n`` times, the prompt is kept once (batch 1) and an
attention function registered with transformers' ``AttentionInterface`` reads it
for all samples in one matmul, next to each sample's own few tokens.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

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
