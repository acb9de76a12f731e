"""Model backends behind one interface (:class:`Proposer`).

- ``loading``: which model to load and how (names, the bundled model, 4-bit on CUDA);
- ``gpu``: what the CUDA path needs of a GPU (capability, memory, compute dtype);
- ``local``: :class:`LLM`, the in-process sampler;
- ``shared_prefix``: the attention function that lets n samples share one prompt;
- ``server``: :class:`ServerModel`, a model served over the OpenAI-compatible HTTP API;
- ``mimic``: :class:`Mimic`, no language model: it copies and perturbs the shown pairs.
"""

from .base import COMPLETION_CUE, PROMPT_STYLES, Proposer
from .gpu import cuda_dtype
from .loading import (
    MISTRAL,
    MISTRAL_4BIT,
    NAMES,
    SMOLLM2,
    SMOLLM2_FILE,
    SMOLLM2_INSTALL,
    SMOLLM2_PACKAGE,
    LoadPlan,
    _set_4bit_compute_dtype,
    bundled_model_path,
    load_from_plan,
    load_model,
    plan_load,
)
from .local import LLM
from .mimic import MIMIC, Mimic
from .server import ServerError, ServerModel
from .shared_prefix import SHARED_PREFIX_ATTENTION, _SharedPrefix, shared_prefix_attention

__all__ = [
    "COMPLETION_CUE", "LLM", "MIMIC", "MISTRAL", "MISTRAL_4BIT", "NAMES", "PROMPT_STYLES",
    "SHARED_PREFIX_ATTENTION", "SMOLLM2", "SMOLLM2_FILE", "SMOLLM2_INSTALL", "SMOLLM2_PACKAGE",
    "LoadPlan", "Mimic", "Proposer", "ServerError", "ServerModel",
    "_SharedPrefix", "_set_4bit_compute_dtype", "bundled_model_path", "cuda_dtype",
    "load_from_plan", "load_model", "plan_load", "shared_prefix_attention",
]
