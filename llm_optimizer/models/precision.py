"""The number formats a CPU model computes in: one for the prompt, one for the replies.

A step is one prefill of a long prompt (large matrix products: compute-bound) and a
dozen decoding forwards of n tokens (small products that read every weight once:
bound by memory). So the two phases may use different formats:

- ``bf16`` halves the bytes of every weight; it is fast only where the CPU multiplies
  bf16 natively (AVX-512 BF16, AMX, Arm's BF16), and elsewhere slower than fp32;
- ``int8`` (decoding only) keeps each linear layer's weights as int8 with one fp32
  scale per output row, multiplied by the kernel torch vectorizes on this CPU
  (:func:`~llm_optimizer.models.cpu.int8_kernel`): on AVX-512 ``_weight_int8pack_mm``
  with fp32 activations; on AVX2 fbgemm's dynamic linear, which also rounds each
  product's activations to int8 with one scale for the batch (7 bits, as fbgemm asks
  on CPUs without VNNI), which moves the replies further from fp32's (the speed section
  of docs/benchmarks.md compares both formats' logits and replies);
- ``fp16`` (decoding only, x86) keeps the weights in fp16, half the bytes of fp32, and
  multiplies them with fbgemm's fp16 linear, activations fp32: on an AVX2 CPU without
  native bf16 it is the fastest format whose replies stay those of fp32;
- ``fp32`` everywhere else.

A precision is written ``"fp32"``, ``"bf16"`` or ``"PREFILL/DECODE"`` such as
``"bf16/int8"``; ``"auto"`` picks the fastest this CPU runs (:func:`auto_precision`).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch

from . import cpu

PREFILL_FORMATS = ("fp32", "bf16")
DECODE_FORMATS = ("fp32", "bf16", "fp16", "int8")
# Decoding formats of the weights alone on the CPU: their products compute in fp32.
WEIGHT_ONLY = ("fp16", "int8")
INT8_KERNELS = ("pack", "fbgemm")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# How far the logits of shared-prefix decoding may be from those of copied caches in
# the check of ``LLM._can_share``, as a share of the largest logit: the same products
# summed in another order differ by rounding, which is about 2**-8 of a value in bf16
# and 2**-23 in fp32 (int8 decoding computes in fp32).
SHARE_TOLERANCE = {torch.float32: 1e-2, torch.bfloat16: 5e-2, torch.float16: 2e-2}


@dataclass(frozen=True)
class Precision:
    """The format of the prompt's forward pass and of the decoding forwards."""

    prefill: str = "fp32"
    decode: str = "fp32"

    def __str__(self) -> str:
        return self.prefill if self.prefill == self.decode else f"{self.prefill}/{self.decode}"

    @property
    def decode_dtype(self) -> torch.dtype:
        """The dtype of the decoding activations: fp32 for the CPU's weight-only formats
        (``"fp32/int8"``, ``"bf16/fp16"``), else the format's own (a GPU model in fp16)."""
        if self.decode in WEIGHT_ONLY and self.prefill != self.decode:
            return torch.float32
        return DTYPES.get(self.decode, torch.float32)


def auto_precision(bf16: bool | None = None, int8: bool | None = None,
                   fp16: bool | None = None) -> Precision:
    """The fastest precision for this CPU (or for one with ``bf16``, ``int8`` and ``fp16``
    kernels as given).

    bf16 prefill where the CPU has native bf16. Decoding: int8 weights where torch
    multiplies them by fp32 activations fast (AVX-512), else fp16 weights where fbgemm
    runs (AVX2), else fp32. It never picks bf16 decoding, nor fbgemm's int8 (which
    rounds the activations too): their replies drift from fp32's (``"bf16"`` or
    ``"fp32/int8"`` asks for them).
    """
    bf16 = cpu.native_bf16() if bf16 is None else bf16
    int8 = cpu.fast_int8() if int8 is None else int8
    fp16 = cpu.fbgemm() if fp16 is None else fp16
    return Precision("bf16" if bf16 else "fp32", "int8" if int8 else "fp16" if fp16 else "fp32")


def parse_precision(precision: str) -> Precision:
    """``"auto"``, ``"fp32"``, ``"bf16"`` or ``"PREFILL/DECODE"`` as a :class:`Precision`."""
    if not isinstance(precision, str):
        raise ValueError(f"precision must be a string, got {type(precision).__name__}")
    if precision == "auto":
        return auto_precision()
    prefill, _, decode = precision.partition("/")
    decode = decode or prefill
    if prefill not in PREFILL_FORMATS or decode not in DECODE_FORMATS:
        raise ValueError(
            f"precision must be 'auto', 'fp32', 'bf16' or 'PREFILL/DECODE' with PREFILL one "
            f"of {', '.join(PREFILL_FORMATS)} and DECODE one of {', '.join(DECODE_FORMATS)} "
            f"(such as 'bf16/int8'); got {precision!r}")
    return Precision(prefill, decode)


