"""Shared-prefill sampling gives what ordinary sampling gives, only faster."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from llm_optimizer import build_meta_prompt, load_model, make_dataset, sse
from llm_optimizer.models import _SharedPrefix, shared_prefix_attention

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def fp32():
    """The bundled model in fp32 throughout: sharing the prompt is exact there, so its
    replies can be compared token for token with Hugging Face's own generate."""
    return load_model("smollm2", precision="fp32")


@pytest.fixture(scope="module")
def paper_prompt():
    data = make_dataset("opro")
    pairs = np.random.default_rng(0).integers(5, 25, size=(20, 2))
    return build_meta_prompt([(w, b, sse(w, b, data.x, data.y)) for w, b in pairs],
                             max_pairs=20, decimals=0)


def _plain_greedy(llm, prompt: str, max_new_tokens: int) -> str:
    ids = llm.encode(prompt)
    out = llm.model.generate(ids, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=llm.tokenizer.eos_token_id)
    return llm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_greedy_replies_equal_plain_generate(fp32, paper_prompt):
    plain = _plain_greedy(fp32, paper_prompt, 16)
    ours = fp32.generate(paper_prompt, n=3, max_new_tokens=16, do_sample=False)
    assert len(set(ours)) == 1 and ours[0]
    assert plain.startswith(ours[0])  # ours stops at the pair; plain runs on


def test_greedy_equals_plain_generate_on_a_mistral_architecture(tiny_model_dir):
    llm = load_model(str(tiny_model_dir), precision="fp32")
    prompt = "Propose a pair [w, b]."
    assert _plain_greedy(llm, prompt, 12).startswith(llm.generate(prompt, n=2, max_new_tokens=12,
                                                                  do_sample=False)[0])


@pytest.mark.parametrize(("heads", "kv_heads", "own"), [(9, 3, 1), (4, 4, 5), (8, 2, 3)])
def test_shared_prefix_attention_equals_attention_over_copies(heads, kv_heads, own):
    torch.manual_seed(0)
    n, length, dim = 5, 37, 16
    prompt_k, prompt_v = torch.randn(2, 1, kv_heads, length, dim).unbind(0)
    own_k, own_v = torch.randn(2, n, kv_heads, own, dim).unbind(0)
    query = torch.randn(n, heads, 1, dim)
    prefix = SimpleNamespace(layers=[(prompt_k, prompt_v)], calls=0)
    ours, _ = shared_prefix_attention(SimpleNamespace(layer_idx=0), query, own_k, own_v, None,
                                      scaling=dim ** -0.5, shared_prefix=prefix)
    # Ordinary attention: every sample gets its own copy of the prompt's keys and values.
    keys = torch.cat([prompt_k.expand(n, -1, -1, -1), own_k], dim=2)
    values = torch.cat([prompt_v.expand(n, -1, -1, -1), own_v], dim=2)
    group = heads // kv_heads
    plain = torch.nn.functional.scaled_dot_product_attention(
        query, keys.repeat_interleave(group, dim=1), values.repeat_interleave(group, dim=1))
    assert ours.shape == (n, 1, heads, dim) and prefix.calls == 1
    torch.testing.assert_close(ours, plain.transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_shared_prefix_attention_refuses_a_prompt_pass():
    three_tokens = torch.zeros(1, 2, 3, 4)
    prefix = _SharedPrefix(SimpleNamespace(layers=[]))
    with pytest.raises(ValueError, match="one token per sample"):
        shared_prefix_attention(SimpleNamespace(layer_idx=0), three_tokens, three_tokens,
                                three_tokens, None, scaling=0.5, shared_prefix=prefix)


def _both_ways(llm, **kwargs) -> tuple[list[str], list[str]]:
    """Replies with the prompt's cache shared, then with it copied to every sample."""
    assert llm._can_share(1)  # the check found that this model takes the shared attention
    shared = llm.generate(**kwargs)
    llm._shares_prefix = False
    try:
        copied = llm.generate(**kwargs)
    finally:
        llm._shares_prefix = True
    return shared, copied


def test_sharing_the_prompt_cache_changes_no_reply(fp32, paper_prompt):
    shared, copied = _both_ways(fp32, prompt=paper_prompt, n=8, max_new_tokens=12, seed=3)
    assert shared == copied
    shared, copied = _both_ways(fp32, prompt=paper_prompt, n=2, max_new_tokens=16,
                                do_sample=False)
    assert shared == copied


def test_both_architectures_share_the_prompt_cache(tiny_model_dir):
    llm = load_model(str(tiny_model_dir), precision="fp32")
    shared, copied = _both_ways(llm, prompt="Propose a pair [w, b].", n=4, max_new_tokens=8,
                                seed=0)
    assert shared == copied


def test_a_sliding_window_shorter_than_the_text_falls_back_to_copies(tiny_model_dir):
    llm = load_model(str(tiny_model_dir), precision="fp32")
    llm.model.config.sliding_window = 8
    assert not llm._can_share(9)
    prompt = "Propose a pair [w, b]."
    assert _plain_greedy(llm, prompt, 6).startswith(
        llm.generate(prompt, n=2, max_new_tokens=6, do_sample=False)[0])


def test_a_seed_repeats_the_replies_exactly(smollm2, paper_prompt):
    a = smollm2.generate(paper_prompt, n=8, temperature=1.0, max_new_tokens=12, seed=5)
    b = smollm2.generate(paper_prompt, n=8, temperature=1.0, max_new_tokens=12, seed=5)
    c = smollm2.generate(paper_prompt, n=8, temperature=1.0, max_new_tokens=12, seed=6)
    assert a == b and a != c


def test_first_tokens_follow_the_model_distribution(smollm2):
    prompt = "input:\nw=3, b=1\nvalue:\n12"
    ids = smollm2.encode(prompt)
    with torch.inference_mode():
        # The first token comes from the prompt's pass, which runs on prefill_model.
        probs = torch.softmax(smollm2.prefill_model(ids).logits[0, -1].float(), dim=-1)
    top = probs.topk(3)
    n = 600
    replies = smollm2.generate(prompt, n=n, temperature=1.0, max_new_tokens=1, seed=0)
    texts = [smollm2.tokenizer.decode([int(t)]) for t in top.indices]
    for text, p in zip(texts, top.values.tolist(), strict=True):
        share = sum(r == text.strip() or r == text for r in replies) / n
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n) + 0.01, (text, share, p)
