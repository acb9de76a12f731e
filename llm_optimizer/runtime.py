"""Where the code runs: on Colab or not, which CUDA GPU, and whether in quick mode."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

QUICK_ENV = "LLM_OPTIMIZER_QUICK"
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