class Int8Linear(torch.nn.Module):
    """A linear layer with int8 weights, one fp32 scale per output row.

    ``kernel`` ``"pack"`` multiplies fp32 activations by the int8 weights; ``"fbgemm"``
    rounds the activations to int8 too (see the module's docstring).
    """

    def __init__(self, linear: torch.nn.Linear, kernel: str = "pack"):
        super().__init__()
        if kernel not in INT8_KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(INT8_KERNELS)}, got {kernel!r}")
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        bias = linear.bias
        bias = None if bias is None else bias.detach().float()
        self.kernel = kernel
        self.in_features, self.out_features = linear.in_features, linear.out_features
        if kernel == "fbgemm":
            with warnings.catch_warnings():  # torch marks quantized tensors as deprecated
                warnings.simplefilter("ignore")
                zero = torch.zeros(len(scale), dtype=torch.long)
                weights = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
                self.packed = torch.ops.quantized.linear_prepack(weights, bias)
            return
        self.register_buffer("weight", torch.round(weight / scale[:, None]).to(torch.int8))
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float()
        if self.kernel == "fbgemm":  # reduce_range: 7-bit activations, no overflow on AVX2
            out = torch.ops.quantized.linear_dynamic(rows.contiguous(), self.packed, True)
        else:
            out = torch.ops.aten._weight_int8pack_mm(rows, self.weight, self.scale)
            if self.bias is not None:
                out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"int8 {self.kernel}")


class Fp16Linear(torch.nn.Module):
    """A linear layer with fp16 weights packed for fbgemm; activations stay fp32."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        bias = linear.bias
        self.packed = torch.ops.quantized.linear_prepack_fp16(
            linear.weight.detach().float(), None if bias is None else bias.detach().float())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).float().contiguous()
        out = torch.ops.quantized.linear_dynamic_fp16(rows, self.packed)
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp16 fbgemm"


def _replace_linears(model: torch.nn.Module, make) -> None:
    """Replace every linear layer of ``model`` by ``make(layer)``, in place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(parent, name, make(child))


def _cast_parameters(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast the parameters (not the buffers: rotary frequencies stay fp32), in place."""
    for parameter in model.parameters():
        parameter.data = parameter.data.to(dtype)


def prepare(model: torch.nn.Module, precision: Precision):
    """The models for the prompt and for decoding, from an fp32 CPU ``model``.

    ``model`` itself becomes the decoding model; the prompt's model is a bf16 copy
    when the two formats differ (about half the fp32 model's memory more).
    """
    prefill = model
    if precision.prefill != precision.decode:
        prefill = copy.deepcopy(model)
        _cast_parameters(prefill, DTYPES[precision.prefill])
    if precision.decode == "int8":
        kernel = cpu.int8_kernel() or ("pack" if hasattr(torch.ops.aten, "_weight_int8pack_mm")
                                       else None)
        if kernel is None:
            raise ValueError(f"precision {str(precision)!r} needs torch's int8 kernel "
                             "(torch 2.3 or newer); use 'fp32' or 'bf16'")
        _replace_linears(model, lambda linear: Int8Linear(linear, kernel))
    elif precision.decode == "fp16":
        if not cpu.fbgemm():
            raise ValueError(f"precision {str(precision)!r} needs torch's fbgemm (an x86 CPU "
                             "with AVX2); use 'fp32', 'bf16' or 'fp32/int8'")
        _replace_linears(model, Fp16Linear)
    elif precision.decode != "fp32":
        _cast_parameters(model, DTYPES[precision.decode])
    return prefill.eval(), model.eval()


def cast_cache(cache, dtype: torch.dtype) -> None:
    """Bring a key/value cache to ``dtype``, in place (after a prefill in another format)."""
    if hasattr(cache, "layers"):
        for layer in cache.layers:
            if layer.keys is not None and layer.keys.dtype != dtype:
                layer.keys, layer.values = layer.keys.to(dtype), layer.values.to(dtype)
    else:  # transformers before 4.54
        cache.key_cache = [k.to(dtype) for k in cache.key_cache]
        cache.value_cache = [v.to(dtype) for v in cache.value_cache]
