"""Shared-prefill sampling gives what ordinary sampling gives, only faster."""

import numpy as np
import pytest
import torch

from llm_optimizer import build_meta_prompt, load_model, make_dataset, sse

pytestmark = pytest.mark.model


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


def test_greedy_replies_equal_plain_generate(smollm2, paper_prompt):
    plain = _plain_greedy(smollm2, paper_prompt, 16)
    ours = smollm2.generate(paper_prompt, n=3, max_new_tokens=16, do_sample=False)
    assert len(set(ours)) == 1 and ours[0]
    assert plain.startswith(ours[0])  # ours stops at the pair; plain runs on


def test_greedy_equals_plain_generate_on_a_mistral_architecture(tiny_model_dir):
    llm = load_model(str(tiny_model_dir))
    prompt = "Propose a pair [w, b]."
    assert _plain_greedy(llm, prompt, 12).startswith(llm.generate(prompt, n=2, max_new_tokens=12,
                                                                  do_sample=False)[0])


def test_a_seed_repeats_the_replies_exactly(smollm2, paper_prompt):
    a = smollm2.generate(paper_prompt, n=8, temperature=1.0, max_new_tokens=12, seed=5)
    b = smollm2.generate(paper_prompt, n=8, temperature=1.0, max_new_tokens=12, seed=5)
    c = smollm2.generate(paper_prompt, n=8, temperature=1.0, max_new_tokens=12, seed=6)
    assert a == b and a != c


def test_first_tokens_follow_the_model_distribution(smollm2):
    prompt = "input:\nw=3, b=1\nvalue:\n12"
    ids = smollm2.encode(prompt)
    with torch.inference_mode():
        probs = torch.softmax(smollm2.model(ids).logits[0, -1].float(), dim=-1)
    top = probs.topk(3)
    n = 600
    replies = smollm2.generate(prompt, n=n, temperature=1.0, max_new_tokens=1, seed=0)
    texts = [smollm2.tokenizer.decode([int(t)]) for t in top.indices]
    for text, p in zip(texts, top.values.tolist(), strict=True):
        share = sum(r == text.strip() or r == text for r in replies) / n
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n) + 0.01, (text, share, p)
