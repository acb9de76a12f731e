"""Where the code runs: on Colab or not, which CUDA GPU, whether in quick mode, and which
model the environment names."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

QUICK_ENV = "LLM_OPTIMIZER_QUICK"
# What load_model("auto") loads when set: a name, a folder, a .gguf file or a server URL (so
# that a teacher can point every notebook at one model); the served model's name for a URL.
MODEL_ENV = "LLM_OPTIMIZER_MODEL"
SERVED_MODEL_ENV = "LLM_OPTIMIZER_SERVED_MODEL"
NO_GPU_ON_COLAB = (
    "This Colab runtime has no GPU, so the small bundled model runs on the CPU. For "
    "Mistral-7B pick Runtime > Change runtime type > T4 GPU, then Runtime > Run all."
)


@dataclass(frozen=True)
class GPU:
    """The first CUDA device: its name, compute capability and memory in GiB."""

    name: str
    capability: tuple[int, int]
    memory_gb: float


def on_colab() -> bool:
    """True inside a Colab runtime (its ``google.colab`` module is loaded)."""
    return "google.colab" in sys.modules


def quick() -> bool:
    """True when ``LLM_OPTIMIZER_QUICK=1``: notebooks shrink their runs for CI."""
    return os.environ.get(QUICK_ENV) == "1"


def gpu() -> GPU | None:
    """This machine's first CUDA device, or None without one."""
    import torch

    if not torch.cuda.is_available():
        return None
    return GPU(name=torch.cuda.get_device_name(),
               capability=torch.cuda.get_device_capability(),
               memory_gb=torch.cuda.get_device_properties(0).total_memory / 2**30)


def model_from_env() -> tuple[str | None, str | None]:
    """What ``load_model("auto")`` loads by the environment, and the served model's name.

    ``(LLM_OPTIMIZER_MODEL, LLM_OPTIMIZER_SERVED_MODEL)``, each None where unset or blank;
    ``LLM_OPTIMIZER_MODEL=auto`` is the same as unset. A served model's name without a
    server URL to ask is a ``ValueError`` naming both variables.
    """
    from .models.server import is_url

    chosen = os.environ.get(MODEL_ENV, "").strip() or None
    served = os.environ.get(SERVED_MODEL_ENV, "").strip() or None
    if chosen == "auto":
        chosen = None
    if served is not None and not is_url(chosen):
        raise ValueError(f"{SERVED_MODEL_ENV}={served!r} names a served model, but "
                         f"{MODEL_ENV} is not a server URL such as 'http://HOST:8000/v1': "
                         f"set {MODEL_ENV} to the server's URL, or unset {SERVED_MODEL_ENV}")
    return chosen, served


def model_env_error(chosen: str, error: Exception) -> Exception:
    """``error`` (a ``ValueError``, ``OSError`` or ``ServerError``) saying that it came from
    the model ``LLM_OPTIMIZER_MODEL`` names; a URL is shown without user, password or query."""
    from .models.server import is_url, public_url

    shown = public_url(chosen) if is_url(chosen) else chosen
    return type(error)(f"{MODEL_ENV}={shown!r} could not be loaded: {error}")
