"""What the CUDA path needs of a GPU: the compute capability and memory for Mistral-7B
in 4 bits, the compute dtype, and why quantizing while loading may run out of memory."""

from __future__ import annotations

# Modules the CUDA path imports on top of torch and transformers (bitsandbytes is not
# preinstalled on Colab: the notebooks' set-up cell installs it with the gpu extra).
GPU_MODULES = ("bitsandbytes", "accelerate")
# bitsandbytes' wheels for CUDA 12.8 and later (Colab's torch is cu128) hold kernels
# from compute capability 7.0 on (its installation guide's table of builds); the 4-bit
# weights take about 4.1 GB, with the key/value cache and activations about 5 GB.
MIN_CAPABILITY = (7, 0)
MIN_GPU_MEMORY_GB = 6.0
# transformers 5 can put a checkpoint's fp16 weights on the GPU before quantizing them
# (huggingface/transformers#43032): 14.5 GB for Mistral-7B, more than a T4 has free.
FP16_ON_THE_GPU = (
    "quantizing {source} to 4 bits while loading ran out of GPU memory: transformers 5 can "
    "put the full fp16 weights (14.5 GB for Mistral-7B) on the GPU before quantizing them "
    "(huggingface/transformers#43032), more than a 15 GB T4 has free. Load the "
    "pre-quantized checkpoint instead: model='mistral-4bit' "
    "(unsloth/mistral-7b-instruct-v0.1-bnb-4bit), about 4 GB."
)

def cuda_dtype(capability: tuple[int, int]) -> str:
    """The compute dtype for a GPU: bf16 from Ampere (8.0) on, fp16 before (T4 is 7.5).

    ``torch.cuda.is_bf16_supported()`` may say True on a T4 because bf16 is
    emulated there, so the compute capability decides.
    """
    return "bfloat16" if tuple(capability) >= (8, 0) else "float16"


def gpu_problem(capability: tuple[int, int] | None, memory_gb: float | None) -> str | None:
    """Why a CUDA GPU cannot run Mistral-7B in 4 bits, or None if it can."""
    if capability is not None and tuple(capability) < MIN_CAPABILITY:
        return (f"this GPU has compute capability {capability[0]}.{capability[1]}, and "
                f"bitsandbytes' 4-bit layers need {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} "
                "or newer (Volta, 2017) in their CUDA 12 builds")
    if memory_gb is not None and memory_gb < MIN_GPU_MEMORY_GB:
        return (f"this GPU has {memory_gb:.1f} GB of memory, and Mistral-7B in 4 bits needs "
                f"about {MIN_GPU_MEMORY_GB:g} GB")
    return None
